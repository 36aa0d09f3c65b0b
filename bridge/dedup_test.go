package bridge

import (
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

func newTestLock(t *testing.T) *lockState {
	t.Helper()
	b := &Bridge{opts: Options{DedupWindow: 10 * time.Second, ConfirmTimeout: time.Minute}}
	return b.newLockState("dedup-lock")
}

func TestIsDuplicate_Window(t *testing.T) {
	l := newTestLock(t)
	night := &loqed.Event{Type: "STATE_CHANGED_NIGHT_LOCK", Kind: loqed.KindStateChanged, State: loqed.StateNightLock, KeyNameUser: "Phone"}
	latch := &loqed.Event{Type: "STATE_CHANGED_LATCH", Kind: loqed.KindStateChanged, State: loqed.StateDayLock, KeyNameUser: "Phone"}
	battery := 80
	readings := &loqed.Event{Kind: loqed.KindReadings, BatteryPercentage: &battery}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	steps := []struct {
		name  string
		ev    *loqed.Event
		after time.Duration
		want  bool
	}{
		{"first delivery", night, 0, false},
		{"second delivery 4s later", night, 4 * time.Second, true},
		{"readings", readings, 5 * time.Second, false},
		{"third copy after readings", night, 6 * time.Second, true},
		{"other final state", latch, 7 * time.Second, false},
		{"second delivery of it", latch, 8 * time.Second, true},
		{"real repeat that moves the lock", night, 9 * time.Second, false},
		{"its second delivery", night, 12 * time.Second, true},
		{"identical event after the window", night, 19 * time.Second, false},
		{"its second delivery after the window", night, 19*time.Second + 500*time.Millisecond, true},
	}
	for _, s := range steps {
		duplicate := l.isDuplicate(s.ev, t0.Add(s.after))
		if duplicate != s.want {
			t.Errorf("%s (%s at +%s): isDuplicate = %v; want %v", s.name, s.ev.Type, s.after, duplicate, s.want)
		}
		// applyEvent settles the lock on every accepted final event.
		if !duplicate && s.ev.Kind == loqed.KindStateChanged {
			l.settle(string(s.ev.State))
		}
	}
	if len(l.recent) > 3 {
		t.Errorf("%d fingerprints kept; want at most 3 within one window", len(l.recent))
	}
}
