package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/loqed2mqtt/loqed2mqtt/mqtt"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

const waitTimeout = 10 * time.Second

// syncBuffer is a bytes.Buffer that the client's goroutines may write to concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newClient returns a client for brokerURL that is closed when the test ends. modify,
// when not nil, adjusts the options first.
func newClient(t *testing.T, brokerURL string, modify func(*mqtt.Options)) (*mqtt.Client, *syncBuffer) {
	t.Helper()

	logs := &syncBuffer{}
	opts := mqtt.Options{
		URL:      brokerURL,
		ClientID: "test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		Logger:   zerolog.New(logs),
	}
	if modify != nil {
		modify(&opts)
	}
	c, err := mqtt.New(opts)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close() error = %v", err)
		}
	})
	return c, logs
}

func connect(t *testing.T, c *mqtt.Client) {
	t.Helper()

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect() error = %v", err)
	}
}

func subscribe(t *testing.T, c *mqtt.Client, filter string, h mqtt.Handler) {
	t.Helper()

	if err := c.Subscribe(t.Context(), filter, 1, h); err != nil {
		t.Fatalf("Subscribe(%q) error = %v", filter, err)
	}
}

// receive returns the next value from ch or fails the test after waitTimeout.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()

	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		var zero T
		return zero
	}
}

func TestClient_PublishSubscribe(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, _ := newClient(t, b.URL(), nil)
	connect(t, c)

	select {
	case <-c.Connected():
	default:
		t.Errorf("Connected() is not closed after Connect returned")
	}
	if !c.IsConnected() {
		t.Errorf("IsConnected() = false after Connect; want true")
	}

	got := make(chan mqtt.Message, 10)
	subscribe(t, c, "in/+", func(m mqtt.Message) { got <- m })

	harness.Publish(t, b.URL(), "in/a", "hello", false)
	m := receive(t, got, "message on in/a")
	if m.Topic != "in/a" || string(m.Payload) != "hello" || m.Retained || m.QoS != 1 {
		t.Errorf("received %+v; want topic in/a, payload hello, not retained, QoS 1", m)
	}

	rec := harness.NewRecorder(t, b.URL(), "out/#")
	if err := c.Publish(t.Context(), "out/state", []byte("locked"), true); err != nil {
		t.Fatalf("Publish() error = %v", err)
	}
	rec.WaitPayload(t, waitTimeout, "out/state", "locked")
	if got := harness.Retained(t, b.URL(), "out/#"); got["out/state"] != "locked" {
		t.Errorf("retained out/state = %q; want locked", got["out/state"])
	}
}

func TestClient_PublishNotConnected(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, _ := newClient(t, b.URL(), nil)

	if err := c.Publish(t.Context(), "x", []byte("early"), false); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish() before Connect error = %v; want ErrNotConnected", err)
	}

	lost := make(chan error, 1)
	c.OnConnectionLost(func(err error) { lost <- err })
	connect(t, c)

	b.Stop()
	receive(t, lost, "OnConnectionLost after the broker stopped")
	if c.IsConnected() {
		t.Errorf("IsConnected() = true while the broker is stopped; want false")
	}

	start := time.Now()
	err := c.Publish(t.Context(), "x", []byte("down"), false)
	if !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish() while the broker is stopped error = %v; want ErrNotConnected", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Publish() while the broker is stopped took %v; want it to fail at once", elapsed)
	}

	done := make(chan error, 1)
	c.PublishAsync("x", []byte("down"), false, func(err error) { done <- err })
	if err := receive(t, done, "PublishAsync outcome"); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("PublishAsync() while the broker is stopped reported %v; want ErrNotConnected", err)
	}
}

func TestClient_WillOnSessionTakeover(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	const stateTopic = "loqed/bridge/state"
	rec := harness.NewRecorder(t, b.URL(), stateTopic)

	connects := make(chan struct{}, 10)
	c, _ := newClient(t, b.URL(), func(o *mqtt.Options) {
		o.ClientID = "bridge-will"
		o.WillTopic = stateTopic
	})
	c.OnConnect(func() { connects <- struct{}{} })
	connect(t, c)
	receive(t, connects, "first OnConnect")
	rec.WaitPayload(t, waitTimeout, stateTopic, "online")

	// A second connection with the same client ID makes Mosquitto drop the first one
	// without a DISCONNECT, so it publishes the first connection's will. The intruder
	// does not reconnect once the client takes the ID back.
	intruder := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("bridge-will").SetAutoReconnect(false))
	if tok := intruder.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("second connection with the same client ID failed: %v", tok.Error())
	}
	t.Cleanup(func() { intruder.Disconnect(0) })

	// WaitFor checks the messages in arrival order, so this waits for an "online"
	// that follows the will's "offline".
	seenOffline := false
	rec.WaitFor(t, waitTimeout, func(m harness.Message) bool {
		if m.Payload == "offline" {
			seenOffline = true
		}
		return seenOffline && m.Payload == "online"
	})
	receive(t, connects, "OnConnect after the reconnect")
	if got := harness.Retained(t, b.URL(), stateTopic); got[stateTopic] != "online" {
		t.Errorf("retained %s after the reconnect = %q; want online", stateTopic, got[stateTopic])
	}
}

func TestClient_WillRetainedWhileDown(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	const stateTopic = "loqed/bridge/state"
	p := startProxy(t, b.Addr())

	connects := make(chan struct{}, 10)
	lost := make(chan error, 10)
	c, _ := newClient(t, "tcp://"+p.addr, func(o *mqtt.Options) { o.WillTopic = stateTopic })
	c.OnConnect(func() { connects <- struct{}{} })
	c.OnConnectionLost(func(err error) { lost <- err })
	connect(t, c)
	receive(t, connects, "first OnConnect")

	// Cutting the proxy closes the broker's side of the connection without a
	// DISCONNECT and keeps the client from reconnecting.
	p.cut()
	receive(t, lost, "OnConnectionLost after the cut")
	rec := harness.NewRecorder(t, b.URL(), stateTopic)
	m := rec.WaitPayload(t, waitTimeout, stateTopic, "offline")
	if !m.Retained {
		t.Errorf("will %v is not retained", m)
	}

	p.listen(t)
	receive(t, connects, "OnConnect after the proxy is back")
	rec.WaitPayload(t, waitTimeout, stateTopic, "online")
	if got := harness.Retained(t, b.URL(), stateTopic); got[stateTopic] != "online" {
		t.Errorf("retained %s after the reconnect = %q; want online", stateTopic, got[stateTopic])
	}
}

func TestClient_PublishAckTimeout(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	p := startProxy(t, b.Addr())
	c, _ := newClient(t, "tcp://"+p.addr, func(o *mqtt.Options) { o.AckTimeout = 300 * time.Millisecond })
	connect(t, c)

	p.hold()
	err := c.Publish(t.Context(), "x", []byte("no ack"), false)
	if !errors.Is(err, mqtt.ErrAckTimeout) {
		t.Errorf("Publish() without a PUBACK error = %v; want ErrAckTimeout", err)
	}

	done := make(chan error, 1)
	c.PublishAsync("x", []byte("no ack"), false, func(err error) { done <- err })
	if err := receive(t, done, "PublishAsync outcome"); !errors.Is(err, mqtt.ErrAckTimeout) {
		t.Errorf("PublishAsync() without a PUBACK reported %v; want ErrAckTimeout", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.Publish(ctx, "x", []byte("no ack"), false); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish() with an ending context error = %v; want context.DeadlineExceeded", err)
	}
	p.release()
}

func TestClient_PublishConnectionLost(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	p := startProxy(t, b.Addr())
	c, _ := newClient(t, "tcp://"+p.addr, func(o *mqtt.Options) { o.AckTimeout = time.Minute })
	connect(t, c)

	rec := harness.NewRecorder(t, b.URL(), "x")

	p.hold()
	syncDone := make(chan error, 1)
	go func() { syncDone <- c.Publish(context.Background(), "x", []byte("sync"), false) }()
	asyncDone := make(chan error, 1)
	c.PublishAsync("x", []byte("async"), false, func(err error) { asyncDone <- err })

	// Both messages reached the broker; only their PUBACKs are held back.
	rec.WaitPayload(t, waitTimeout, "x", "sync")
	rec.WaitPayload(t, waitTimeout, "x", "async")
	p.cut()
	p.release()
	if err := receive(t, syncDone, "Publish outcome after the connection loss"); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish() cut off before its PUBACK error = %v; want ErrNotConnected", err)
	}
	if err := receive(t, asyncDone, "PublishAsync outcome after the connection loss"); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("PublishAsync() cut off before its PUBACK reported %v; want ErrNotConnected", err)
	}
}

// proxy forwards TCP connections to a broker and can cut them all, so a test can make
// a connection die on the broker's side.
type proxy struct {
	addr   string
	target string

	mu       sync.Mutex
	listener net.Listener
	conns    []net.Conn
	resume   chan struct{} // while open, nothing flows from the broker to the client
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()

	p := &proxy{addr: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), target: target}
	p.listen(t)
	t.Cleanup(func() {
		p.release()
		p.cut()
	})
	return p
}

// listen accepts connections on p.addr again.
func (p *proxy) listen(t *testing.T) {
	t.Helper()

	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy cannot listen on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.listener = l
	p.mu.Unlock()

	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, upstream)
			p.mu.Unlock()

			go pipe(upstream, client)
			go pipe(client, &heldReader{p: p, r: upstream})
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.listener != nil {
		p.listener.Close()
		p.listener = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// hold stops forwarding from the broker to the client, so acknowledgements stay away.
func (p *proxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resume = make(chan struct{})
}

// release ends hold.
func (p *proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

// heldReader delivers what it read only while the proxy is not held.
type heldReader struct {
	p *proxy
	r net.Conn
}

func (h *heldReader) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	h.p.mu.Lock()
	resume := h.p.resume
	h.p.mu.Unlock()
	if resume != nil {
		<-resume
	}
	return n, err
}

func (h *heldReader) Close() error { return h.r.Close() }

func pipe(dst io.WriteCloser, src io.ReadCloser) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func TestClient_OnlineAfterBrokerRestart(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	const stateTopic = "loqed/bridge/state"

	connects := make(chan struct{}, 10)
	c, _ := newClient(t, b.URL(), func(o *mqtt.Options) { o.WillTopic = stateTopic })
	c.OnConnect(func() { connects <- struct{}{} })
	connect(t, c)
	receive(t, connects, "first OnConnect")

	// The restarted broker has no persistence, so an "online" retained after the
	// reconnect comes from the new connection.
	b.Kill()
	b.Start()
	receive(t, connects, "OnConnect after the broker restart")
	if got := harness.Retained(t, b.URL(), stateTopic); got[stateTopic] != "online" {
		t.Errorf("retained %s after the reconnect = %q; want online", stateTopic, got[stateTopic])
	}
}

func TestClient_ResubscribeAfterRestart(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	const stateTopic = "loqed/bridge/state"

	got := make(chan mqtt.Message, 10)
	connects := make(chan int, 10)
	release := make(chan struct{})
	var n int

	c, _ := newClient(t, b.URL(), func(o *mqtt.Options) { o.WillTopic = stateTopic })
	c.OnConnect(func() {
		n++
		connects <- n
		if n == 2 {
			// Hold the callback so the test observes the state in which OnConnect
			// runs: subscriptions restored and "online" published.
			<-release
		}
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	connect(t, c)
	subscribe(t, c, "cmd/#", func(m mqtt.Message) { got <- m })
	if v := receive(t, connects, "first OnConnect"); v != 1 {
		t.Fatalf("OnConnect call = %d; want 1", v)
	}

	b.Stop()
	b.Start()

	if v := receive(t, connects, "OnConnect after the restart"); v != 2 {
		t.Fatalf("OnConnect call = %d; want 2", v)
	}
	if state := harness.Retained(t, b.URL(), stateTopic)[stateTopic]; state != "online" {
		t.Errorf("retained %s while OnConnect runs = %q; want online", stateTopic, state)
	}
	harness.Publish(t, b.URL(), "cmd/lock", "open", false)
	m := receive(t, got, "message on the restored subscription")
	if m.Topic != "cmd/lock" || string(m.Payload) != "open" {
		t.Errorf("received %s %q; want cmd/lock open", m.Topic, m.Payload)
	}
	close(release)
}

func TestClient_HandlersDoNotBlockEachOther(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, _ := newClient(t, b.URL(), nil)
	connect(t, c)

	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	slowStarted := make(chan struct{}, 10)
	var slowDone []string
	var mu sync.Mutex
	subscribe(t, c, "slow", func(m mqtt.Message) {
		slowStarted <- struct{}{}
		<-release
		mu.Lock()
		slowDone = append(slowDone, string(m.Payload))
		mu.Unlock()
	})
	fast := make(chan mqtt.Message, 10)
	subscribe(t, c, "fast", func(m mqtt.Message) { fast <- m })

	// The first message blocks the slow handler; the next ones wait in its queue. If
	// the handler ran on Paho's goroutine they would stall every later message and ack.
	for i := 1; i <= 3; i++ {
		harness.Publish(t, b.URL(), "slow", fmt.Sprint(i), false)
	}
	receive(t, slowStarted, "slow handler start")

	harness.Publish(t, b.URL(), "fast", "go", false)
	if m := receive(t, fast, "message for the other subscription"); string(m.Payload) != "go" {
		t.Errorf("fast handler got %q; want go", m.Payload)
	}

	done := make(chan error, 1)
	c.PublishAsync("out", []byte("x"), false, func(err error) { done <- err })
	if err := receive(t, done, "PublishAsync outcome while a handler blocks"); err != nil {
		t.Errorf("PublishAsync() reported %v; want nil", err)
	}
	if err := c.Publish(t.Context(), "out", []byte("y"), false); err != nil {
		t.Errorf("Publish() while a handler blocks error = %v; want nil", err)
	}

	close(release)
	receive(t, slowStarted, "second slow message")
	receive(t, slowStarted, "third slow message")
	harness.Publish(t, b.URL(), "fast", "fence", false)
	receive(t, fast, "fence")
}

func TestClient_HandlerOrderAndPanic(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, logs := newClient(t, b.URL(), nil)
	connect(t, c)

	got := make(chan string, 100)
	subscribe(t, c, "p/#", func(m mqtt.Message) {
		if string(m.Payload) == "boom" {
			panic("handler failure")
		}
		got <- string(m.Payload)
	})

	for _, p := range []string{"1", "boom", "2", "3"} {
		if err := c.Publish(t.Context(), "p/x", []byte(p), false); err != nil {
			t.Fatalf("Publish(%q) error = %v", p, err)
		}
	}
	for _, want := range []string{"1", "2", "3"} {
		if v := receive(t, got, "message "+want); v != want {
			t.Errorf("handler got %q; want %q", v, want)
		}
	}
	if !strings.Contains(logs.String(), "handler failure") {
		t.Errorf("log does not record the handler panic:\n%s", logs)
	}
}

func TestClient_PublishAsyncOrder(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, _ := newClient(t, b.URL(), nil)
	connect(t, c)
	rec := harness.NewRecorder(t, b.URL(), "seq")

	const count = 200
	var mu sync.Mutex
	var outcomes []int
	allDone := make(chan struct{})
	for i := range count {
		c.PublishAsync("seq", []byte(fmt.Sprint(i)), false, func(err error) {
			if err != nil {
				t.Errorf("PublishAsync(%d) reported %v; want nil", i, err)
			}
			mu.Lock()
			outcomes = append(outcomes, i)
			if len(outcomes) == count {
				close(allDone)
			}
			mu.Unlock()
		})
	}
	receive(t, allDone, "every PublishAsync outcome")

	mu.Lock()
	for i, v := range outcomes {
		if v != i {
			t.Fatalf("outcome %d belongs to message %d; want call order", i, v)
		}
	}
	mu.Unlock()

	rec.WaitPayload(t, waitTimeout, "seq", fmt.Sprint(count-1))
	for i, m := range rec.Messages() {
		if m.Payload != fmt.Sprint(i) {
			t.Fatalf("message %d on the wire = %q; want %d", i, m.Payload, i)
		}
	}
}

func TestClient_Unsubscribe(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	c, _ := newClient(t, b.URL(), nil)
	connect(t, c)

	gone := make(chan mqtt.Message, 10)
	fence := make(chan mqtt.Message, 10)
	subscribe(t, c, "gone", func(m mqtt.Message) { gone <- m })
	subscribe(t, c, "fence", func(m mqtt.Message) { fence <- m })

	if err := c.Unsubscribe(t.Context(), "gone"); err != nil {
		t.Fatalf("Unsubscribe() error = %v", err)
	}
	harness.Publish(t, b.URL(), "gone", "late", false)
	harness.Publish(t, b.URL(), "fence", "after", false)
	receive(t, fence, "fence message")

	select {
	case m := <-gone:
		t.Errorf("handler of an unsubscribed filter got %+v", m)
	default:
	}
}

func TestClient_Close(t *testing.T) {
	b := harness.StartBroker(t, harness.BrokerOptions{})
	const stateTopic = "loqed/bridge/state"
	c, _ := newClient(t, b.URL(), func(o *mqtt.Options) { o.WillTopic = stateTopic })
	connect(t, c)
	if got := harness.Retained(t, b.URL(), stateTopic)[stateTopic]; got != "online" {
		t.Fatalf("retained %s after Connect = %q; want online", stateTopic, got)
	}

	pending := make(chan error, 1)
	c.PublishAsync("last", []byte("words"), true, func(err error) { pending <- err })

	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	select {
	case err := <-pending:
		if err != nil {
			t.Errorf("pending PublishAsync reported %v; want nil", err)
		}
	default:
		t.Errorf("Close() returned before the pending PublishAsync outcome")
	}

	retained := harness.Retained(t, b.URL(), "#")
	if retained[stateTopic] != "offline" {
		t.Errorf("retained %s after Close = %q; want offline", stateTopic, retained[stateTopic])
	}
	if retained["last"] != "words" {
		t.Errorf("retained last after Close = %q; want words", retained["last"])
	}

	if err := c.Close(t.Context()); err != nil {
		t.Errorf("second Close() error = %v; want nil", err)
	}
	if c.IsConnected() {
		t.Errorf("IsConnected() after Close = true")
	}
	if err := c.Publish(t.Context(), "x", nil, false); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish() after Close error = %v; want ErrNotConnected", err)
	}
	if err := c.Subscribe(t.Context(), "x", 1, func(mqtt.Message) {}); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Subscribe() after Close error = %v; want ErrNotConnected", err)
	}
	done := make(chan error, 1)
	c.PublishAsync("x", nil, false, func(err error) { done <- err })
	if err := receive(t, done, "PublishAsync outcome after Close"); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("PublishAsync() after Close reported %v; want ErrNotConnected", err)
	}
	if err := c.Connect(t.Context()); err == nil {
		t.Errorf("Connect() after Close error = nil; want an error")
	}
}

func TestClient_ConnectContextEnds(t *testing.T) {
	url := fmt.Sprintf("tcp://127.0.0.1:%d", harness.FreePort(t))
	c, logs := newClient(t, url, nil)

	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	err := c.Connect(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect() without a broker error = %v; want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Connect() error = %q; want it to name the last connection error", err)
	}
	if !strings.Contains(logs.String(), "Connection attempt to the MQTT broker failed") {
		t.Errorf("log lacks the failed connection attempt:\n%s", logs)
	}
	if err := c.Connect(t.Context()); err == nil {
		t.Errorf("second Connect() error = nil; want an error")
	}
}

func TestClient_Credentials(t *testing.T) {
	const password = "hunter2-secret"
	b := harness.StartBroker(t, harness.BrokerOptions{Username: "bridge", Password: password})

	good, goodLogs := newClient(t, b.URL(), func(o *mqtt.Options) {
		o.Username, o.Password = "bridge", password
	})
	connect(t, good)

	bad, badLogs := newClient(t, b.URL(), func(o *mqtt.Options) {
		o.ClientID += "-bad"
		o.Username, o.Password = "bridge", password+"-wrong"
	})
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	err := bad.Connect(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("Connect() with a wrong password error = %v; want a deadline error naming the rejection", err)
	}

	for _, logs := range []string{goodLogs.String(), badLogs.String()} {
		if strings.Contains(logs, password) {
			t.Errorf("log contains the password:\n%s", logs)
		}
	}
}

func TestClient_CloseEndsConnect(t *testing.T) {
	url := fmt.Sprintf("tcp://127.0.0.1:%d", harness.FreePort(t))
	c, _ := newClient(t, url, nil)

	result := make(chan error, 1)
	go func() { result <- c.Connect(context.Background()) }()

	// Connect may begin before or after Close; either way it must end with
	// ErrNotConnected instead of retrying forever.
	if err := c.Close(t.Context()); err != nil {
		t.Errorf("Close() during Connect error = %v; want nil", err)
	}
	if err := receive(t, result, "Connect outcome after Close"); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Connect() ended by Close error = %v; want ErrNotConnected", err)
	}
}
