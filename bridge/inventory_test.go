package bridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// testNow is the fixed clock of these tests.
var testNow = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// newTestBridge returns a bridge that is never started: it has no broker
// connection, which the functions under test do not use.
func newTestBridge(t *testing.T, opts Options) *Bridge {
	t.Helper()
	opts.Logger = zerolog.Nop()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	b, err := New(opts, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestInfoPayloadRoundTrip(t *testing.T) {
	b := newTestBridge(t, Options{})
	l := b.newLockState("Ab3dEf6hIj9kLm2nOp5q")
	l.info = &loqed.Lock{
		ID:                  "Ab3dEf6hIj9kLm2nOp5q",
		Name:                "Front door",
		ModelName:           "LOQED Touch",
		BoltState:           loqed.StateNightLock,
		BatteryPercentage:   ptr(80),
		BatteryType:         loqed.BatteryNiMH,
		LockDirection:       "clockwise",
		MortiseLockType:     "cylinder_operated_no_handle_on_the_outside",
		SupportedLockStates: []loqed.BoltState{loqed.StateDayLock, loqed.StateNightLock},
		Online:              ptr(true),
		Settings:            map[string]bool{"twist_assist": true, "open_house_mode": false},
		Secrets:             loqed.LockSecrets{KeySecret: "c2VjcmV0LWtleS1zZWNyZXQ=", BridgeKey: "YnJpZGdlLWtleQ==", LocalID: ptr(3)},
	}
	l.infoUpdated = testNow.Add(-time.Hour)

	payload := l.infoPayload()
	for _, secret := range []string{"c2VjcmV0LWtleS1zZWNyZXQ=", "YnJpZGdlLWtleQ==", "key_secret", "bridge_key", "local_id"} {
		if strings.Contains(string(payload), secret) {
			t.Errorf("info payload contains %q: %s", secret, payload)
		}
	}

	got, updated, err := lockFromInfo(payload)
	if err != nil {
		t.Fatalf("lockFromInfo(%s): %v", payload, err)
	}
	if !updated.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("updated_at = %s; want %s", updated, testNow.Add(-time.Hour))
	}
	want := *l.info
	want.Secrets = loqed.LockSecrets{}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("lockFromInfo = %s; want %s", gotJSON, wantJSON)
	}
}

func TestLockFromInfoInvalid(t *testing.T) {
	cases := []struct {
		name    string
		payload string
	}{
		{"not JSON", `{"id":`},
		{"array", `["Ab3dEf6hIj9kLm2nOp5q"]`},
		{"string", `"Ab3dEf6hIj9kLm2nOp5q"`},
		{"missing id", `{"name":"Front door"}`},
		{"empty id", `{"id":""}`},
		{"id with slash", `{"id":"a/b"}`},
		{"id with plus", `{"id":"a+"}`},
		{"id with hash", `{"id":"#"}`},
		{"id of wrong type", `{"id":42}`},
		{"updated_at not a time", `{"id":"lock1","updated_at":"yesterday"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, _, err := lockFromInfo([]byte(tc.payload))
			if err == nil {
				t.Fatalf("lockFromInfo(%s) = %+v; want an error", tc.payload, l)
			}
			if l != nil {
				t.Errorf("lockFromInfo(%s) returned a lock with the error %v", tc.payload, err)
			}
		})
	}
}

func TestRestoreTopicValidates(t *testing.T) {
	cases := []struct {
		suffix  string
		payload string
		valid   bool
		check   func(l *lockState) bool
	}{
		{"state", "night_lock", true, func(l *lockState) bool { return l.state == "night_lock" && l.confirmed == "night_lock" }},
		{"state", "jammed", true, func(l *lockState) bool { return l.state == "jammed" && l.confirmed == "jammed" }},
		{"state", "sideways", false, func(l *lockState) bool { return l.state == "" && l.confirmed == "" }},
		{"state", "NIGHT_LOCK", false, func(l *lockState) bool { return l.state == "" }},
		{"availability", "offline", true, func(l *lockState) bool { return l.availability == "offline" }},
		{"availability", "maybe", false, func(l *lockState) bool { return l.availability == "" }},
		{"battery", "55", true, func(l *lockState) bool { return l.battery != nil && *l.battery == 55 }},
		{"battery", "101", false, func(l *lockState) bool { return l.battery == nil }},
		{"battery", "-1", false, func(l *lockState) bool { return l.battery == nil }},
		{"battery", "full", false, func(l *lockState) bool { return l.battery == nil }},
		{"wifi_strength", "0", true, func(l *lockState) bool { return l.wifiStrength != nil && *l.wifiStrength == 0 }},
		{"ble_strength", "4.5", false, func(l *lockState) bool { return l.bleStrength == nil }},
		{"battery_type", "nickel_metal_hydride", true, func(l *lockState) bool { return l.batteryType == loqed.BatteryNiMH }},
		{"last_changed_by", "Alex", true, func(l *lockState) bool { return l.lastChangedBy == "Alex" }},
		{"last_changed_by", strings.Repeat("x", 257), false, func(l *lockState) bool { return l.lastChangedBy == "" }},
		{"settings/twist_assist", "ON", true, func(l *lockState) bool { v, ok := l.settings["twist_assist"]; return ok && v }},
		{"settings/twist_assist", "OFF", true, func(l *lockState) bool { v, ok := l.settings["twist_assist"]; return ok && !v }},
		{"settings/twist_assist", "on", false, func(l *lockState) bool { _, ok := l.settings["twist_assist"]; return !ok }},
		{"settings/twist_assist", "1", false, func(l *lockState) bool { _, ok := l.settings["twist_assist"]; return !ok }},
	}
	for _, tc := range cases {
		t.Run(tc.suffix+"="+tc.payload[:min(len(tc.payload), 20)], func(t *testing.T) {
			b := newTestBridge(t, Options{})
			l := b.newLockState("lock1")
			if _, isInfo := l.restoreTopic(tc.suffix, []byte(tc.payload)); isInfo {
				t.Errorf("restoreTopic(%s) reported an info topic", tc.suffix)
			}
			if !tc.check(l) {
				t.Errorf("after restoreTopic(%s, %q): state %q, confirmed %q, availability %q, battery %v, settings %v, last_changed_by %q",
					tc.suffix, tc.payload, l.state, l.confirmed, l.availability, l.battery, l.settings, l.lastChangedBy)
			}
			// A value taken is remembered as published, so that Resync
			// does not publish it again; an ignored one is not.
			_, remembered := l.sent[b.topics.lock("lock1", tc.suffix)]
			if remembered != tc.valid {
				t.Errorf("restoreTopic(%s, %q) remembered the value as published = %t; want %t", tc.suffix, tc.payload, remembered, tc.valid)
			}
		})
	}
}

func TestRestoreTopicMovingState(t *testing.T) {
	b := newTestBridge(t, Options{ConfirmTimeout: time.Hour})
	l := b.newLockState("lock1")
	l.restoreTopic(suffixState, []byte("locking"))
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.transition != nil {
			l.transition.Stop()
		}
	})

	if l.state != stateLocking || l.confirmed != "" {
		t.Errorf("state %q, confirmed %q; want locking and nothing confirmed", l.state, l.confirmed)
	}
	if l.transition == nil {
		t.Errorf("a restored moving state has no fallback timer; it would show locking forever")
	}
}

func TestRestoreTopicKeepsNewerValue(t *testing.T) {
	b := newTestBridge(t, Options{})
	l := b.newLockState("lock1")

	// A webhook accepted before the snapshot arrived set the state.
	l.state, l.confirmed = "day_lock", "day_lock"
	l.sent[b.topics.lock("lock1", suffixState)] = "day_lock"

	l.restoreTopic(suffixState, []byte("night_lock"))
	if l.state != "day_lock" {
		t.Errorf("state = %q after restoring an older retained value; want day_lock", l.state)
	}
}

func TestRestoreTopicInfo(t *testing.T) {
	b := newTestBridge(t, Options{})
	l := b.newLockState("lock1")
	l.settings["twist_assist"] = false // from a retained switch topic

	updatedAt := testNow.Add(-2 * time.Hour)
	payload := `{"id":"lock1","name":"Front door","supported_lock_states":["night_lock"],"settings":{"twist_assist":true,"touch_to_connect":true},"updated_at":"` + updatedAt.Format(time.RFC3339) + `"}`
	updated, ok := l.restoreTopic(suffixInfo, []byte(payload))
	if !ok || !updated.Equal(updatedAt) {
		t.Fatalf("restoreTopic(info) = %s, %t; want %s, true", updated, ok, updatedAt)
	}
	if l.info == nil || l.info.Name != "Front door" || l.info.Supports(loqed.StateOpen) {
		t.Errorf("info = %+v; want Front door supporting only night_lock", l.info)
	}
	if l.settings["twist_assist"] != false || l.settings["touch_to_connect"] != true {
		t.Errorf("settings = %v; want the retained switch twist_assist=false kept and touch_to_connect=true added", l.settings)
	}

	other := b.newLockState("lock2")
	if _, ok := other.restoreTopic(suffixInfo, []byte(payload)); ok || other.info != nil {
		t.Errorf("info of lock1 was taken for lock2")
	}
	if _, ok := other.restoreTopic(suffixInfo, []byte(`{"id":`)); ok || other.info != nil {
		t.Errorf("invalid info JSON was taken")
	}
}

// retainedInfo returns a retained info payload for id read at updated; the
// zero time leaves updated_at out.
func retainedInfo(id string, updated time.Time) []byte {
	msg := map[string]any{"id": id, "name": id, "supported_lock_states": []string{"open", "day_lock", "night_lock"}, "settings": map[string]bool{}}
	if !updated.IsZero() {
		msg["updated_at"] = updated
	}
	payload, _ := json.Marshal(msg)
	return payload
}

func TestRestoreInventoryAge(t *testing.T) {
	cases := []struct {
		name       string
		retained   map[string][]byte
		wantLoaded bool
		wantAge    time.Duration
	}{
		{
			name: "oldest description counts",
			retained: map[string][]byte{
				"loqed/lock1/info": retainedInfo("lock1", testNow.Add(-time.Hour)),
				"loqed/lock2/info": retainedInfo("lock2", testNow.Add(-5*time.Hour)),
				"loqed/lock3/info": retainedInfo("lock3", testNow.Add(-2*time.Hour)),
			},
			wantLoaded: true, wantAge: 5 * time.Hour,
		},
		{
			name: "description without updated_at is stale",
			retained: map[string][]byte{
				"loqed/lock1/info": retainedInfo("lock1", testNow.Add(-time.Hour)),
				"loqed/lock2/info": retainedInfo("lock2", time.Time{}),
				"loqed/lock3/info": retainedInfo("lock3", testNow.Add(-2*time.Hour)),
			},
			wantLoaded: true, wantAge: testNow.Sub(time.Time{}),
		},
		{
			name: "description from the future counts as read now",
			retained: map[string][]byte{
				"loqed/lock1/info": retainedInfo("lock1", testNow.Add(1000*time.Hour)),
			},
			wantLoaded: true, wantAge: 0,
		},
		{
			name: "invalid descriptions load nothing",
			retained: map[string][]byte{
				"loqed/lock1/info":        []byte(`{"id":`),
				"loqed/lock2/info":        retainedInfo("lock9", testNow),
				"loqed/a+b/info":          retainedInfo("a+b", testNow),
				"loqed/bridge/info":       retainedInfo("bridge", testNow),
				"loqed/lock3/info/extra":  retainedInfo("lock3", testNow),
				"other/lock4/info":        retainedInfo("lock4", testNow),
				"loqed/lock5/state":       []byte("night_lock"),
				"loqed/lock6/unknown_key": []byte("1"),
			},
			wantLoaded: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t, Options{BaseTopic: "loqed"})
			b.restore(tc.retained)

			updated, loaded := b.inventory.lastUpdate()
			if loaded != tc.wantLoaded {
				t.Fatalf("loaded = %t; want %t", loaded, tc.wantLoaded)
			}
			if loaded && testNow.Sub(updated) != tc.wantAge {
				t.Errorf("age of the lock list = %s; want %s", testNow.Sub(updated), tc.wantAge)
			}
		})
	}
}

func TestRestoreIgnoresForeignTopics(t *testing.T) {
	b := newTestBridge(t, Options{BaseTopic: "loqed"})
	b.restore(map[string][]byte{
		"loqed/a+b/state":                []byte("night_lock"),
		"loqed/bridge/state":             []byte("online"),
		"loqed/lock5/state":              []byte("night_lock"),
		"loqed/lock6/unknown_key":        []byte("1"),
		"loqed/lock7/settings/x/set":     []byte("ON"),
		"loqed/lock8/settings/twist_ass": []byte("ON"),
	})

	for _, id := range []string{"a+b", "bridge", "lock6", "lock7"} {
		if b.lock(id) != nil {
			t.Errorf("restore created lock %q", id)
		}
	}
	if l := b.lock("lock5"); l == nil || l.state != "night_lock" {
		t.Errorf("lock5 was not restored with night_lock")
	}
	if l := b.lock("lock8"); l == nil || !l.settings["twist_ass"] {
		t.Errorf("lock8 setting was not restored")
	}
}

func budgetPayload(t *testing.T, calls ...time.Time) []byte {
	t.Helper()
	payload, err := json.Marshal(budgetMessage{Limit: 3, WindowSeconds: 12 * 3600, Calls: calls})
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

func TestMergeBudget(t *testing.T) {
	b := newTestBridge(t, Options{ListBudget: 3})
	remaining := func() int { return b.budget.Remaining(testNow) }
	gauge := func() float64 {
		var m dto.Metric
		if err := b.metrics.budgetRemaining.Write(&m); err != nil {
			t.Fatalf("reading the budget gauge: %v", err)
		}
		return m.GetGauge().GetValue()
	}
	merge := func(payload []byte, wantLacking bool) {
		t.Helper()
		lacking, err := b.mergeBudget(payload)
		if err != nil {
			t.Fatalf("mergeBudget(%s): %v", payload, err)
		}
		if lacking != wantLacking {
			t.Errorf("mergeBudget(%s) lacking = %t; want %t", payload, lacking, wantLacking)
		}
	}

	for _, payload := range []string{"not JSON", `{"calls":"yesterday"}`, `[1,2]`} {
		if _, err := b.mergeBudget([]byte(payload)); err == nil {
			t.Errorf("mergeBudget(%s) = nil error; want invalid JSON", payload)
		}
	}
	merge(nil, false)
	if remaining() != 3 || gauge() != 3 {
		t.Fatalf("remaining after invalid messages = %d (gauge %v); want 3", remaining(), gauge())
	}

	first := budgetPayload(t, testNow.Add(-13*time.Hour), testNow.Add(-2*time.Hour))
	merge(first, false)
	if remaining() != 2 || gauge() != 2 {
		t.Errorf("remaining after one call in the window = %d (gauge %v); want 2", remaining(), gauge())
	}

	// The same message again, as the subscription delivers it after the
	// snapshot, does not count twice.
	merge(first, false)
	if remaining() != 2 {
		t.Errorf("remaining after the same message again = %d; want 2", remaining())
	}

	// Another instance's message carries its own calls and ours.
	merge(budgetPayload(t, testNow.Add(-2*time.Hour), testNow.Add(-time.Minute)), false)
	if remaining() != 1 || gauge() != 1 {
		t.Errorf("remaining after another instance's call = %d (gauge %v); want 1", remaining(), gauge())
	}

	// A message that lacks the newest call does not free it, and must be
	// replaced on the broker.
	merge(budgetPayload(t, testNow.Add(-2*time.Hour)), true)
	if remaining() != 1 {
		t.Errorf("remaining after a message lacking a call = %d; want 1", remaining())
	}

	// What the bridge publishes then holds every call in the window.
	var msg budgetMessage
	if err := json.Unmarshal(b.budgetPayload(), &msg); err != nil {
		t.Fatal(err)
	}
	if len(msg.Calls) != 2 || msg.Limit != 3 || msg.WindowSeconds != 12*3600 {
		t.Errorf("budget payload = %+v; want 2 calls, limit 3, window 43200", msg)
	}
	merge(b.budgetPayload(), false)
}

func TestRestoreReadsBudget(t *testing.T) {
	b := newTestBridge(t, Options{BaseTopic: "loqed", ListBudget: 3})
	b.restore(map[string][]byte{
		"loqed/bridge/budget": budgetPayload(t, testNow.Add(-time.Hour), testNow.Add(-time.Minute), testNow.Add(-time.Second)),
	})
	if n := b.budget.Remaining(testNow); n != 0 {
		t.Errorf("remaining after restoring three calls = %d; want 0", n)
	}
	ok, freeAt := b.budget.Allow(testNow)
	if ok || !freeAt.Equal(testNow.Add(11*time.Hour)) {
		t.Errorf("Allow = %t, %s; want false, %s", ok, freeAt, testNow.Add(11*time.Hour))
	}
}

func TestBudgetErrorNamesFreeTime(t *testing.T) {
	err := error(&budgetError{limit: 10, window: 12 * time.Hour, freeAt: testNow.Add(90 * time.Minute)})
	text := sentence(err)
	if !strings.Contains(text, "2026-03-14T13:30:00Z") || !strings.HasPrefix(text, "The lock list") {
		t.Errorf("budget error = %q; want a sentence naming 2026-03-14T13:30:00Z", text)
	}
	var be *budgetError
	if !errors.As(err, &be) {
		t.Errorf("errors.As(*budgetError) = false")
	}
}

func TestReadFailedBacksOff(t *testing.T) {
	var inv inventory
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		retryAt := inv.readFailed(testNow, 12*time.Hour)
		if got := retryAt.Sub(testNow); got != w {
			t.Errorf("wait after failure %d = %s; want %s", i+1, got, w)
		}
		if inv.mayRetry(testNow) || !inv.mayRetry(retryAt) {
			t.Errorf("failure %d: mayRetry before %s or not at it", i+1, retryAt)
		}
	}

	inv.readSucceeded()
	if got := inv.readFailed(testNow, 12*time.Hour).Sub(testNow); got != time.Minute {
		t.Errorf("wait after a success and a failure = %s; want 1m", got)
	}

	// A short refresh interval caps the wait.
	var short inventory
	for i := 0; i < 5; i++ {
		short.readFailed(testNow, 3*time.Minute)
	}
	if got := short.readFailed(testNow, 3*time.Minute).Sub(testNow); got != 3*time.Minute {
		t.Errorf("wait with a 3m refresh interval = %s; want 3m", got)
	}

	// A Retry-After longer than the backoff wins.
	var limited inventory
	limited.setRateLimited(testNow.Add(10 * time.Minute))
	if got := limited.readFailed(testNow, 12*time.Hour).Sub(testNow); got != 10*time.Minute {
		t.Errorf("wait with a 10m Retry-After = %s; want 10m", got)
	}
	if until := limited.rateLimited(testNow); !until.Equal(testNow.Add(10 * time.Minute)) {
		t.Errorf("rateLimited = %s; want %s", until, testNow.Add(10*time.Minute))
	}
	if until := limited.rateLimited(testNow.Add(10 * time.Minute)); !until.IsZero() {
		t.Errorf("rateLimited at the end of Retry-After = %s; want zero", until)
	}
}
