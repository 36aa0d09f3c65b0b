package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

// listCalls counts the lock list requests the account received, whatever
// their response status. Commands share the /api/locks prefix, so the path must match
// exactly.
func listCalls(a *account) int {
	n := 0
	for _, r := range a.Requests() {
		if r.Method == http.MethodGet && (r.Path == "/api/locks/" || r.Path == "/api/locks") {
			n++
		}
	}
	return n
}

// requestsTo returns the logged requests with the method and the exact path.
func requestsTo(a *account, method, path string) []loqedtest.Request {
	var out []loqedtest.Request
	for _, r := range a.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// commandResult is the payload of <base>/<id>/command_result.
type commandResult struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// waitResult waits for a command result of the lock with the command and
// status, and returns it decoded.
func waitResult(t *testing.T, rec *harness.Recorder, lockID, command, status string) (commandResult, harness.Message) {
	t.Helper()
	var got commandResult
	m := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		if m.Topic != "loqed/"+lockID+"/command_result" {
			return false
		}
		var r commandResult
		if json.Unmarshal([]byte(m.Payload), &r) != nil {
			return false
		}
		if r.Command != command || r.Status != status {
			return false
		}
		got = r
		return true
	})
	if m.Retained {
		t.Errorf("command_result %s was retained; want not retained", m.Payload)
	}
	return got, m
}

// metrics returns the bridge's Prometheus exposition.
func (p *bridgeProcess) metrics() string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET /metrics status = %d; want 200", resp.StatusCode)
	}
	return string(body)
}

// waitMetric polls /metrics until it has the line, for values that another
// instance changes through the broker.
func (p *bridgeProcess) waitMetric(line string) {
	p.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	for {
		text := p.metrics()
		if hasLine(text, line) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			p.t.Fatalf("/metrics has no line %q within %s; metrics of loqed2mqtt:\n%s", line, waitFor, grepLines(text, "loqed2mqtt_api"))
		}
	}
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// logLines returns the log lines whose message is msg.
func (p *bridgeProcess) logLines(msg string) []map[string]any {
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

// budgetPayload is the retained <base>/bridge/budget message.
type budgetPayload struct {
	Limit         int         `json:"limit"`
	WindowSeconds int         `json:"window_seconds"`
	Calls         []time.Time `json:"calls"`
}

func retainedBudget(t *testing.T, broker *harness.Broker) budgetPayload {
	t.Helper()
	got := harness.Retained(t, broker.URL(), "loqed/bridge/budget")
	payload, ok := got["loqed/bridge/budget"]
	if !ok {
		t.Fatalf("loqed/bridge/budget is not retained")
	}
	var b budgetPayload
	if err := json.Unmarshal([]byte(payload), &b); err != nil {
		t.Fatalf("loqed/bridge/budget = %q is not JSON: %v", payload, err)
	}
	return b
}

// TestRestartsReadListOnce restarts the bridge three times: only the first
// start reads the lock list, the later ones take it from the retained info
// topics and leave them unchanged.
func TestRestartsReadListOnce(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()

	p1 := startBridge(t, broker, acct, nil)
	if n := listCalls(acct); n != 1 {
		t.Fatalf("list calls after the first start = %d; want 1", n)
	}
	first := harness.Retained(t, broker.URL(), "loqed/+/info")
	for _, l := range locks {
		if first["loqed/"+l.ID+"/info"] == "" {
			t.Fatalf("loqed/%s/info is not retained after the first start", l.ID)
		}
	}
	if !hasLine(p1.metrics(), `loqed2mqtt_api_calls_total{endpoint="list_locks",status="200"} 1`) {
		t.Errorf("/metrics lacks one list_locks call with status 200:\n%s", grepLines(p1.metrics(), "loqed2mqtt_api"))
	}
	if !hasLine(p1.metrics(), "loqed2mqtt_api_list_budget_remaining 9") {
		t.Errorf("/metrics lacks a remaining budget of 9:\n%s", grepLines(p1.metrics(), "loqed2mqtt_api"))
	}
	p1.stop()

	for i := 2; i <= 3; i++ {
		p := startBridge(t, broker, acct, nil)
		if n := listCalls(acct); n != 1 {
			t.Errorf("list calls after start %d = %d; want 1", i, n)
		}
		if len(p.logLines("lock list taken from the broker's retained info topics")) != 1 {
			t.Errorf("start %d did not log that it took the lock list from the broker", i)
		}
		if !hasLine(p.metrics(), "loqed2mqtt_api_list_budget_remaining 9") {
			t.Errorf("start %d: /metrics lacks a remaining budget of 9, the budget did not survive the restart:\n%s", i, grepLines(p.metrics(), "loqed2mqtt_api"))
		}
		if strings.Contains(p.metrics(), `loqed2mqtt_api_calls_total{endpoint="list_locks"`) {
			t.Errorf("start %d counted a list_locks call:\n%s", i, grepLines(p.metrics(), "loqed2mqtt_api"))
		}
		got := harness.Retained(t, broker.URL(), "loqed/+/info")
		for topic, payload := range first {
			if got[topic] != payload {
				t.Errorf("start %d: %s = %s; want the first start's %s", i, topic, got[topic], payload)
			}
		}
		p.stop()
	}
	if n := listCalls(acct); n != 1 {
		t.Errorf("list calls after three starts = %d; want 1", n)
	}
}

// TestStaleInfoReadAgain starts the bridge on a broker that retains a lock
// description of a given age: the list is read only when the description is
// older than LOQED_REFRESH_INTERVAL.
func TestStaleInfoReadAgain(t *testing.T) {
	cases := []struct {
		name      string
		age       time.Duration
		interval  string
		wantCalls int
	}{
		{"fresh with default interval", time.Hour, "", 0},
		{"older than default interval", 13 * time.Hour, "", 1},
		{"fresh with 4h interval", 3 * time.Hour, "4h", 0},
		{"older than 2h interval", 3 * time.Hour, "2h", 1},
		{"no updated_at", -1, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			broker := harness.StartBroker(t, harness.BrokerOptions{})
			acct := startAccount(t, loqedtest.Options{Locks: 1})
			lock := acct.Locks()[0]

			info := map[string]any{
				"id":                    lock.ID,
				"name":                  "Cached name",
				"supported_lock_states": []string{"open", "day_lock", "night_lock"},
				"settings":              map[string]bool{"twist_assist": true},
			}
			if tc.age >= 0 {
				info["updated_at"] = time.Now().Add(-tc.age).UTC().Format(time.RFC3339)
			}
			payload, _ := json.Marshal(info)
			harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/info", string(payload), true)

			env := map[string]string{}
			if tc.interval != "" {
				env["LOQED_REFRESH_INTERVAL"] = tc.interval
			}
			startBridge(t, broker, acct, env)

			if n := listCalls(acct); n != tc.wantCalls {
				t.Errorf("list calls = %d; want %d", n, tc.wantCalls)
			}
			wantName, wantTwist := "Cached name", "ON"
			if tc.wantCalls == 1 {
				wantName, wantTwist = lock.Name, "OFF"
			}
			// The bridge publishes after it logs its start, so the
			// snapshot waits for the setting that the source decides.
			got := waitRetained(t, broker, "loqed/"+lock.ID+"/#", map[string]string{"settings/twist_assist": wantTwist})
			if !strings.Contains(got["loqed/"+lock.ID+"/info"], `"name":"`+wantName+`"`) {
				t.Errorf("info = %s; want name %q", got["loqed/"+lock.ID+"/info"], wantName)
			}
		})
	}
}

// rfc3339 finds the time in a budget error.
var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

// TestRefreshBudget spends a budget of three list calls on the start and two
// refreshes: further refreshes make no call and report code budget with the
// time the budget frees up, also after a restart.
func TestRefreshBudget(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	env := map[string]string{"LOQED_LIST_BUDGET": "3"}

	p := startBridge(t, broker, acct, env)
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/command_result")

	for i := 2; i <= 3; i++ {
		harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
		r, _ := waitResult(t, rec, lock.ID, "refresh", "confirmed")
		if !r.OK {
			t.Errorf("refresh result = %+v; want ok", r)
		}
		rec.Reset()
		if n := listCalls(acct); n != i {
			t.Fatalf("list calls after refresh = %d; want %d", n, i)
		}
	}

	budget := retainedBudget(t, broker)
	if budget.Limit != 3 || budget.WindowSeconds != 12*3600 || len(budget.Calls) != 3 {
		t.Fatalf("retained budget = %+v; want limit 3, window 43200 s, 3 calls", budget)
	}
	firstCall := budget.Calls[0]

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	r, _ := waitResult(t, rec, lock.ID, "refresh", "failed")
	checkBudgetRefusal(t, r, firstCall)
	if n := listCalls(acct); n != 3 {
		t.Errorf("list calls after a refused refresh = %d; want 3", n)
	}
	if !hasLine(p.metrics(), "loqed2mqtt_api_list_budget_remaining 0") {
		t.Errorf("/metrics lacks a remaining budget of 0:\n%s", grepLines(p.metrics(), "loqed2mqtt_api"))
	}
	if !hasLine(p.metrics(), `loqed2mqtt_api_calls_total{endpoint="list_locks",status="200"} 3`) {
		t.Errorf("/metrics lacks three list_locks calls:\n%s", grepLines(p.metrics(), "loqed2mqtt_api"))
	}
	p.stop()

	// The budget is kept on the broker, so a restart does not reset it.
	p = startBridge(t, broker, acct, env)
	rec.Reset()
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "again", false)
	r, _ = waitResult(t, rec, lock.ID, "refresh", "failed")
	checkBudgetRefusal(t, r, firstCall)
	if n := listCalls(acct); n != 3 {
		t.Errorf("list calls after a restart and a refused refresh = %d; want 3", n)
	}
	if !hasLine(p.metrics(), "loqed2mqtt_api_list_budget_remaining 0") {
		t.Errorf("restarted bridge: /metrics lacks a remaining budget of 0:\n%s", grepLines(p.metrics(), "loqed2mqtt_api"))
	}
}

func checkBudgetRefusal(t *testing.T, r commandResult, firstCall time.Time) {
	t.Helper()
	if r.OK || r.Code != "budget" {
		t.Errorf("refused refresh result = %+v; want ok false, code budget", r)
	}
	when := rfc3339.FindString(r.Error)
	if when == "" {
		t.Fatalf("budget error %q names no RFC 3339 time", r.Error)
	}
	freeAt, err := time.Parse(time.RFC3339, when)
	if err != nil {
		t.Fatalf("budget error time %q: %v", when, err)
	}
	want := firstCall.Add(12 * time.Hour)
	if d := freeAt.Sub(want); d < -time.Second || d > time.Second {
		t.Errorf("budget frees up at %s; want %s, 12 hours after the oldest call", freeAt, want)
	}
}

// TestBudgetSavedBeforeCall kills the bridge while a refresh's list call is
// under way: the call was counted on the broker before it was made, so the
// restarted bridge refuses the next refresh.
func TestBudgetSavedBeforeCall(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	env := map[string]string{"LOQED_LIST_BUDGET": "2"}

	p := startBridge(t, broker, acct, env)
	budgetRec := harness.NewRecorder(t, broker.URL(), "loqed/bridge/budget")

	acct.DelayNext(1, 30*time.Second)
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	budgetRec.WaitFor(t, waitFor, func(m harness.Message) bool {
		var b budgetPayload
		return json.Unmarshal([]byte(m.Payload), &b) == nil && len(b.Calls) == 2
	})
	// The delayed request is logged only once it ends, so the account has
	// not responded to it yet.
	if n := listCalls(acct); n != 1 {
		t.Fatalf("list calls completed when the budget showed the second call = %d; want 1", n)
	}
	p.kill()

	p = startBridge(t, broker, acct, env)
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/command_result")
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	r, _ := waitResult(t, rec, lock.ID, "refresh", "failed")
	if r.Code != "budget" {
		t.Errorf("refresh after the crash = %+v; want code budget", r)
	}
	if !hasLine(p.metrics(), "loqed2mqtt_api_list_budget_remaining 0") {
		t.Errorf("/metrics lacks a remaining budget of 0:\n%s", grepLines(p.metrics(), "loqed2mqtt_api"))
	}
	// The account logs the killed bridge's request once it notices the
	// closed connection, which may be later.
	if n := listCalls(acct); n > 2 {
		t.Errorf("list calls = %d; want at most 2: the start and the call of the killed bridge", n)
	}
}

// TestBudgetSharedByInstances runs two bridges on one broker: they share one
// budget, learn each other's calls through the retained budget topic and
// refuse refreshes once it is spent.
func TestBudgetSharedByInstances(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	env := func(id string) map[string]string {
		return map[string]string{
			"LOQED_LIST_BUDGET": "2",
			"MQTT_CLIENT_ID":    "e2e-shared-" + id + fmt.Sprint(time.Now().UnixNano()),
			// One instance of the group runs each command.
			"MQTT_SHARED_GROUP": "loqed2mqtt",
		}
	}

	a := startBridge(t, broker, acct, env("a"))
	b := startBridge(t, broker, acct, env("b"))
	if n := listCalls(acct); n != 1 {
		t.Fatalf("list calls after two starts = %d; want 1", n)
	}
	if len(b.logLines("lock list taken from the broker's retained info topics")) != 1 {
		t.Errorf("second instance did not take the lock list from the broker")
	}
	a.waitMetric("loqed2mqtt_api_list_budget_remaining 1")
	b.waitMetric("loqed2mqtt_api_list_budget_remaining 1")

	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/command_result")
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	waitResult(t, rec, lock.ID, "refresh", "confirmed")
	if n := listCalls(acct); n != 2 {
		t.Fatalf("list calls after one refresh = %d; want 2\nlog of a:\n%s\nlog of b:\n%s", n, grepLines(a.log(), "list"), grepLines(b.log(), "list"))
	}
	// Whichever instance ran the refresh, both know the budget is spent.
	a.waitMetric("loqed2mqtt_api_list_budget_remaining 0")
	b.waitMetric("loqed2mqtt_api_list_budget_remaining 0")

	// The broker hands shared subscriptions out in turn, so both
	// instances get some of these.
	const refreshes = 4
	rec.Reset()
	for i := 0; i < refreshes; i++ {
		harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", fmt.Sprint(i), false)
	}
	refused := 0
	rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		if strings.Contains(m.Payload, `"code":"budget"`) {
			refused++
		}
		return refused == refreshes
	})
	for _, m := range rec.Messages() {
		if !strings.Contains(m.Payload, `"code":"budget"`) {
			t.Errorf("refresh result %s; want code budget", m.Payload)
		}
	}
	if n := listCalls(acct); n != 2 {
		t.Errorf("list calls after refused refreshes = %d; want 2\nlog of a:\n%s\nlog of b:\n%s", n, grepLines(a.log(), "list"), grepLines(b.log(), "list"))
	}
	if len(a.logLines("refresh rejected: call budget used up")) == 0 || len(b.logLines("refresh rejected: call budget used up")) == 0 {
		t.Errorf("refused refreshes: instance a logged %d, b %d; want both to refuse some",
			len(a.logLines("refresh rejected: call budget used up")), len(b.logLines("refresh rejected: call budget used up")))
	}
}

// TestBudgetOverwriteRepaired overwrites the retained budget with a message
// that lacks the bridge's call, as a second instance publishing at the same
// moment would: the bridge publishes the merged calls again.
func TestBudgetOverwriteRepaired(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	p := startBridge(t, broker, acct, map[string]string{"LOQED_LIST_BUDGET": "3"})
	own := retainedBudget(t, broker)
	if len(own.Calls) != 1 {
		t.Fatalf("retained budget after the start = %+v; want one call", own)
	}

	rec := harness.NewRecorder(t, broker.URL(), "loqed/bridge/budget")
	other := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	payload, _ := json.Marshal(budgetPayload{Limit: 3, WindowSeconds: 43200, Calls: []time.Time{other}})
	harness.Publish(t, broker.URL(), "loqed/bridge/budget", string(payload), true)

	rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		var b budgetPayload
		return json.Unmarshal([]byte(m.Payload), &b) == nil && len(b.Calls) == 2
	})
	got := retainedBudget(t, broker)
	if len(got.Calls) != 2 || !got.Calls[0].Equal(other) || !got.Calls[1].Equal(own.Calls[0]) {
		t.Errorf("retained budget = %v; want the other instance's call %s and the bridge's %s", got.Calls, other, own.Calls[0])
	}
	p.waitMetric("loqed2mqtt_api_list_budget_remaining 1")
}

// TestListRateLimited responds to a refresh with 429 and Retry-After: no list
// call is made until it passes, and refreshes meanwhile say when to retry.
func TestListRateLimited(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	startBridge(t, broker, acct, nil)
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/command_result")

	acct.FailNext(1, http.StatusTooManyRequests, time.Minute)
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	r, _ := waitResult(t, rec, lock.ID, "refresh", "failed")
	if r.Code != "rate_limited" || !strings.Contains(r.Error, "1m0s") {
		t.Errorf("refresh result = %+v; want code rate_limited naming 1m0s", r)
	}
	if n := listCalls(acct); n != 2 {
		t.Fatalf("list calls = %d; want 2: the start and the refresh", n)
	}

	rec.Reset()
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "again", false)
	r, _ = waitResult(t, rec, lock.ID, "refresh", "failed")
	if r.Code != "rate_limited" || !strings.Contains(r.Error, "try again in") {
		t.Errorf("refresh during Retry-After = %+v; want code rate_limited", r)
	}
	if n := listCalls(acct); n != 2 {
		t.Errorf("list calls after a refresh during Retry-After = %d; want 2", n)
	}
}

// TestSettingSwitch flips settings over MQTT: the fake account's lock
// changes, the retained switch state follows, and every accepted payload
// spelling works.
func TestSettingSwitch(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	startBridge(t, broker, acct, nil)

	topic := "loqed/" + lock.ID + "/settings/"
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, topic+"twist_assist", "OFF")
	rec.WaitPayload(t, waitFor, topic+"touch_to_connect", "ON")
	rec.WaitPayload(t, waitFor, topic+"open_house_mode", "OFF")

	steps := []struct {
		setting string
		payload string
		want    bool
	}{
		{"twist_assist", "ON", true},
		{"twist_assist", "0", false},
		{"twist_assist", "true", true},
		{"twist_assist", "OFF", false},
		{"twist_assist", "1", true},
		{"touch_to_connect", "false", false},
		{"open_house_mode", "on", true},
	}
	for _, s := range steps {
		rec.Reset()
		harness.Publish(t, broker.URL(), topic+s.setting+"/set", s.payload, false)
		r, _ := waitResult(t, rec, lock.ID, "setting:"+s.setting, "confirmed")
		if !r.OK {
			t.Errorf("%s %s: result %+v; want ok", s.setting, s.payload, r)
		}
		want := "OFF"
		if s.want {
			want = "ON"
		}
		got := harness.Retained(t, broker.URL(), topic+s.setting)
		if got[topic+s.setting] != want {
			t.Errorf("%s after %s: retained %q; want %q", s.setting, s.payload, got[topic+s.setting], want)
		}
	}

	l, _ := acct.Lock(lock.ID)
	if l.TwistAssist == nil || !*l.TwistAssist {
		t.Errorf("account twist_assist = %v; want true", l.TwistAssist)
	}
	if l.TouchToConnect == nil || *l.TouchToConnect {
		t.Errorf("account touch_to_connect = %v; want false", l.TouchToConnect)
	}
	// Open House Mode is read from the list's guest_access_mode field.
	if l.GuestAccessMode == nil || !*l.GuestAccessMode {
		t.Errorf("account guest_access_mode = %v; want true after open_house_mode ON", l.GuestAccessMode)
	}
	if n := len(requestsTo(acct, http.MethodPost, "/api/locks/"+lock.ID+"/setting")); n != len(steps) {
		t.Errorf("setting calls = %d; want %d", n, len(steps))
	}

	// A fresh list read agrees with what the commands set.
	rec.Reset()
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	waitResult(t, rec, lock.ID, "refresh", "confirmed")
	got := harness.Retained(t, broker.URL(), topic+"+")
	for setting, want := range map[string]string{"twist_assist": "ON", "touch_to_connect": "OFF", "open_house_mode": "ON"} {
		if got[topic+setting] != want {
			t.Errorf("%s after a list read = %q; want %q", setting, got[topic+setting], want)
		}
	}
}

// TestSettingFailures covers a server error that a retry overcomes, a
// rejected change that puts the old value back, and commands that never
// reach the API.
func TestSettingFailures(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	startBridge(t, broker, acct, nil)

	topic := "loqed/" + lock.ID + "/settings/twist_assist"
	setPath := "/api/locks/" + lock.ID + "/setting"
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, topic, "OFF")

	t.Run("server error retried", func(t *testing.T) {
		rec.Reset()
		acct.FailNext(1, http.StatusInternalServerError, 0)
		harness.Publish(t, broker.URL(), topic+"/set", "ON", false)
		waitResult(t, rec, lock.ID, "setting:twist_assist", "confirmed")
		rec.WaitPayload(t, waitFor, topic, "ON")

		calls := requestsTo(acct, http.MethodPost, setPath)
		if len(calls) != 2 || calls[0].Status != http.StatusInternalServerError || calls[1].Status != http.StatusNoContent {
			t.Errorf("setting calls = %+v; want a 500, then a 204", calls)
		}
	})

	t.Run("rejected keeps old value", func(t *testing.T) {
		rec.Reset()
		before := len(requestsTo(acct, http.MethodPost, setPath))
		acct.FailNext(1, http.StatusUnprocessableEntity, 0)
		harness.Publish(t, broker.URL(), topic+"/set", "OFF", false)
		r, m := waitResult(t, rec, lock.ID, "setting:twist_assist", "failed")
		if r.OK || r.Code != "bad_request" || !strings.HasSuffix(r.Error, ".") || len(r.Error) < 20 {
			t.Errorf("result = %+v; want code bad_request and a sentence", r)
		}
		// The old value is published again before the result, so that a
		// switch that moved optimistically moves back.
		var republished bool
		for _, msg := range rec.Messages() {
			if msg.At.After(m.At) {
				break
			}
			if msg.Topic == topic {
				republished = msg.Payload == "ON"
				if msg.Payload != "ON" {
					t.Errorf("%s = %q after a rejected change; want ON", topic, msg.Payload)
				}
			}
		}
		if !republished {
			t.Errorf("%s was not published again after the rejected change", topic)
		}
		if got := harness.Retained(t, broker.URL(), topic)[topic]; got != "ON" {
			t.Errorf("retained %s = %q; want ON", topic, got)
		}
		if n := len(requestsTo(acct, http.MethodPost, setPath)) - before; n != 1 {
			t.Errorf("setting calls = %d; want 1: a 422 is not retried", n)
		}
		l, _ := acct.Lock(lock.ID)
		if l.TwistAssist == nil || !*l.TwistAssist {
			t.Errorf("account twist_assist = %v; want true", l.TwistAssist)
		}
	})

	t.Run("refused before the API", func(t *testing.T) {
		before := len(requestsTo(acct, http.MethodPost, setPath))
		cases := []struct {
			topic, payload, command, code string
		}{
			{topic + "/set", "maybe", "setting:twist_assist", "invalid_payload"},
			{topic + "/set", "", "", ""}, // empty payloads are ignored
			{"loqed/" + lock.ID + "/settings/auto_unlock/set", "ON", "setting:auto_unlock", "unknown_setting"},
			{"loqed/no-such-lock/settings/twist_assist/set", "ON", "setting:twist_assist", "unknown_lock"},
		}
		for _, tc := range cases {
			if tc.code == "" {
				harness.Publish(t, broker.URL(), tc.topic, tc.payload, false)
				continue
			}
			resultRec := harness.NewRecorder(t, broker.URL(), "loqed/+/command_result")
			harness.Publish(t, broker.URL(), tc.topic, tc.payload, false)
			lockID := strings.Split(tc.topic, "/")[1]
			r, _ := waitResult(t, resultRec, lockID, tc.command, "failed")
			if r.Code != tc.code || r.Error == "" {
				t.Errorf("%s %q: result %+v; want code %s with a sentence", tc.topic, tc.payload, r, tc.code)
			}
		}
		if n := len(requestsTo(acct, http.MethodPost, setPath)) - before; n != 0 {
			t.Errorf("setting calls = %d; want none", n)
		}
	})
}

// TestExtraSettings adds settings with LOQED_EXTRA_SETTINGS: one the lock
// has, which is published and can be changed, and one it lacks, which the
// account rejects.
func TestExtraSettings(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	id := loqedtest.LockID(0)
	acct.AddLock(loqed.Lock{ID: id, Name: "Front door", Settings: map[string]bool{"touch_to_lock": false, "twist_assist": true}})

	startBridge(t, broker, acct, map[string]string{"LOQED_EXTRA_SETTINGS": "touch_to_lock,auto_relock"})
	topic := "loqed/" + id + "/settings/"
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+id+"/#")
	rec.WaitPayload(t, waitFor, topic+"touch_to_lock", "OFF")

	harness.Publish(t, broker.URL(), topic+"touch_to_lock/set", "ON", false)
	waitResult(t, rec, id, "setting:touch_to_lock", "confirmed")
	rec.WaitPayload(t, waitFor, topic+"touch_to_lock", "ON")
	l, _ := acct.Lock(id)
	if !l.Settings["touch_to_lock"] {
		t.Errorf("account touch_to_lock = %v; want true", l.Settings["touch_to_lock"])
	}

	harness.Publish(t, broker.URL(), topic+"auto_relock/set", "ON", false)
	r, _ := waitResult(t, rec, id, "setting:auto_relock", "failed")
	if r.Code != "bad_request" {
		t.Errorf("auto_relock result = %+v; want code bad_request", r)
	}
	if v, ok := harness.Retained(t, broker.URL(), topic+"+")[topic+"auto_relock"]; ok {
		t.Errorf("auto_relock retained %q; want none, the lock does not report it", v)
	}

	// The Home Assistant device offers the extra setting as a switch.
	config := harness.Retained(t, broker.URL(), "homeassistant/device/loqed_"+id+"/config")["homeassistant/device/loqed_"+id+"/config"]
	if !strings.Contains(config, topic+"touch_to_lock/set") {
		t.Errorf("discovery config has no command topic for touch_to_lock: %s", config)
	}
}

// TestCommandNotConfirmed drops the final webhook of a command: after
// LOQED_CONFIRM_TIMEOUT the state returns to the last confirmed one, the
// result says not_confirmed, and the list is read again only while the
// budget allows.
func TestCommandNotConfirmed(t *testing.T) {
	cases := []struct {
		name      string
		budget    string
		wantCalls int
	}{
		{"budget spent", "1", 1},
		{"budget left", "2", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			broker := harness.StartBroker(t, harness.BrokerOptions{})
			acct := startAccount(t, loqedtest.Options{Locks: 1})
			lock := acct.Locks()[0]
			p := startBridge(t, broker, acct, map[string]string{"LOQED_CONFIRM_TIMEOUT": "2s", "LOQED_LIST_BUDGET": tc.budget})
			acct.SetWebhookURL(p.webhookURL(""))

			state := "loqed/" + lock.ID + "/state"
			rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
			rec.WaitPayload(t, waitFor, state, "day_lock")
			rec.Reset()

			acct.DropFinalWebhook(1)
			harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", `{"state":"night_lock","id":"drop-1"}`, false)
			locking := rec.WaitPayload(t, waitFor, state, "locking")
			waitResult(t, rec, lock.ID, "night_lock", "sent")
			r, m := waitResult(t, rec, lock.ID, "night_lock", "not_confirmed")
			if r.Code != "timeout" || r.ID != "drop-1" || r.OK {
				t.Errorf("result = %+v; want code timeout, id drop-1, ok false", r)
			}
			if d := m.At.Sub(locking.At); d < 1900*time.Millisecond {
				t.Errorf("not_confirmed %s after locking; want at least the 2s confirm timeout", d)
			}
			back := rec.WaitPayload(t, waitFor, state, "day_lock")
			if back.At.Sub(locking.At) < 1900*time.Millisecond {
				t.Errorf("state returned to day_lock %s after locking; want at least 2s", back.At.Sub(locking.At))
			}

			if tc.wantCalls == 1 {
				p.waitLog("not re-reading the lock list: call budget used up")
			} else {
				// The account's lock did move, and the re-read list says so.
				rec.WaitPayload(t, waitFor, state, "night_lock")
			}
			if n := listCalls(acct); n != tc.wantCalls {
				t.Errorf("list calls = %d; want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestCommandForCurrentState sends day_lock to a lock in day_lock: the API is
// called, the lock sends only GO_TO_STATE, and the command still resolves as
// confirmed without a moving state.
func TestCommandForCurrentState(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridge(t, broker, acct, map[string]string{"LOQED_CONFIRM_TIMEOUT": "2s"})
	acct.SetWebhookURL(p.webhookURL(""))

	state := "loqed/" + lock.ID + "/state"
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, state, "day_lock")
	rec.Reset()

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "UNLOCK", false)
	r, _ := waitResult(t, rec, lock.ID, "day_lock", "confirmed")
	if !r.OK {
		t.Errorf("result = %+v; want ok", r)
	}
	// The GO_TO_STATE event is published after any state it causes.
	rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "loqed/"+lock.ID+"/event" && strings.Contains(m.Payload, "GO_TO_STATE")
	})
	for _, m := range rec.Messages() {
		if m.Topic == state && m.Payload != "day_lock" {
			t.Errorf("state %q published for a command to the current state", m.Payload)
		}
		if m.Topic == "loqed/"+lock.ID+"/command_result" && !strings.Contains(m.Payload, `"status":"confirmed"`) {
			t.Errorf("command_result %s; want only confirmed", m.Payload)
		}
	}
	if n := len(requestsTo(acct, http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/day_lock")); n != 1 {
		t.Errorf("bolt_state/day_lock calls = %d; want 1", n)
	}
}

// TestRateLimitedCommand responds to a command with 429 and Retry-After: a lock
// command waits that long and tries once more, an open command is never
// repeated.
func TestRateLimitedCommand(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))

	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	acct.FailNext(1, http.StatusTooManyRequests, time.Second)
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "night_lock", false)
	waitResult(t, rec, lock.ID, "night_lock", "confirmed")

	calls := requestsTo(acct, http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/night_lock")
	if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || calls[1].Status != http.StatusNoContent {
		t.Fatalf("bolt_state calls = %+v; want a 429, then a 204", calls)
	}
	if d := calls[1].Time.Sub(calls[0].Time); d < 950*time.Millisecond || d > 3*time.Second {
		t.Errorf("retry %s after the 429; want the Retry-After of 1s", d)
	}
	logged := p.logLines("API call failed; retrying")
	if len(logged) != 1 || logged[0]["retry_in"] == nil {
		t.Errorf("retry log lines = %v; want one with retry_in", logged)
	}

	rec.Reset()
	acct.FailNext(1, http.StatusTooManyRequests, time.Second)
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "open", false)
	r, _ := waitResult(t, rec, lock.ID, "open", "failed")
	if r.Code != "rate_limited" || !strings.Contains(r.Error, "1s") {
		t.Errorf("open result = %+v; want code rate_limited naming 1s", r)
	}
	if n := len(requestsTo(acct, http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/open")); n != 1 {
		t.Errorf("bolt_state/open calls = %d; want 1: open is never retried", n)
	}
	// The failed command leaves the last confirmed state.
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "night_lock")

	// A Retry-After longer than LOQED_CONFIRM_TIMEOUT (5s here) is not
	// waited for: the command would run long after it was given.
	rec.Reset()
	acct.FailNext(1, http.StatusTooManyRequests, 30*time.Second)
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "day_lock", false)
	r, _ = waitResult(t, rec, lock.ID, "day_lock", "failed")
	if r.Code != "rate_limited" || !strings.Contains(r.Error, "30s") {
		t.Errorf("day_lock result = %+v; want code rate_limited naming 30s", r)
	}
	if n := len(requestsTo(acct, http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/day_lock")); n != 1 {
		t.Errorf("bolt_state/day_lock calls = %d; want 1", n)
	}

	// Rate limit headers of every call are logged at debug level.
	var headers bool
	for _, l := range p.logLines("API call") {
		if l["endpoint"] == "list_locks" && l["x_ratelimit_remaining"] == "59" && l["x_ratelimit_limit"] == "60" {
			headers = true
		}
	}
	if !headers {
		t.Errorf("no debug log line of the list call with its x-ratelimit headers")
	}
}

// TestTokenRejected runs the bridge with a token the account does not
// accept: the start-up log, a command and a refresh all say to create a new
// personal access token, and the failed read is not repeated at once.
func TestTokenRejected(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridgeArgs(t, broker, nil, map[string]string{
		"LOQED_API_URL":   acct.URL,
		"LOQED_API_TOKEN": "not-the-right-token",
	})

	failed := p.waitLog("failed to read the lock list; running with what the broker retained")
	if fmt.Sprint(failed["code"]) != "unauthorized" || !strings.Contains(fmt.Sprint(failed["action"]), "create a new personal access token") {
		t.Errorf("start-up log line = %v; want code unauthorized and an action to create a new personal access token", failed)
	}
	if strings.Contains(p.log(), "not-the-right-token") {
		t.Errorf("the log contains the token")
	}

	// The lock is learnt from a webhook, as without a token.
	status, answer := p.post(p.webhookURL(lock.ID), `{"event_type":"STATE_CHANGED_LATCH","requested_state":"DAY_LOCK","lock_id":"`+lock.ID+`"}`)
	if status != http.StatusOK {
		t.Fatalf("webhook status = %d (%s); want 200", status, answer)
	}
	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "night_lock", false)
	r, _ := waitResult(t, rec, lock.ID, "night_lock", "failed")
	if r.Code != "unauthorized" || !strings.Contains(r.Error, "create a new personal access token") {
		t.Errorf("command result = %+v; want code unauthorized telling to create a new personal access token", r)
	}
	if n := len(requestsTo(acct, http.MethodGet, "/api/locks/"+lock.ID+"/bolt_state/night_lock")); n != 1 {
		t.Errorf("bolt_state calls = %d; want 1: a rejected token is not retried", n)
	}
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	r, _ = waitResult(t, rec, lock.ID, "refresh", "failed")
	if r.Code != "unauthorized" || !strings.Contains(r.Error, "personal access token") {
		t.Errorf("refresh result = %+v; want code unauthorized", r)
	}

	// The automatic read after a failed one waits at least a minute, so
	// the bridge does not spend its budget on a token that cannot work.
	retry, ok := failed["retry_at"].(string)
	if !ok {
		t.Fatalf("start-up log line = %v; want retry_at", failed)
	}
	retryAt, err := time.Parse(time.RFC3339, retry)
	if err != nil {
		t.Fatalf("retry_at %q: %v", retry, err)
	}
	if d := time.Until(retryAt); d < 30*time.Second {
		t.Errorf("next automatic read in %s; want about a minute", d)
	}
	if n := listCalls(acct); n != 2 {
		t.Errorf("list calls = %d; want 2: the start and the refresh", n)
	}
}

// TestKeyRevoked deletes the token's key on the lock: commands and setting
// changes say the key was deleted in the LOQED app, and the list still works.
func TestKeyRevoked(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	lock := acct.Locks()[0]
	p := startBridge(t, broker, acct, nil)
	acct.SetWebhookURL(p.webhookURL(""))
	acct.RevokeKey(lock.ID)

	rec := harness.NewRecorder(t, broker.URL(), "loqed/"+lock.ID+"/#")
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/set", "night_lock", false)
	r, _ := waitResult(t, rec, lock.ID, "night_lock", "failed")
	if r.Code != "key_revoked" || !strings.Contains(r.Error, "deleted in the LOQED app") {
		t.Errorf("command result = %+v; want code key_revoked saying the key was deleted in the LOQED app", r)
	}
	rec.WaitPayload(t, waitFor, "loqed/"+lock.ID+"/state", "day_lock")

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/settings/twist_assist/set", "ON", false)
	r, _ = waitResult(t, rec, lock.ID, "setting:twist_assist", "failed")
	if r.Code != "key_revoked" {
		t.Errorf("setting result = %+v; want code key_revoked", r)
	}
	if n := len(requestsTo(acct, http.MethodPost, "/api/locks/"+lock.ID+"/setting")); n != 1 {
		t.Errorf("setting calls = %d; want 1: a revoked key is not retried", n)
	}

	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "now", false)
	waitResult(t, rec, lock.ID, "refresh", "confirmed")
}
