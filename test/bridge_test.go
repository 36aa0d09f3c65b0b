package test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "loqed", "testdata", name))
	if err != nil {
		t.Fatalf("failed to read fixture: %v", err)
	}
	return string(data)
}

// TestFixturesToRetainedTopics posts every webhook fixture to its own lock
// and compares the lock's retained topics with what the payload says.
func TestFixturesToRetainedTopics(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false"})

	cases := []struct {
		fixture string
		perLock bool              // post to /webhook/<secret>/<lock id>
		lockID  string            // lock the topics appear under
		want    map[string]string // suffix -> retained payload
		absent  []string          // suffixes that must not be retained
	}{
		{
			fixture: "cloud_webhook_state_changed.json", perLock: true, lockID: "fixture-state-changed",
			want: map[string]string{"state": "night_lock", "last_changed_by": "Gateway", "availability": "online"},
		},
		{
			fixture: "cloud_webhook_go_to_state.json", perLock: true, lockID: "fixture-go-to-state",
			want: map[string]string{"state": "opening", "last_changed_by": "Gateway"},
		},
		{
			fixture: "cloud_webhook_no_key.json", perLock: true, lockID: "fixture-no-key",
			want: map[string]string{"state": "day_lock", "last_changed_by": "Alex Example"},
		},
		{
			fixture: "cloud_webhook_signal.json", perLock: true, lockID: "fixture-signal",
			want:   map[string]string{"ble_strength": "88", "wifi_strength": "39"},
			absent: []string{"state", "battery"},
		},
		{
			fixture: "cloud_webhook_battery.json", perLock: true, lockID: "fixture-battery",
			want:   map[string]string{"battery": "100"},
			absent: []string{"state"},
		},
		{
			fixture: "cloud_webhook_online.json", perLock: true, lockID: "fixture-online",
			want: map[string]string{"availability": "offline"},
		},
		{
			fixture: "cloud_webhook_documented.json", lockID: "Ab3dEf6hIj9kLm2nOp5q",
			want: map[string]string{"state": "day_lock", "last_changed_by": "Front door"},
		},
		{
			fixture: "cloud_webhook_documented_signal.json", lockID: "Ab3dEf6hIj9kLm2nOp5q",
			want: map[string]string{"ble_strength": "42", "wifi_strength": "73", "battery": "88"},
		},
		{
			fixture: "bridge_event_motor_stall.json", perLock: true, lockID: "fixture-motor-stall",
			want: map[string]string{"state": "jammed", "last_changed_by": "KeyID 1"},
		},
		{
			fixture: "bridge_event_battery.json", perLock: true, lockID: "fixture-bridge-battery",
			want: map[string]string{"battery": "88", "battery_type": "nimh"},
		},
		{
			fixture: "bridge_event_online_status.json", perLock: true, lockID: "fixture-bridge-online",
			want:   map[string]string{"wifi_strength": "39"},
			absent: []string{"ble_strength"},
		},
		{
			fixture: "bridge_event_state_changed_latch_requested_night_lock.json", perLock: true, lockID: "fixture-latch",
			want: map[string]string{"state": "day_lock", "last_changed_by": "manual"},
		},
		{
			fixture: "bridge_event_state_changed_night_lock.json", perLock: true, lockID: "fixture-night-lock",
			want: map[string]string{"state": "night_lock", "last_changed_by": "KeyID 2"},
		},
		{
			fixture: "bridge_event_go_to_state_twist_assist.json", perLock: true, lockID: "fixture-twist-assist",
			want: map[string]string{"state": "unlocking"},
		},
		{
			fixture: "legacy_cloud_webhook.json", perLock: true, lockID: "fixture-legacy",
			want: map[string]string{"state": "night_lock", "last_changed_by": "Alex's phone"},
		},
	}

	rec := harness.NewRecorder(t, broker.URL(), "loqed/+/event")
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.fixture, ".json"), func(t *testing.T) {
			body := readFixture(t, tc.fixture)
			if tc.fixture == "bridge_event_go_to_state_remote_latch.json" {
				body = extractBody(t, body)
			}
			url := p.webhookURL("")
			if tc.perLock {
				url = p.webhookURL(tc.lockID)
			}
			status, answer := p.post(url, body)
			if status != http.StatusOK {
				t.Fatalf("POST status = %d (%s); want 200", status, answer)
			}

			// The event message follows the retained topics of the same
			// webhook, so once it arrives they are on the broker.
			if strings.Contains(body, "event_type") {
				rec.WaitFor(t, waitFor, func(m harness.Message) bool {
					return m.Topic == "loqed/"+tc.lockID+"/event" && strings.Contains(m.Payload, eventTypeOf(t, body))
				})
			}
			got := waitRetained(t, broker, "loqed/"+tc.lockID+"/#", tc.want)
			for _, suffix := range tc.absent {
				if v, ok := got["loqed/"+tc.lockID+"/"+suffix]; ok {
					t.Errorf("%s retained = %q; want none", suffix, v)
				}
			}
		})
	}
}

// waitRetained takes snapshots of the retained topics under filter until
// every wanted suffix has its payload, and returns the last snapshot. The
// bridge publishes asynchronously, so a snapshot taken right after the HTTP
// answer may precede the last publish.
func waitRetained(t *testing.T, broker *harness.Broker, filter string, want map[string]string) map[string]string {
	t.Helper()
	prefix := strings.TrimSuffix(filter, "#")
	rec := harness.NewRecorder(t, broker.URL(), filter)
	for suffix, payload := range want {
		rec.WaitFor(t, waitFor, func(m harness.Message) bool {
			return m.Topic == prefix+suffix && m.Payload == payload
		})
	}
	got := harness.Retained(t, broker.URL(), filter)
	for suffix, payload := range want {
		if got[prefix+suffix] != payload {
			t.Errorf("%s%s retained = %q; want %q", prefix, suffix, got[prefix+suffix], payload)
		}
	}
	return got
}

func eventTypeOf(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		EventType string `json:"event_type"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("fixture is not JSON: %v", err)
	}
	return strings.ToUpper(v.EventType)
}

func extractBody(t *testing.T, wrapped string) string {
	t.Helper()
	var v struct {
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal([]byte(wrapped), &v); err != nil {
		t.Fatal(err)
	}
	return string(v.Body)
}

// TestCommandConfirmed sends a command over MQTT and follows it to the fake
// account and back: the transitional state at once, then the final state
// from the account's webhook, and the outcome on command_result.
func TestCommandConfirmed(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))

	lock := acct.Locks()[0]
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", `{"state":"night_lock","id":"c-1"}`, false)

	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "locking")
	sent := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "loqed/"+lock.ID+"/command_result" && strings.Contains(m.Payload, `"status":"sent"`)
	})
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "night_lock")
	confirmed := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "loqed/"+lock.ID+"/command_result" && strings.Contains(m.Payload, `"status":"confirmed"`)
	})

	var result map[string]any
	if err := json.Unmarshal([]byte(confirmed.Payload), &result); err != nil {
		t.Fatalf("command_result is not JSON: %v", err)
	}
	if result["id"] != "c-1" || result["ok"] != true || result["command"] != "night_lock" {
		t.Errorf("command_result = %s; want id c-1, ok true, command night_lock", confirmed.Payload)
	}
	if sent.Retained || confirmed.Retained {
		t.Errorf("command_result retained; want not retained")
	}
	if n := acct.CountRequests(http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/night_lock"); n != 1 {
		t.Errorf("bolt_state calls = %d; want 1", n)
	}
	got, _ := acct.Lock(lock.ID)
	if got.BoltState != "night_lock" {
		t.Errorf("account lock state = %q; want night_lock", got.BoltState)
	}
}

// TestWebhookRejected checks that a wrong secret gets 404 and a malformed
// body 400, and that neither publishes anything: a valid webhook sent after
// them must be the first message for the lock.
func TestWebhookRejected(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	p := startBridge(t, broker, nil, map[string]string{"HA_DISCOVERY": "false"})
	rec := harness.NewRecorder(t, broker.URL(), "loqed/reject-lock/#")

	valid := `{"event_type":"STATE_CHANGED_LATCH","requested_state":"DAY_LOCK","lock_id":"reject-lock","key_local_id":3}`
	cases := []struct {
		name   string
		url    string
		body   string
		status int
	}{
		{"wrong secret", "http://" + p.addr + "/webhook/not-the-secret-at-all", valid, http.StatusNotFound},
		{"wrong secret per lock", "http://" + p.addr + "/webhook/not-the-secret-at-all/reject-lock", valid, http.StatusNotFound},
		{"not JSON", p.webhookURL(""), `{"event_type":`, http.StatusBadRequest},
		{"array", p.webhookURL(""), `[1,2]`, http.StatusBadRequest},
		{"bad state", p.webhookURL(""), `{"event_type":"GO_TO_STATE_X","go_to_state":"SIDEWAYS","lock_id":"reject-lock"}`, http.StatusBadRequest},
		{"wildcard lock id", p.webhookURL(""), `{"battery_percentage":5,"lock_id":"a/+/#"}`, http.StatusBadRequest},
		{"no readings", p.webhookURL(""), `{"lock_id":"reject-lock"}`, http.StatusBadRequest},
		{"too large", p.webhookURL(""), `{"lock_id":"reject-lock","value1":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := p.post(tc.url, tc.body)
			if status != tc.status {
				t.Errorf("status = %d (%q); want %d", status, answer, tc.status)
			}
			if tc.status == http.StatusNotFound && strings.Contains(answer, "secret") {
				t.Errorf("404 answer %q hints at the secret", answer)
			}
		})
	}

	if status, answer := p.post(p.webhookURL(""), valid); status != http.StatusOK {
		t.Fatalf("valid webhook status = %d (%s); want 200", status, answer)
	}
	rec.WaitPayload(t, waitFor, "loqed/reject-lock/state", "day_lock")
	for _, m := range rec.Messages() {
		if strings.Contains(m.Payload, "SIDEWAYS") || strings.Contains(m.Payload, "xxxx") {
			t.Errorf("rejected webhook published %s: %s", m.Topic, m.Payload)
		}
	}
	if first := rec.Messages()[0]; first.Topic == "loqed/reject-lock/battery" {
		t.Errorf("first message %s = %s came from a rejected webhook", first.Topic, first.Payload)
	}
}

// TestHelpListsVariables checks that -h names every configuration variable.
func TestHelpListsVariables(t *testing.T) {
	out, err := exec.Command(bridgeBinary, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("loqed2mqtt -h: %v\n%s", err, out)
	}
	for _, name := range []string{
		"MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_CLIENT_ID", "MQTT_BASE_TOPIC",
		"MQTT_CA_FILE", "MQTT_CERT_FILE", "MQTT_KEY_FILE", "HA_DISCOVERY", "HA_DISCOVERY_PREFIX",
		"LOQED_API_URL", "LOQED_API_TOKEN", "HTTP_LISTEN", "WEBHOOK_SECRET", "LOG_LEVEL", "LOG_FORMAT",
	} {
		if !strings.Contains(string(out), name) {
			t.Errorf("-h output lacks %s", name)
		}
	}
}

// TestDemoLocksMove runs -demo with nothing but a broker and moves a demo
// lock over MQTT.
func TestDemoLocksMove(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	rec := harness.NewRecorder(t, broker.URL(), "loqed/#")

	p := startBridgeArgs(t, broker, []string{"-demo"}, map[string]string{"WEBHOOK_SECRET": ""})
	_ = p

	infos := map[string]bool{}
	for len(infos) < 2 {
		m := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
			return strings.HasSuffix(m.Topic, "/info") && !infos[m.Topic]
		})
		infos[m.Topic] = true
		if strings.Contains(m.Payload, "key_secret") || strings.Contains(m.Payload, "bridge_key") {
			t.Errorf("%s contains a lock key: %s", m.Topic, m.Payload)
		}
	}

	var lockID string
	for topic := range infos {
		lockID = strings.TrimSuffix(strings.TrimPrefix(topic, "loqed/"), "/info")
		break
	}
	rec.WaitPayload(t, waitFor, "loqed/"+lockID+"/state", "day_lock")
	harness.Publish(t, broker.URL(), "loqed/"+lockID+"/set", "night_lock", false)
	rec.WaitPayload(t, waitFor, "loqed/"+lockID+"/state", "locking")
	rec.WaitPayload(t, waitFor, "loqed/"+lockID+"/state", "night_lock")
}
