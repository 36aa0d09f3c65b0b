package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

// TestRetainedOpenBeforeStart leaves a retained "open" on a lock's command
// topic before the bridge starts. The bridge clears it, ignores the empty
// retained message that clears it, and never calls the API.
func TestRetainedOpenBeforeStart(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	setTopic := "loqed/" + lock.ID + "/set"

	harness.Publish(t, broker.URL(), setTopic, "open", true)
	if got := harness.Retained(t, broker.URL(), setTopic); got[setTopic] != "open" {
		t.Fatalf("retained %s = %q before the start; want open", setTopic, got[setTopic])
	}
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")

	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))

	// The clear: an empty message on the command topic.
	rec.WaitFor(t, waitFor, func(m harness.Message) bool { return m.Topic == setTopic && m.Payload == "" })
	if got, ok := harness.Retained(t, broker.URL(), setTopic)[setTopic]; ok {
		t.Errorf("retained %s = %q after the start; want it cleared", setTopic, got)
	}

	// A command published after the clear is handled after it, on the same
	// subscription: once its result arrives, the clear was handled too.
	harness.Publish(t, broker.URL(), setTopic, "sideways", false)
	awaitOutcome(t, rec, lock.ID, outcomeIs("set", "failed", "invalid_payload"))

	for _, m := range rec.Messages() {
		if m.Topic == "loqed/"+lock.ID+"/command_result" && !strings.Contains(m.Payload, "invalid_payload") {
			t.Errorf("command_result for the retained command or its clear: %s", m.Payload)
		}
		if m.Topic == "loqed/"+lock.ID+"/state" && m.Payload == "opening" {
			t.Errorf("the lock was shown opening")
		}
	}
	if n := acct.CountRequests(http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state"); n != 0 {
		t.Errorf("bolt_state calls = %d; want 0", n)
	}
	if n := len(p.logLinesWithMessage("ignoring a retained command and clearing it; publish commands without the retain flag")); n != 1 {
		t.Errorf("retained command logged %d times; want 1", n)
	}
	if v := metricValue(scrapeMetrics(t, p), "loqed2mqtt_commands_retained_total"); v != "1" {
		t.Errorf("loqed2mqtt_commands_retained_total = %q; want 1", v)
	}
}

// logLinesWithMessage returns the log lines whose message is msg.
func (p *bridgeProcess) logLinesWithMessage(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if l["message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestAPIFaults checks the retry policy against a failing API: lock and
// unlock commands are retried after timeouts and 5xx, open never is, and a
// 4xx is final at once.
func TestAPIFaults(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 6})
	locks := acct.Locks()
	p := startBridge(t, broker, acct, map[string]string{"LOQED_API_TIMEOUT": "1s"})
	acct.SetWebhookURL(p.webhookURL(""))
	rec := harness.NewRecorder(t, broker.URL(), "loqed/+/command_result")

	cases := []struct {
		name    string
		fault   func()
		command string
		calls   int
		status  string
		code    string
	}{
		{"500 retried", func() { acct.FailNext(2, http.StatusInternalServerError, 0) }, "night_lock", 3, "confirmed", ""},
		{"503 of open not retried", func() { acct.FailNext(1, http.StatusServiceUnavailable, 0) }, "open", 1, "failed", "server_error"},
		{"400 not retried", func() { acct.FailNext(1, http.StatusBadRequest, 0) }, "night_lock", 1, "failed", "bad_request"},
		{"404 not retried", func() { acct.FailNext(1, http.StatusNotFound, 0) }, "night_lock", 1, "failed", "not_found"},
		{"timeout retried", func() { acct.DelayNext(1, 3*time.Second) }, "night_lock", 2, "confirmed", ""},
		{"timeout of open not retried", func() { acct.DelayNext(1, 3*time.Second) }, "open", 1, "failed", "timeout"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lock := locks[i]
			path := "/api/locks/" + lock.ID + "/bolt_state/" + tc.command
			tc.fault()
			harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", tc.command, false)
			r := awaitOutcome(t, rec, lock.ID, func(r outcome) bool { return r.Status != "sent" })
			if r.Status != tc.status || r.Code != tc.code {
				t.Errorf("result = %+v; want %s with code %q", r, tc.status, tc.code)
			}
			if n := acct.CountRequests(http.MethodGet, path); n != tc.calls {
				t.Errorf("%s calls = %d; want %d", path, n, tc.calls)
			}
		})
	}
}

// relay is a TCP relay on loopback between the bridge and the broker. While
// it holds, it closes new connections at once, which keeps the bridge away
// from a restarted broker until a subscriber is back and can count what the
// bridge sends.
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	held  bool
	conns map[net.Conn]bool
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go r.serve()
	t.Cleanup(r.close)
	return r
}

func (r *relay) URL() string { return "tcp://" + r.ln.Addr().String() }

func (r *relay) hold(held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = held
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.pipe(c)
	}
}

// pipe copies between a client and a new broker connection until either
// side closes, then closes both.
func (r *relay) pipe(client net.Conn) {
	r.mu.Lock()
	held := r.held
	r.mu.Unlock()
	if held {
		client.Close()
		return
	}
	broker, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	r.mu.Lock()
	r.conns[client], r.conns[broker] = true, true
	r.mu.Unlock()

	done := make(chan struct{}, 2)
	go func() { io.Copy(broker, client); done <- struct{}{} }()
	go func() { io.Copy(client, broker); done <- struct{}{} }()
	<-done
	client.Close()
	broker.Close()

	r.mu.Lock()
	delete(r.conns, client)
	delete(r.conns, broker)
	r.mu.Unlock()
}

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
}

// TestBrokerRestartMidStream posts 1,000 webhooks for 20 locks and kills
// the broker in the middle of the stream, then starts it again empty. Every
// webhook gets a 200 response, and at the end every lock's retained topics are
// those of its last webhook. A subscriber counts the event messages: the
// bridge reaches the restarted broker through a relay that lets it in only
// after the subscriber has subscribed again.
func TestBrokerRestartMidStream(t *testing.T) {
	const (
		locks   = 20
		perLock = 50
	)
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	gate := startRelay(t, broker.Addr())
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false", "MQTT_URL": gate.URL()})
	events := harness.NewRecorder(t, broker.URL(), "loqed/+/event")

	types := []string{"STATE_CHANGED_NIGHT_LOCK", "STATE_CHANGED_LATCH", "STATE_CHANGED_OPEN"}
	states := []string{"night_lock", "day_lock", "open"}
	lockID := func(l int) string { return fmt.Sprintf("restart-%02d", l) }
	keyName := func(l, i int) string { return fmt.Sprintf("key-%02d-%03d", l, i) }
	kind := func(l, i int) int { return (l + i) % len(types) }

	// The MQTT client may take its 10s write timeout to notice the lost
	// connection; a webhook response must never wait for that.
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		mu         sync.Mutex
		failures   []string
		maxLatency time.Duration
	)
	// post sends webhooks from..to-1 of every lock, one goroutine per lock,
	// so that each lock's webhooks arrive in order.
	post := func(from, to int) *sync.WaitGroup {
		var wg sync.WaitGroup
		for l := 0; l < locks; l++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from; i < to; i++ {
					body := fmt.Sprintf(`{"event_type":%q,"lock_id":%q,"key_local_id":"%d","key_name_user":%q}`,
						types[kind(l, i)], lockID(l), l+1, keyName(l, i))
					start := time.Now()
					resp, err := client.Post(p.webhookURL(""), "application/json", strings.NewReader(body))
					mu.Lock()
					maxLatency = max(maxLatency, time.Since(start))
					mu.Unlock()
					if err != nil {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s #%d: %v", lockID(l), i, err))
						mu.Unlock()
						continue
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s #%d: status %d", lockID(l), i, resp.StatusCode))
						mu.Unlock()
					}
				}
			}()
		}
		return &wg
	}

	// The stream: 400 webhooks with the broker up, 200 while it is killed,
	// 200 while it is down, 200 while it starts again.
	post(0, 20).Wait()
	// Every event of the first part reaches a subscriber before the kill.
	received := map[string]bool{}
	events.WaitFor(t, 30*time.Second, func(m harness.Message) bool {
		received[m.Payload] = true
		return len(received) == locks*20
	})
	running := post(20, 30)
	gate.hold(true)
	broker.Kill()
	running.Wait()
	post(30, 40).Wait()
	running = post(40, perLock)
	broker.Start()
	running.Wait()
	events.WaitSubscribed(t, waitFor, 2)
	gate.hold(false)

	for _, f := range failures {
		t.Errorf("webhook without a 200 response: %s", f)
	}
	t.Logf("slowest webhook response: %s", maxLatency.Round(time.Millisecond))

	// Wait until each lock's last webhook is on the broker, then compare the
	// retained topics.
	last := harness.NewRecorder(t, broker.URL(), "loqed/+/last_changed_by")
	for l := 0; l < locks; l++ {
		last.WaitPayload(t, 30*time.Second, "loqed/"+lockID(l)+"/last_changed_by", keyName(l, perLock-1))
	}
	retained := harness.Retained(t, broker.URL(), "loqed/#")
	lost := 0
	for l := 0; l < locks; l++ {
		id := lockID(l)
		wantState, wantBy := states[kind(l, perLock-1)], keyName(l, perLock-1)
		gotState, gotBy := retained["loqed/"+id+"/state"], retained["loqed/"+id+"/last_changed_by"]
		if gotState != wantState || gotBy != wantBy {
			lost++
			t.Errorf("%s retained state %q by %q; want %q by %q", id, gotState, gotBy, wantState, wantBy)
		}
	}
	t.Logf("final states lost: %d of %d", lost, locks)

	// Count the events the subscriber saw: distinct, duplicated, and whether
	// each lock's first copies came in order. Only events the broker had
	// acknowledged but not yet forwarded when it was killed may be missing.
	metrics := awaitMetric(t, p, "loqed2mqtt_events_queued", "0")
	seen := map[string]bool{}
	duplicates, outOfOrder := 0, 0
	next := map[string]int{}
	for _, m := range events.Messages() {
		var ev struct {
			LockID      string `json:"lock_id"`
			KeyNameUser string `json:"key_name_user"`
		}
		if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
			t.Fatalf("event %q is not JSON: %v", m.Payload, err)
		}
		if seen[ev.KeyNameUser] {
			duplicates++
			continue
		}
		seen[ev.KeyNameUser] = true
		var l, i int
		fmt.Sscanf(ev.KeyNameUser, "key-%d-%d", &l, &i)
		if i < next[ev.LockID] {
			outOfOrder++
			t.Logf("%s: event %d arrived after event %d", ev.LockID, i, next[ev.LockID]-1)
		}
		next[ev.LockID] = i + 1
	}
	missing := 0
	for l := 0; l < locks; l++ {
		for i := 0; i < perLock; i++ {
			if seen[keyName(l, i)] {
				continue
			}
			missing++
			if i < 20 || i >= 30 {
				t.Errorf("event %s of %s never arrived, and it was not sent while the broker was killed", keyName(l, i), lockID(l))
			}
		}
	}
	t.Logf("events: %d sent, %d received (%d missing), %d received twice, %d out of order; bridge: dropped %s, still queued %s",
		locks*perLock, len(seen), missing, duplicates, outOfOrder,
		metricValue(metrics, "loqed2mqtt_events_dropped_total"), metricValue(metrics, "loqed2mqtt_events_queued"))
	if outOfOrder > 0 {
		t.Errorf("%d events of a lock arrived after a later event of the same lock", outOfOrder)
	}
	if v := metricValue(metrics, "loqed2mqtt_events_dropped_total"); v != "0" {
		t.Errorf("loqed2mqtt_events_dropped_total = %q; want 0 below the queue bound", v)
	}
}

// awaitMetric polls the bridge's metrics until the unlabelled metric has the
// value, and returns the last exposition.
func awaitMetric(t *testing.T, p *bridgeProcess, name, want string) string {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	for {
		text := scrapeMetrics(t, p)
		if metricValue(text, name) == want {
			return text
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s = %q after %s; want %s", name, metricValue(text, name), waitFor, want)
			return text
		}
	}
}
