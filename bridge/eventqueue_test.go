package bridge

import (
	"context"
	"testing"
	"time"
)

func TestEventQueue_OneInFlightPerLock(t *testing.T) {
	q := newEventQueue(100)
	a, b := &lockState{id: "a"}, &lockState{id: "b"}
	for i := byte(1); i <= 3; i++ {
		q.add(a, "a/event", []byte{i})
	}
	q.add(b, "b/event", []byte{9})

	first, attempt, ok := q.next(a, false)
	if !ok || first.payload[0] != 1 {
		t.Fatalf("next(a) = %v, %v; want event 1", first.payload, ok)
	}
	if e, _, ok := q.next(a, false); ok {
		t.Fatalf("next(a) while event 1 is on its way = %v; want nothing", e.payload)
	}
	if e, _, ok := q.next(b, false); !ok || e.payload[0] != 9 {
		t.Fatalf("next(b) = %v, %v; want event 9: locks do not wait for each other", e.payload, ok)
	}

	if !q.done(a, first.seq, attempt, true) {
		t.Fatalf("done(event 1, acknowledged) = false; want the next event to go")
	}
	second, attempt, ok := q.next(a, false)
	if !ok || second.payload[0] != 2 {
		t.Fatalf("next(a) after the acknowledgement = %v, %v; want event 2", second.payload, ok)
	}

	// A failed send stops the lock until a resync sends the event again.
	if q.done(a, second.seq, attempt, false) {
		t.Fatalf("done(event 2, failed) = true; want the lock stopped")
	}
	again, attempt, ok := q.next(a, false)
	if !ok || again.seq != second.seq {
		t.Fatalf("next(a) after the failure = %v, %v; want event 2 again", again.payload, ok)
	}

	// After a reconnect the event on its way is sent once more. The
	// acknowledgement of the older send removes it but does not start the
	// next event; the latest send's does.
	resent, resentAttempt, ok := q.next(a, true)
	if !ok || resent.seq != second.seq || resentAttempt == attempt {
		t.Fatalf("next(a, resend) = %v, attempt %d, %v; want event 2 with a new attempt", resent.payload, resentAttempt, ok)
	}
	if q.done(a, second.seq, attempt, true) {
		t.Fatalf("done of the older send = true; want only the latest send to start the next event")
	}
	if got := len(q.pending(a)); got != 1 {
		t.Fatalf("pending(a) = %d events; want 1 (event 3)", got)
	}
	if !q.done(a, second.seq, resentAttempt, true) {
		t.Fatalf("done of the latest send = false; want the next event to go")
	}
	third, attempt, ok := q.next(a, false)
	if !ok || third.payload[0] != 3 {
		t.Fatalf("next(a) = %v, %v; want event 3", third.payload, ok)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.waitEmpty(ctx); err == nil {
		t.Fatalf("waitEmpty with events queued returned nil; want the context error")
	}

	q.done(a, third.seq, attempt, true)
	q.done(b, q.pending(b)[0].seq, 1, true)
	if err := q.waitEmpty(context.Background()); err != nil {
		t.Fatalf("waitEmpty on an empty queue: %v", err)
	}
	if q.size() != 0 {
		t.Fatalf("size = %d; want 0", q.size())
	}
}
