package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// clientTimeout bounds each connect, SUBACK and PUBACK of the helper clients.
const clientTimeout = 10 * time.Second

// Message is a message received by a Recorder.
type Message struct {
	Topic    string
	Payload  string
	Retained bool
	At       time.Time
}

func (m Message) String() string {
	return fmt.Sprintf("%s %q retained=%t at %s", m.Topic, m.Payload, m.Retained, m.At.Format("15:04:05.000"))
}

// Recorder is a real MQTT client subscribed to one filter that records every message it
// receives. It reconnects and subscribes again after a broker restart.
type Recorder struct {
	client paho.Client
	filter string

	mu         sync.Mutex
	messages   []Message
	subscribes int           // successful subscriptions, one per connection
	changed    chan struct{} // closed and replaced on every new message or subscription
}

// NewRecorder connects to brokerURL and subscribes to filter with QoS 1. It returns
// after the SUBACK, so every message published afterwards is recorded. The client
// disconnects when the test ends.
func NewRecorder(tb testing.TB, brokerURL, filter string) *Recorder {
	tb.Helper()

	r := &Recorder{filter: filter, changed: make(chan struct{})}
	subscribed := make(chan error, 1)

	opts := clientOptions(brokerURL, "recorder").
		SetAutoReconnect(true).
		SetMaxReconnectInterval(time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			// Paho calls this on a goroutine of its own, so waiting here is safe.
			token := c.Subscribe(filter, 1, r.record)
			err := waitToken(token, "subscribe to "+filter)
			if err == nil && token.(*paho.SubscribeToken).Result()[filter] == 0x80 {
				err = fmt.Errorf("broker rejected the subscription to %q", filter)
			}
			if err == nil {
				r.noteSubscribed()
			}
			select {
			case subscribed <- err:
			default:
			}
		})
	r.client = connect(tb, opts, brokerURL)
	tb.Cleanup(func() { r.client.Disconnect(250) })

	select {
	case err := <-subscribed:
		if err != nil {
			tb.Fatalf("recorder on %s: %v", brokerURL, err)
		}
	case <-time.After(clientTimeout):
		tb.Fatalf("recorder on %s: no SUBACK for %q within %v", brokerURL, filter, clientTimeout)
	}
	return r
}

func (r *Recorder) record(_ paho.Client, m paho.Message) {
	msg := Message{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained(), At: time.Now()}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, msg)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Recorder) noteSubscribed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subscribes++
	close(r.changed)
	r.changed = make(chan struct{})
}

// WaitSubscribed waits up to timeout until the recorder has subscribed n times in total,
// once per connection: n = 2 means it is back after one broker restart.
func (r *Recorder) WaitSubscribed(tb testing.TB, timeout time.Duration, n int) {
	tb.Helper()

	timer := time.NewTimer(timeout)
	defer timer.Stop()

	for {
		r.mu.Lock()
		count, changed := r.subscribes, r.changed
		r.mu.Unlock()
		if count >= n {
			return
		}

		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("recorder on %q subscribed %d times within %v; want %d", r.filter, count, timeout, n)
			return
		}
	}
}

// Messages returns a copy of the messages recorded so far, oldest first.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.messages...)
}

// Reset discards the messages recorded so far, so the next WaitFor only sees later ones.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = nil
}

// WaitFor returns the oldest recorded message that matches, waiting up to timeout for
// one to arrive. It fails the test with the last recorded messages otherwise.
func (r *Recorder) WaitFor(tb testing.TB, timeout time.Duration, match func(Message) bool) Message {
	tb.Helper()

	timer := time.NewTimer(timeout)
	defer timer.Stop()

	next := 0
	for {
		r.mu.Lock()
		for ; next < len(r.messages); next++ {
			if m := r.messages[next]; match(m) {
				r.mu.Unlock()
				return m
			}
		}
		changed := r.changed
		r.mu.Unlock()

		select {
		case <-changed:
			// Reset may have shortened the list since.
			r.mu.Lock()
			next = min(next, len(r.messages))
			r.mu.Unlock()
		case <-timer.C:
			tb.Fatalf("no matching message on %q within %v; last messages:\n%s", r.filter, timeout, r.lastMessages(20))
			return Message{}
		}
	}
}

// WaitPayload waits up to timeout for a message with the given topic and payload.
func (r *Recorder) WaitPayload(tb testing.TB, timeout time.Duration, topic, payload string) Message {
	tb.Helper()

	return r.WaitFor(tb, timeout, func(m Message) bool {
		return m.Topic == topic && m.Payload == payload
	})
}

func (r *Recorder) lastMessages(n int) string {
	msgs := r.Messages()
	if len(msgs) == 0 {
		return "(none)"
	}
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	lines := make([]string, len(msgs))
	for i, m := range msgs {
		lines[i] = m.String()
	}
	return strings.Join(lines, "\n")
}

// Retained returns the retained messages under filter as topic to payload. It subscribes
// to filter and to a sentinel topic, publishes to the sentinel after both SUBACKs and
// collects until the sentinel arrives: a broker sends the retained messages of a
// subscription before any message published after it.
func Retained(tb testing.TB, brokerURL, filter string) map[string]string {
	tb.Helper()

	sentinel := "harness/sentinel/" + randomID()
	retained := map[string]string{}
	done := make(chan struct{})
	var (
		mu       sync.Mutex
		finished bool
	)

	// OrderMatters (the default) calls this handler in arrival order on one goroutine.
	handle := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case m.Topic() == sentinel:
			// Overlapping subscriptions can deliver the sentinel twice.
			if !finished {
				finished = true
				close(done)
			}
		case m.Retained():
			retained[m.Topic()] = string(m.Payload())
		}
	}

	client := connect(tb, clientOptions(brokerURL, "retained").SetDefaultPublishHandler(handle), brokerURL)
	defer client.Disconnect(250)

	token := client.SubscribeMultiple(map[string]byte{filter: 1, sentinel: 1}, nil)
	if err := waitToken(token, "subscribe to "+filter); err != nil {
		tb.Fatalf("retained snapshot of %q on %s: %v", filter, brokerURL, err)
	}
	if err := waitToken(client.Publish(sentinel, 1, false, "end"), "publish to "+sentinel); err != nil {
		tb.Fatalf("retained snapshot of %q on %s: %v", filter, brokerURL, err)
	}

	select {
	case <-done:
	case <-time.After(clientTimeout):
		tb.Fatalf("retained snapshot of %q on %s: sentinel message did not arrive within %v", filter, brokerURL, clientTimeout)
	}

	mu.Lock()
	defer mu.Unlock()
	return retained
}

// Publish publishes payload to topic with QoS 1 from a fresh client and waits for the
// PUBACK.
func Publish(tb testing.TB, brokerURL, topic, payload string, retained bool) {
	tb.Helper()

	client := connect(tb, clientOptions(brokerURL, "publisher"), brokerURL)
	defer client.Disconnect(250)

	if err := waitToken(client.Publish(topic, 1, retained, payload), "publish to "+topic); err != nil {
		tb.Fatalf("publish on %s: %v", brokerURL, err)
	}
}

// clientOptions returns Paho options for a helper client with a unique client ID. Paho
// takes user name and password from the URL's user information.
func clientOptions(brokerURL, role string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID("harness-" + role + "-" + randomID()).
		SetCleanSession(true).
		SetConnectTimeout(clientTimeout).
		SetAutoReconnect(false)
}

func connect(tb testing.TB, opts *paho.ClientOptions, brokerURL string) paho.Client {
	tb.Helper()

	client := paho.NewClient(opts)
	if err := waitToken(client.Connect(), "connect"); err != nil {
		tb.Fatalf("cannot connect to %s: %v", brokerURL, err)
	}
	return client
}

// waitToken waits up to clientTimeout for token and returns its error.
func waitToken(token paho.Token, what string) error {
	if !token.WaitTimeout(clientTimeout) {
		return fmt.Errorf("%s: timed out after %v", what, clientTimeout)
	}
	if err := token.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
