package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const waitTimeout = 10 * time.Second

func TestStartBroker_PublishAndRecord(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") {
		t.Fatalf("URL() = %q; want tcp://127.0.0.1:PORT", b.URL())
	}

	rec := NewRecorder(t, b.URL(), "a/#")
	Publish(t, b.URL(), "a/b", "hello", false)
	Publish(t, b.URL(), "a/c", "kept", true)
	Publish(t, b.URL(), "other", "ignored", false)

	got := rec.WaitPayload(t, waitTimeout, "a/b", "hello")
	if got.Retained {
		t.Errorf("live message Retained = true; want false")
	}
	rec.WaitPayload(t, waitTimeout, "a/c", "kept")

	for _, m := range rec.Messages() {
		if m.Topic == "other" {
			t.Errorf("recorder on a/# recorded %v", m)
		}
	}
}

func TestRetained_Snapshot(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	Publish(t, b.URL(), "home/lock/1/state", "locked", true)
	Publish(t, b.URL(), "home/lock/2/state", "open", true)
	Publish(t, b.URL(), "home/lock/2/event", "live only", false)
	Publish(t, b.URL(), "elsewhere", "x", true)

	got := Retained(t, b.URL(), "home/#")
	want := map[string]string{"home/lock/1/state": "locked", "home/lock/2/state": "open"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Retained(home/#) = %v; want %v", got, want)
	}

	// An empty retained payload deletes the retained message.
	Publish(t, b.URL(), "home/lock/1/state", "", true)
	got = Retained(t, b.URL(), "home/#")
	want = map[string]string{"home/lock/2/state": "open"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Retained(home/#) after delete = %v; want %v", got, want)
	}
}

func TestBroker_StopStartSamePort(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	url := b.URL()
	rec := NewRecorder(t, url, "t/#")
	Publish(t, url, "t/retained", "before", true)
	rec.WaitPayload(t, waitTimeout, "t/retained", "before")

	b.Stop()
	if conn, err := net.Dial("tcp", b.Addr()); err == nil {
		conn.Close()
		t.Fatalf("dial %s after Stop succeeded; want connection refused", b.Addr())
	}

	b.Start()
	if b.URL() != url {
		t.Fatalf("URL() after restart = %q; want %q", b.URL(), url)
	}
	if got := Retained(t, url, "t/#"); len(got) != 0 {
		t.Errorf("Retained(t/#) after restart = %v; want none because persistence is off", got)
	}

	// The recorder reconnects and subscribes again on its own.
	rec.WaitSubscribed(t, waitTimeout, 2)
	rec.Reset()
	Publish(t, url, "t/after", "after", false)
	rec.WaitPayload(t, waitTimeout, "t/after", "after")
}

func TestBroker_KillAndStart(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	Publish(t, b.URL(), "k", "v", true)

	b.Kill()
	if err := publishOnce(b.URL(), "k", "v"); err == nil {
		t.Fatalf("publish after Kill succeeded; want a connection error")
	}

	b.Start()
	Publish(t, b.URL(), "k", "v2", true)
	if got := Retained(t, b.URL(), "k"); got["k"] != "v2" || len(got) != 1 {
		t.Errorf("Retained(k) = %v; want map[k:v2]", got)
	}
}

func TestStartBroker_Credentials(t *testing.T) {
	b := StartBroker(t, BrokerOptions{Username: "bridge", Password: "s3cret pass"})

	if err := publishOnce(b.URL(), "x", "anonymous"); err == nil {
		t.Errorf("anonymous publish succeeded; want the connection rejected")
	}
	if err := publishOnce("tcp://bridge:wrong@"+b.Addr(), "x", "wrong"); err == nil {
		t.Errorf("publish with a wrong password succeeded; want the connection rejected")
	}

	rec := NewRecorder(t, b.AuthURL(), "x")
	Publish(t, b.AuthURL(), "x", "authorized", false)
	rec.WaitPayload(t, waitTimeout, "x", "authorized")
}

func TestStartBroker_NoDelayConfig(t *testing.T) {
	b := StartBroker(t, BrokerOptions{NoDelay: true})

	conf, err := os.ReadFile(filepath.Join(b.dir, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "set_tcp_nodelay true\n") {
		t.Errorf("config lacks set_tcp_nodelay true:\n%s", conf)
	}
	rec := NewRecorder(t, b.URL(), "n")
	Publish(t, b.URL(), "n", "fast", false)
	rec.WaitPayload(t, waitTimeout, "n", "fast")
}

func TestStartBroker_PortTaken(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	b.Stop()

	// Occupy the port, then free it while Start is retrying.
	l, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("cannot occupy %s: %v", b.Addr(), err)
	}
	go func() {
		// Closing after the first failed attempt has been logged exercises the retry.
		b.logs.waitFor("Address already in use", waitTimeout)
		l.Close()
	}()

	b.Start()
	if !strings.Contains(b.Log(), "Address already in use") {
		t.Errorf("broker log shows no bind failure; the retry path was not exercised:\n%s", b.Log())
	}
	Publish(t, b.URL(), "p", "ok", false)
}

func TestRecorder_WaitForTimesOut(t *testing.T) {
	b := StartBroker(t, BrokerOptions{})
	rec := NewRecorder(t, b.URL(), "w")
	Publish(t, b.URL(), "w", "not it", false)
	rec.WaitPayload(t, waitTimeout, "w", "not it")

	fake := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.WaitPayload(fake, 200*time.Millisecond, "w", "never")
	}()
	<-done

	if !strings.Contains(fake.message, "no matching message") || !strings.Contains(fake.message, `"not it"`) {
		t.Errorf("WaitFor failure message = %q; want it to name the timeout and list the recorded messages", fake.message)
	}
}

func TestStartBroker_NoBrokerAvailable(t *testing.T) {
	// Without a mosquitto binary StartBroker tries Docker, which this machine may lack.
	// Either way it must start a broker or fail the test with a clear message.
	saved := mosquittoBinary
	mosquittoBinary = func() string { return "" }
	t.Cleanup(func() { mosquittoBinary = saved })

	fake := &fatalRecorder{TB: t}
	done := make(chan *Broker, 1)
	go func() {
		defer close(done)
		done <- StartBroker(fake, BrokerOptions{})
	}()
	b := <-done

	if b != nil {
		Publish(t, b.URL(), "docker", "works", false)
		return
	}
	if !strings.Contains(fake.message, "no mosquitto binary in PATH or /usr/sbin") || !strings.Contains(fake.message, "testcontainers") {
		t.Errorf("StartBroker failure message = %q; want it to name both missing ways to start Mosquitto", fake.message)
	}
	t.Logf("StartBroker failure message: %s", fake.message)
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort() = %d; want a TCP port", port)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("cannot listen on the free port %d: %v", port, err)
	}
	l.Close()
}

// fatalRecorder captures Fatalf and ends the calling goroutine as testing.T does.
type fatalRecorder struct {
	testing.TB
	mu      sync.Mutex
	message string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.message = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// publishOnce publishes with QoS 1 and returns the error instead of failing the test.
func publishOnce(url, topic, payload string) error {
	client := paho.NewClient(clientOptions(url, "probe").SetConnectTimeout(2 * time.Second))
	if err := waitToken(client.Connect(), "connect"); err != nil {
		return err
	}
	defer client.Disconnect(100)
	return waitToken(client.Publish(topic, 1, false, payload), "publish")
}
