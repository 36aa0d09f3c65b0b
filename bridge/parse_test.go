package bridge

import (
	"errors"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

func TestParseLockCommand(t *testing.T) {
	cases := []struct {
		payload string
		state   loqed.BoltState
		id      string
		code    string
		wantErr bool
	}{
		{payload: "night_lock", state: loqed.StateNightLock},
		{payload: "DAY_LOCK", state: loqed.StateDayLock},
		{payload: " open\n", state: loqed.StateOpen},
		{payload: "LOCK", state: loqed.StateNightLock},
		{payload: "unlock", state: loqed.StateDayLock},
		{payload: "OPEN", state: loqed.StateOpen},
		{payload: `{"state":"night_lock","id":"abc"}`, state: loqed.StateNightLock, id: "abc"},
		{payload: `{"action":"open","code":"1234"}`, state: loqed.StateOpen, code: "1234"},
		{payload: `{"action":"LOCK","code":""}`, state: loqed.StateNightLock},
		{payload: "sideways", wantErr: true},
		{payload: "", wantErr: true},
		{payload: `{"state":"open","action":"open"}`, wantErr: true},
		{payload: `{"id":"x"}`, wantErr: true},
		{payload: `{"state":"open","extra":1}`, wantErr: true},
		{payload: `{"state":"open"} {}`, wantErr: true},
		{payload: `{"state":5}`, wantErr: true},
		{payload: "\xff\xfe", wantErr: true},
	}
	for _, tc := range cases {
		state, id, code, err := ParseLockCommand([]byte(tc.payload))
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseLockCommand(%q) = %q; want an error", tc.payload, state)
			} else if !errors.Is(err, errInvalidCommand) {
				t.Errorf("ParseLockCommand(%q) error %v does not wrap errInvalidCommand", tc.payload, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLockCommand(%q) error: %v", tc.payload, err)
			continue
		}
		if state != tc.state || id != tc.id || code != tc.code {
			t.Errorf("ParseLockCommand(%q) = %q, %q, %q; want %q, %q, %q", tc.payload, state, id, code, tc.state, tc.id, tc.code)
		}
	}
}

func TestParseSettingValue(t *testing.T) {
	for payload, want := range map[string]bool{"ON": true, "on": true, "1": true, "true": true, "OFF": false, "0": false, "False": false} {
		got, err := ParseSettingValue([]byte(payload))
		if err != nil || got != want {
			t.Errorf("ParseSettingValue(%q) = %v, %v; want %v", payload, got, err, want)
		}
	}
	for _, payload := range []string{"", "yes", "2", "ONN"} {
		if _, err := ParseSettingValue([]byte(payload)); err == nil {
			t.Errorf("ParseSettingValue(%q) succeeded; want an error", payload)
		}
	}
}

func TestParseCommandTopic(t *testing.T) {
	tp := topics{base: "loqed"}
	cases := []struct {
		topic string
		want  commandTopic
		ok    bool
	}{
		{"loqed/abc/set", commandTopic{lockID: "abc", kind: suffixSet}, true},
		{"loqed/abc/refresh", commandTopic{lockID: "abc", kind: suffixRefresh}, true},
		{"loqed/abc/settings/twist_assist/set", commandTopic{lockID: "abc", kind: suffixSettings, setting: "twist_assist"}, true},
		{"loqed/bridge/set", commandTopic{}, false},
		{"loqed//set", commandTopic{}, false},
		{"loqed/abc/state", commandTopic{}, false},
		{"loqed/abc/settings//set", commandTopic{}, false},
		{"other/abc/set", commandTopic{}, false},
		{"loqed/abc/set/extra", commandTopic{}, false},
	}
	for _, tc := range cases {
		got, ok := tp.parseCommandTopic(tc.topic)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseCommandTopic(%q) = %+v, %v; want %+v, %v", tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEventQueueBound(t *testing.T) {
	q := newEventQueue(3)
	a, b := &lockState{id: "a"}, &lockState{id: "b"}

	for i := 0; i < 3; i++ {
		if _, queued, dropped := q.add(a, "t", []byte{byte(i)}); !queued || dropped {
			t.Fatalf("add %d: queued %v, dropped %v; want queued, not dropped", i, queued, dropped)
		}
	}
	// Full: a new event of a lock with events queued replaces its oldest.
	if _, queued, dropped := q.add(a, "t", []byte{3}); !queued || !dropped {
		t.Fatalf("add to full queue: queued %v, dropped %v; want both", queued, dropped)
	}
	got := q.pending(a)
	if len(got) != 3 || got[0].payload[0] != 1 || got[2].payload[0] != 3 {
		t.Fatalf("pending = %v; want payloads 1, 2, 3", got)
	}
	// Full: a lock with nothing queued loses its new event.
	if _, queued, dropped := q.add(b, "t", []byte{9}); queued || !dropped {
		t.Fatalf("add for other lock: queued %v, dropped %v; want dropped only", queued, dropped)
	}
	if q.size() != 3 {
		t.Fatalf("size = %d; want 3", q.size())
	}

	q.remove(a, got[1].seq)
	if left := q.pending(a); len(left) != 2 || left[0].payload[0] != 1 || left[1].payload[0] != 3 {
		t.Fatalf("pending after remove = %v; want payloads 1, 3", left)
	}
}

func TestBackoffCapped(t *testing.T) {
	b := &Bridge{opts: Options{RetryBase: time.Second, RetryMax: 8 * time.Second}}
	for attempt := 1; attempt <= 10; attempt++ {
		d := b.backoff(attempt)
		want := time.Second << min(attempt-1, 3)
		if d < want/2 || d > want {
			t.Errorf("backoff(%d) = %s; want between %s and %s", attempt, d, want/2, want)
		}
	}
}

func TestDescribeAPIError(t *testing.T) {
	cases := map[error]string{
		loqed.ErrUnauthorized: "unauthorized",
		loqed.ErrKeyRevoked:   "key_revoked",
		loqed.ErrRateLimited:  "rate_limited",
		loqed.ErrNotFound:     "not_found",
		loqed.ErrServer:       "server_error",
		loqed.ErrTimeout:      "timeout",
		loqed.ErrUnavailable:  "unavailable",
		loqed.ErrBadRequest:   "bad_request",
	}
	for err, want := range cases {
		code, text := describeAPIError(&loqed.APIError{Endpoint: "bolt_state", StatusCode: 500, Err: err})
		if code != want {
			t.Errorf("describeAPIError(%v) code = %q; want %q", err, code, want)
		}
		if text == "" {
			t.Errorf("describeAPIError(%v) text is empty", err)
		}
	}
}

func TestEventSumDistinguishesFields(t *testing.T) {
	one := 1
	base := loqed.Event{Type: "STATE_CHANGED_LATCH", Kind: loqed.KindStateChanged, State: loqed.StateDayLock, KeyLocalID: &one}
	same := base
	if eventSum(&base) != eventSum(&same) {
		t.Fatal("identical events have different sums")
	}
	variants := []func(e *loqed.Event){
		func(e *loqed.Event) { e.Type = "STATE_CHANGED_OPEN" },
		func(e *loqed.Event) { e.KeyLocalID = nil },
		func(e *loqed.Event) { e.KeyNameUser = "x" },
		func(e *loqed.Event) { e.Value1 = "x" },
		func(e *loqed.Event) { f := false; e.Online = &f },
	}
	for i, change := range variants {
		v := base
		change(&v)
		if eventSum(&v) == eventSum(&base) {
			t.Errorf("variant %d has the same sum as the base event", i)
		}
	}
}

func TestChangedBy(t *testing.T) {
	seven := 7
	cases := []struct {
		ev   loqed.Event
		want string
	}{
		{loqed.Event{KeyNameUser: "Phone", KeyAccountName: "Alex"}, "Phone"},
		{loqed.Event{KeyAccountName: "Alex", KeyNameAdmin: "Admin"}, "Alex"},
		{loqed.Event{KeyNameAdmin: "Admin"}, "Admin"},
		{loqed.Event{KeyLocalID: &seven}, "KeyID 7"},
		{loqed.Event{}, ""},
	}
	for _, tc := range cases {
		if got := changedBy(&tc.ev); got != tc.want {
			t.Errorf("changedBy(%+v) = %q; want %q", tc.ev, got, tc.want)
		}
	}
}
