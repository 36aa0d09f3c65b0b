package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

// outcome is a decoded <base>/<id>/command_result payload.
type outcome struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// awaitOutcome waits for a command result of the lock that matches and
// returns it decoded.
func awaitOutcome(t *testing.T, rec *harness.Recorder, lockID string, match func(outcome) bool) outcome {
	t.Helper()
	var got outcome
	rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		if m.Topic != "loqed/"+lockID+"/command_result" {
			return false
		}
		var r outcome
		if err := json.Unmarshal([]byte(m.Payload), &r); err != nil {
			t.Errorf("command_result %q is not JSON: %v", m.Payload, err)
			return false
		}
		if !match(r) {
			return false
		}
		got = r
		return true
	})
	return got
}

// outcomeIs matches a result by command, status and code.
func outcomeIs(command, status, code string) func(outcome) bool {
	return func(r outcome) bool {
		return r.Command == command && r.Status == status && r.Code == code
	}
}

// lockEntity waits for the device discovery config of the lock and returns
// its lock component.
func lockEntity(t *testing.T, rec *harness.Recorder, lockID string) map[string]any {
	t.Helper()
	m := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "homeassistant/device/loqed_"+lockID+"/config" && m.Payload != ""
	})
	var cfg struct {
		Components map[string]map[string]any `json:"components"`
	}
	if err := json.Unmarshal([]byte(m.Payload), &cfg); err != nil {
		t.Fatalf("discovery config of %s is not JSON: %v", lockID, err)
	}
	for _, c := range cfg.Components {
		if c["platform"] == "lock" {
			return c
		}
	}
	t.Fatalf("discovery config of %s has no lock component: %s", lockID, m.Payload)
	return nil
}

// scrapeMetrics returns the bridge's Prometheus exposition.
func scrapeMetrics(t *testing.T, p *bridgeProcess) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

// metricValue returns the value of an unlabelled metric, or "" when the
// exposition lacks it.
func metricValue(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestCommandsAllowedWithoutOpen runs a bridge with COMMANDS_ALLOWED=lock,unlock:
// discovery offers no open action, and open and setting commands are
// rejected without an API call while lock commands still run.
func TestCommandsAllowedWithoutOpen(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	configs := harness.NewRecorder(t, broker.URL(), "homeassistant/device/+/config")
	p := startBridge(t, broker, acct, map[string]string{"COMMANDS_ALLOWED": "lock,unlock"})
	acct.SetWebhookURL(p.webhookURL(""))
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	entity := lockEntity(t, configs, lock.ID)
	if v, ok := entity["payload_open"]; ok {
		t.Errorf("lock component has payload_open %v; want none without open in COMMANDS_ALLOWED", v)
	}
	if entity["payload_lock"] != "night_lock" {
		t.Errorf("lock component payload_lock = %v; want night_lock", entity["payload_lock"])
	}

	lockCalls := func() int { return acct.CountRequests("", "/api/locks/"+lock.ID+"/") }
	for _, payload := range []string{"open", "OPEN", `{"state":"open","id":"o-1"}`} {
		rec.Reset()
		harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", payload, false)
		r := awaitOutcome(t, rec, lock.ID, func(r outcome) bool { return r.Command == "open" })
		if r.Status != "failed" || r.Code != "not_allowed" || r.OK {
			t.Errorf("open command %q result = %+v; want failed with code not_allowed", payload, r)
		}
	}
	rec.Reset()
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/settings/twist_assist/set", "ON", false)
	awaitOutcome(t, rec, lock.ID, outcomeIs("setting:twist_assist", "failed", "not_allowed"))
	if n := lockCalls(); n != 0 {
		t.Fatalf("API calls for the lock = %d after rejected commands; want 0", n)
	}

	// The allowed commands still run, so the rejections above are not a
	// bridge that runs nothing.
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "lock", false)
	awaitOutcome(t, rec, lock.ID, outcomeIs("night_lock", "confirmed", ""))
	if n := acct.CountRequests(http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/open"); n != 0 {
		t.Errorf("bolt_state/open calls = %d; want 0", n)
	}
	if n := acct.CountRequests(http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/night_lock"); n != 1 {
		t.Errorf("bolt_state/night_lock calls = %d; want 1", n)
	}
}

// TestCommandPIN runs a bridge with COMMAND_PIN: commands without the code
// or with a wrong one are rejected, and the payload Home Assistant renders
// from the discovery config's command_template runs.
func TestCommandPIN(t *testing.T) {
	const pin = "4321"
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	configs := harness.NewRecorder(t, broker.URL(), "homeassistant/device/+/config")
	p := startBridge(t, broker, acct, map[string]string{"COMMAND_PIN": pin})
	acct.SetWebhookURL(p.webhookURL(""))
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	entity := lockEntity(t, configs, lock.ID)
	if entity["payload_open"] != "open" {
		t.Errorf("lock component payload_open = %v; want open with the default COMMANDS_ALLOWED", entity["payload_open"])
	}
	format, _ := entity["code_format"].(string)
	if format == "" {
		t.Fatalf("lock component has no code_format with COMMAND_PIN set: %v", entity)
	}
	if !regexp.MustCompile(format).MatchString(pin) {
		t.Errorf("code_format %q rejects the PIN %q", format, pin)
	}
	template, _ := entity["command_template"].(string)
	payloadLock, _ := entity["payload_lock"].(string)
	// Home Assistant renders value as the payload of the action and code as
	// what the user typed.
	rendered := strings.NewReplacer("{{ value }}", payloadLock, "{{ code }}", pin).Replace(template)
	if want := `{"action":"night_lock","code":"4321"}`; rendered != want {
		t.Fatalf("command_template %q renders %q; want %q", template, rendered, want)
	}

	for _, payload := range []string{
		"night_lock",
		`{"action":"night_lock"}`,
		`{"action":"night_lock","code":"0000"}`,
		`{"action":"night_lock","code":"43210"}`,
		`{"state":"night_lock","code":""}`,
	} {
		rec.Reset()
		harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", payload, false)
		awaitOutcome(t, rec, lock.ID, outcomeIs("night_lock", "failed", "invalid_code"))
	}
	if n := acct.CountRequests("", "/api/locks/"+lock.ID+"/"); n != 0 {
		t.Fatalf("API calls for the lock = %d after commands with a wrong code; want 0", n)
	}
	if v := metricValue(scrapeMetrics(t, p), "loqed2mqtt_commands_bad_code_total"); v != "5" {
		t.Errorf("loqed2mqtt_commands_bad_code_total = %q; want 5", v)
	}

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", rendered, false)
	awaitOutcome(t, rec, lock.ID, outcomeIs("night_lock", "confirmed", ""))
	if n := acct.CountRequests(http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/night_lock"); n != 1 {
		t.Errorf("bolt_state/night_lock calls = %d; want 1", n)
	}
	if strings.Contains(p.log(), `"`+pin+`"`) || strings.Contains(p.log(), "code\":\""+pin) {
		t.Errorf("the log contains the PIN")
	}
}

// TestCommandOrder sends three commands for one lock in quick succession and
// checks that the API receives them one at a time in arrival order.
func TestCommandOrder(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	commands := []string{"night_lock", "day_lock", "night_lock"}
	for i, c := range commands {
		harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", fmt.Sprintf(`{"state":%q,"id":"c-%d"}`, c, i), false)
	}
	for i, c := range commands {
		id := fmt.Sprintf("c-%d", i)
		r := awaitOutcome(t, rec, lock.ID, func(r outcome) bool { return r.ID == id && r.Status != "sent" })
		if r.Status != "confirmed" || r.Command != c {
			t.Errorf("result of %s = %+v; want %s confirmed", id, r, c)
		}
	}

	var calls []string
	for _, r := range acct.Requests() {
		if state, ok := strings.CutPrefix(r.Path, "/api/locks/"+lock.ID+"/bolt_state/"); ok {
			calls = append(calls, state)
		}
	}
	if strings.Join(calls, ",") != strings.Join(commands, ",") {
		t.Errorf("bolt_state calls = %v; want %v", calls, commands)
	}

	// Each command ran only after the one before it was confirmed: its
	// "sent" result comes after the previous "confirmed" one.
	var order []string
	for _, m := range rec.Messages() {
		var r outcome
		if m.Topic == "loqed/"+lock.ID+"/command_result" && json.Unmarshal([]byte(m.Payload), &r) == nil {
			order = append(order, r.ID+":"+r.Status)
		}
	}
	want := "c-0:sent,c-0:confirmed,c-1:sent,c-1:confirmed,c-2:sent,c-2:confirmed"
	if strings.Join(order, ",") != want {
		t.Errorf("command results = %v; want %s", order, want)
	}
}

// TestCommandRejections checks that commands for unknown locks, unknown
// settings and malformed payloads are rejected on command_result with their
// code and never reach the API.
func TestCommandRejections(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))
	rec := harness.NewRecorder(t, broker.URL(), "loqed/+/command_result")

	const unknown = "no-such-lock"
	cases := []struct {
		name    string
		topic   string
		payload string
		lockID  string
		command string
		code    string
	}{
		{"unknown lock", "loqed/" + unknown + "/set", "night_lock", unknown, "night_lock", "unknown_lock"},
		{"unknown lock open", "loqed/" + unknown + "/set", `{"state":"open","id":"x"}`, unknown, "open", "unknown_lock"},
		{"unknown lock setting", "loqed/" + unknown + "/settings/twist_assist/set", "ON", unknown, "setting:twist_assist", "unknown_lock"},
		{"unknown lock refresh", "loqed/" + unknown + "/refresh", "1", unknown, "refresh", "unknown_lock"},
		{"unknown word", "loqed/" + lock.ID + "/set", "sideways", lock.ID, "set", "invalid_payload"},
		{"unknown field", "loqed/" + lock.ID + "/set", `{"state":"open","extra":1}`, lock.ID, "set", "invalid_payload"},
		{"trailing data", "loqed/" + lock.ID + "/set", `{"state":"open"} {"state":"night_lock"}`, lock.ID, "set", "invalid_payload"},
		{"state and action", "loqed/" + lock.ID + "/set", `{"state":"open","action":"night_lock"}`, lock.ID, "set", "invalid_payload"},
		{"not UTF-8", "loqed/" + lock.ID + "/set", "\xff\xfeopen", lock.ID, "set", "invalid_payload"},
		{"too long", "loqed/" + lock.ID + "/set", "open" + strings.Repeat(" ", 2000), lock.ID, "set", "invalid_payload"},
		{"setting value", "loqed/" + lock.ID + "/settings/twist_assist/set", "maybe", lock.ID, "setting:twist_assist", "invalid_payload"},
		{"unknown setting", "loqed/" + lock.ID + "/settings/self_destruct/set", "ON", lock.ID, "setting:self_destruct", "unknown_setting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			harness.Publish(t, broker.URL(), tc.topic, tc.payload, false)
			r := awaitOutcome(t, rec, tc.lockID, func(r outcome) bool { return r.Command == tc.command })
			if r.Status != "failed" || r.Code != tc.code || r.OK {
				t.Errorf("result = %+v; want failed with code %s", r, tc.code)
			}
			if r.Error == "" || strings.Contains(r.Error, "\n") {
				t.Errorf("result error = %q; want one sentence", r.Error)
			}
		})
	}

	if n := acct.CountRequests("", "/api/locks/"+lock.ID+"/"); n != 0 {
		t.Errorf("API calls for %s = %d; want 0", lock.ID, n)
	}
	if n := acct.CountRequests("", "/api/locks/"+unknown); n != 0 {
		t.Errorf("API calls for %s = %d; want 0", unknown, n)
	}
}

// TestWebhookEndpointLimits checks what the webhook endpoint rejects: other
// methods than POST, bodies over 64 KiB, malformed JSON and lock ids that
// cannot be a topic level, in the body or in the URL. None of them publishes
// anything.
func TestWebhookEndpointLimits(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false"})
	rec := harness.NewRecorder(t, broker.URL(), "loqed/#")

	send := func(t *testing.T, method, url, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp, string(answer)
	}

	t.Run("methods", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			for _, url := range []string{p.webhookURL(""), p.webhookURL("method-lock")} {
				resp, answer := send(t, method, url, `{"lock_id":"method-lock","battery_percentage":5}`)
				if resp.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("%s status = %d (%q); want 405", method, resp.StatusCode, answer)
				}
				if allow := resp.Header.Get("Allow"); allow != http.MethodPost {
					t.Errorf("%s Allow = %q; want POST", method, allow)
				}
			}
		}
	})

	t.Run("body size", func(t *testing.T) {
		small := `{"lock_id":"size-lock","battery_percentage":50}`
		exact := small + strings.Repeat(" ", 64<<10-len(small))
		if resp, answer := send(t, http.MethodPost, p.webhookURL(""), exact); resp.StatusCode != http.StatusOK {
			t.Errorf("body of exactly 64 KiB: status = %d (%q); want 200", resp.StatusCode, answer)
		}
		if resp, answer := send(t, http.MethodPost, p.webhookURL(""), exact+" "); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("body of 64 KiB + 1: status = %d (%q); want 413", resp.StatusCode, answer)
		}

		// Without Content-Length the limit applies to what is read.
		req, _ := http.NewRequest(http.MethodPost, p.webhookURL(""), io.MultiReader(strings.NewReader(exact), strings.NewReader("  ")))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("chunked POST: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked body of 64 KiB + 2: status = %d; want 413", resp.StatusCode)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{
			``,
			`not json`,
			`{"event_type":`,
			`[1,2]`,
			`"STATE_CHANGED_OPEN"`,
			`{"lock_id":"json-lock","battery_percentage":5} {"lock_id":"other"}`,
			`{"lock_id":"json-lock","battery_percentage":"many"}`,
			`{"lock_id":"json-lock","event_type":"GO_TO_STATE_X","go_to_state":"SIDEWAYS"}`,
			"{\"lock_id\":\"json-lock\",\"battery_percentage\":5,\"value1\":\"\xff\"}",
		} {
			resp, answer := send(t, http.MethodPost, p.webhookURL(""), body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("body %q: status = %d (%q); want 400", body, resp.StatusCode, answer)
				continue
			}
			reason := strings.TrimSuffix(answer, "\n")
			if reason == "" || strings.Contains(reason, "\n") || len(reason) > 300 {
				t.Errorf("body %q: reason %q; want one line", body, answer)
			}
		}
	})

	t.Run("lock ids", func(t *testing.T) {
		for _, id := range []string{"a/b", "a+b", "a#b", "+", "#", "bridge", "a\u0000b"} {
			body := fmt.Sprintf(`{"lock_id":%q,"battery_percentage":5}`, id)
			if resp, answer := send(t, http.MethodPost, p.webhookURL(""), body); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("lock_id %q in the body: status = %d (%q); want 400", id, resp.StatusCode, answer)
			}
		}
		for _, escaped := range []string{"a%2Fb", "a%2fb", "a%2Bb", "a+b", "a%23b", "%2B", "%23", "a%00b", "bridge"} {
			url := p.webhookURL("") + "/" + escaped
			if resp, answer := send(t, http.MethodPost, url, `{"battery_percentage":5}`); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("lock id %q in the URL: status = %d (%q); want 400", escaped, resp.StatusCode, answer)
			}
		}
	})

	// A valid webhook after all the rejected ones: once its message is on
	// the broker, everything before it is too.
	if status, answer := p.post(p.webhookURL("marker-lock"), `{"battery_percentage":42}`); status != http.StatusOK {
		t.Fatalf("valid webhook status = %d (%s); want 200", status, answer)
	}
	rec.WaitPayload(t, waitFor, "loqed/marker-lock/battery", "42")
	for _, m := range rec.Messages() {
		level := strings.SplitN(m.Topic, "/", 3)[1]
		switch level {
		case "bridge", "marker-lock", "size-lock":
		default:
			t.Errorf("rejected webhook published %s: %q", m.Topic, m.Payload)
		}
	}
}

// TestWebhookServerTimeouts opens connections that stall while sending the
// header or the body and checks that the server closes them: a client that
// never finishes cannot hold a connection.
func TestWebhookServerTimeouts(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false"})

	// The server's read timeouts are 5s for the header and 10s for the
	// whole request; a connection still open after 20s has none.
	const limit = 20 * time.Second
	stalls := map[string]string{
		"header": "POST /webhook/" + testSecret + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n",
		"body":   "POST /webhook/" + testSecret + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"lock_id\":",
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(stalls))
	for name, prefix := range stalls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", p.addr)
			if err != nil {
				errs <- fmt.Errorf("%s: %v", name, err)
				return
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, prefix); err != nil {
				errs <- fmt.Errorf("%s: %v", name, err)
				return
			}
			start := time.Now()
			conn.SetReadDeadline(start.Add(limit))
			_, err = io.ReadAll(conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				errs <- fmt.Errorf("stalled %s: connection still open after %s", name, limit)
				return
			}
			t.Logf("stalled %s: server closed the connection after %s", name, time.Since(start).Round(100*time.Millisecond))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The server still serves others.
	if status, answer := p.post(p.webhookURL("after-stall"), `{"battery_percentage":7}`); status != http.StatusOK {
		t.Errorf("webhook after the stalls: status = %d (%s); want 200", status, answer)
	}
}

// TestWebhookDuplicateDelivery posts each event twice, as LOQED delivers
// them, and a third copy after a readings webhook: each event is published
// once. A real repeat within the window, which moves the lock, is covered by
// TestCommandOrder.
func TestWebhookDuplicateDelivery(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false"})
	rec := harness.NewRecorder(t, broker.URL(), "loqed/dedup-lock/#")

	night := `{"event_type":"STATE_CHANGED_NIGHT_LOCK","lock_id":"dedup-lock","key_local_id":"2","key_name_user":"Phone"}`
	latch := `{"event_type":"STATE_CHANGED_LATCH","lock_id":"dedup-lock","key_local_id":"2","key_name_user":"Phone"}`
	marker := `{"event_type":"STATE_CHANGED_OPEN","lock_id":"dedup-lock","key_local_id":"3","key_name_user":"Marker"}`
	readings := `{"lock_id":"dedup-lock","battery_percentage":77,"battery_type":"nimh"}`
	for i, body := range []string{night, night, readings, night, latch, latch, marker} {
		if status, answer := p.post(p.webhookURL(""), body); status != http.StatusOK {
			t.Fatalf("webhook %d: status = %d (%s); want 200 for duplicates too", i, status, answer)
		}
	}
	rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "loqed/dedup-lock/event" && strings.Contains(m.Payload, "Marker")
	})

	var events, states []string
	for _, m := range rec.Messages() {
		switch m.Topic {
		case "loqed/dedup-lock/event":
			var ev struct {
				EventType string `json:"event_type"`
			}
			if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
				t.Fatalf("event %q is not JSON: %v", m.Payload, err)
			}
			events = append(events, ev.EventType)
		case "loqed/dedup-lock/state":
			states = append(states, m.Payload)
		}
	}
	if got, want := strings.Join(events, ","), "STATE_CHANGED_NIGHT_LOCK,STATE_CHANGED_LATCH,STATE_CHANGED_OPEN"; got != want {
		t.Errorf("events = %s; want %s", got, want)
	}
	if got, want := strings.Join(states, ","), "night_lock,day_lock,open"; got != want {
		t.Errorf("states = %s; want %s", got, want)
	}
	if v := metricValue(scrapeMetrics(t, p), "loqed2mqtt_events_duplicate_total"); v != "3" {
		t.Errorf("loqed2mqtt_events_duplicate_total = %q; want 3", v)
	}
}

// TestNoSecretInLogsOrTopics runs the bridge with every kind of secret set,
// debug logging, commands, a rejected token, webhooks and a shutdown, and
// searches its whole log, its metrics and every message on the broker for
// them.
func TestNoSecretInLogsOrTopics(t *testing.T) {
	const (
		brokerUser     = "bridge-user"
		brokerPassword = "broker-pass-Vq93xLm2"
	)
	broker := harness.StartBroker(t, harness.BrokerOptions{Username: brokerUser, Password: brokerPassword})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	all := harness.NewRecorder(t, broker.AuthURL(), "#")

	secrets := map[string]string{
		"API token":       testToken,
		"webhook secret":  testSecret,
		"broker password": brokerPassword,
	}
	for _, l := range acct.Locks() {
		for name, key := range map[string]string{"key_secret": l.Secrets.KeySecret, "bridge_key": l.Secrets.BridgeKey, "backend_key": l.Secrets.BackendKey} {
			if key == "" {
				t.Fatalf("lock %s has no %s; the test needs every lock key set", l.ID, name)
			}
			secrets[l.ID+" "+name] = key
		}
	}

	p := startBridge(t, broker, acct, map[string]string{
		"MQTT_USERNAME": brokerUser,
		"MQTT_PASSWORD": brokerPassword,
		"LOG_LEVEL":     "debug",
	})
	acct.SetWebhookURL(p.webhookURL(""))
	lock := acct.Locks()[0]
	all.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	publish := func(topic, payload string) {
		harness.Publish(t, broker.AuthURL(), topic, payload, false)
	}
	publish("loqed/"+lock.ID+"/set", "night_lock")
	awaitOutcome(t, all, lock.ID, outcomeIs("night_lock", "confirmed", ""))
	publish("loqed/"+lock.ID+"/set", "open")
	awaitOutcome(t, all, lock.ID, outcomeIs("open", "confirmed", ""))
	publish("loqed/"+lock.ID+"/settings/twist_assist/set", "ON")
	awaitOutcome(t, all, lock.ID, func(r outcome) bool { return r.Command == "setting:twist_assist" })

	// The service responds to a rejected token with a redirect to its login page.
	acct.FailNext(1, http.StatusFound, 0)
	publish("loqed/"+lock.ID+"/set", "night_lock")
	awaitOutcome(t, all, lock.ID, func(r outcome) bool { return r.Command == "night_lock" && r.Status == "failed" })
	publish("loqed/no-such-lock/set", "open")
	awaitOutcome(t, all, "no-such-lock", outcomeIs("open", "failed", "unknown_lock"))

	for _, wh := range []struct{ url, body string }{
		{p.webhookURL(""), readFixture(t, "cloud_webhook_documented.json")},
		{p.webhookURL(acct.Locks()[1].ID), readFixture(t, "cloud_webhook_state_changed.json")},
		{p.webhookURL(""), `{"lock_id":`},
		{"http://" + p.addr + "/webhook/wrong-secret-0000000", `{"lock_id":"x","battery_percentage":1}`},
	} {
		p.post(wh.url, wh.body)
	}
	metrics := scrapeMetrics(t, p)

	p.stop()
	all.WaitPayload(t, waitFor, "loqed/bridge/state", "offline")

	logText := p.log()
	if !strings.Contains(logText, "stopped") {
		t.Fatalf("the bridge did not log its stop; log:\n%s", logText)
	}
	for name, secret := range secrets {
		if strings.Contains(logText, secret) {
			t.Errorf("the log contains the %s", name)
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("the metrics contain the %s", name)
		}
		for _, m := range all.Messages() {
			if strings.Contains(m.Topic, secret) || strings.Contains(m.Payload, secret) {
				t.Errorf("message on %s contains the %s", m.Topic, name)
			}
		}
	}
}

// TestShutdownFlushesAndGoesOffline stops the bridge with SIGTERM right
// after a burst of webhooks: the state and the event message of every
// webhook with a 200 response reach the broker before "offline", webhooks during the shutdown get 200, 503 or no
// connection, and the process exits 0.
func TestShutdownFlushesAndGoesOffline(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	rec := harness.NewRecorder(t, broker.URL(), "loqed/#")
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false", "SHUTDOWN_TIMEOUT": "10s"})

	const locks = 20
	types := []string{"STATE_CHANGED_NIGHT_LOCK", "STATE_CHANGED_LATCH", "STATE_CHANGED_OPEN"}
	states := []string{"night_lock", "day_lock", "open"}
	for i := 0; i < locks; i++ {
		body := fmt.Sprintf(`{"event_type":%q,"lock_id":"stop-%02d","key_name_user":"key-%d"}`, types[i%3], i, i)
		if status, answer := p.post(p.webhookURL(""), body); status != http.StatusOK {
			t.Fatalf("webhook %d: status = %d (%s); want 200", i, status, answer)
		}
	}

	// A burst for one lock, whose event messages go out one at a time, so
	// that some still wait for their turn when the shutdown begins.
	const burst = 200
	var wg sync.WaitGroup
	burstErrs := make(chan string, burst)
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < burst; i += 10 {
				body := fmt.Sprintf(`{"event_type":"STATE_CHANGED_OPEN","lock_id":"burst-lock","key_name_user":"burst-%d"}`, i)
				resp, err := http.Post(p.webhookURL(""), "application/json", strings.NewReader(body))
				if err != nil {
					burstErrs <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					burstErrs <- fmt.Sprintf("burst webhook %d: status %d", i, resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(burstErrs)
	for e := range burstErrs {
		t.Fatalf("burst webhook without a 200 response: %s", e)
	}

	// Webhooks keep coming while the bridge shuts down.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	type answer struct {
		seq    int
		status int
		err    error
	}
	answers := make(chan answer, 5000)
	go func() {
		defer close(answers)
		for seq := 0; seq < 5000; seq++ {
			body := fmt.Sprintf(`{"event_type":"STATE_CHANGED_LATCH","lock_id":"late-lock","key_name_user":"late-%d"}`, seq)
			resp, err := client.Post(p.webhookURL(""), "application/json", strings.NewReader(body))
			if err != nil {
				answers <- answer{seq: seq, err: err}
				return
			}
			resp.Body.Close()
			answers <- answer{seq: seq, status: resp.StatusCode}
		}
	}()
	// Shut down once the late webhooks flow.
	first := <-answers
	if first.err != nil || first.status != http.StatusOK {
		t.Fatalf("first late webhook: %d, %v; want 200", first.status, first.err)
	}
	p.stop()

	lastOK, refused := first.seq, false
	for a := range answers {
		switch {
		case a.err != nil:
			refused = true
		case a.status == http.StatusOK:
			lastOK = a.seq
		case a.status != http.StatusServiceUnavailable:
			t.Errorf("late webhook %d: status %d; want 200, 503 or no connection", a.seq, a.status)
		}
	}
	if !refused {
		t.Errorf("the webhook endpoint still answered after the process exited")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code = %d; want 0; log:\n%s", code, p.log())
	}

	retained := harness.Retained(t, broker.URL(), "loqed/#")
	if got := retained["loqed/bridge/state"]; got != "offline" {
		t.Errorf("loqed/bridge/state = %q; want offline", got)
	}
	for i := 0; i < locks; i++ {
		if got := retained[fmt.Sprintf("loqed/stop-%02d/state", i)]; got != states[i%3] {
			t.Errorf("stop-%02d state = %q; want %q", i, got, states[i%3])
		}
	}
	var lateSeq int
	if _, err := fmt.Sscanf(retained["loqed/late-lock/last_changed_by"], "late-%d", &lateSeq); err != nil || lateSeq < lastOK {
		t.Errorf("late-lock last_changed_by = %q; want late-%d or later: a webhook with a 200 response was not published", retained["loqed/late-lock/last_changed_by"], lastOK)
	}

	// The event message of every webhook with a 200 response went out too.
	msgs := rec.Messages()
	published := map[string]bool{}
	for _, m := range msgs {
		var ev struct {
			KeyNameUser string `json:"key_name_user"`
		}
		if strings.HasSuffix(m.Topic, "/event") && json.Unmarshal([]byte(m.Payload), &ev) == nil {
			published[ev.KeyNameUser] = true
		}
	}
	for i := 0; i < locks; i++ {
		if key := fmt.Sprintf("key-%d", i); !published[key] {
			t.Errorf("no event message of stop-%02d (%s)", i, key)
		}
	}
	for i := 0; i < burst; i++ {
		if key := fmt.Sprintf("burst-%d", i); !published[key] {
			t.Errorf("no event message of burst-lock (%s)", key)
		}
	}
	missing := 0
	for seq := 0; seq <= lastOK; seq++ {
		if !published[fmt.Sprintf("late-%d", seq)] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d late webhooks with a 200 response have no event message", missing, lastOK+1)
	}

	// "offline" is the bridge's last message.
	offline := -1
	for i, m := range msgs {
		if m.Topic == "loqed/bridge/state" && m.Payload == "offline" {
			offline = i
		}
	}
	if offline < 0 {
		t.Fatalf("no offline message recorded")
	}
	for _, m := range msgs[offline+1:] {
		t.Errorf("message after offline: %s", m)
	}
}
