package bridge

import (
	"context"
	"testing"
	"time"
)

func TestEventQueueBlockAndResend(t *testing.T) {
	q := newEventQueue(100)
	a, b := &lockState{id: "a"}, &lockState{id: "b"}
	var seqs []uint64
	for i := byte(1); i <= 3; i++ {
		seq, queued, dropped := q.add(a, "t", []byte{i})
		if !queued || dropped {
			t.Fatalf("add %d: queued %v, dropped %v; want queued only", i, queued, dropped)
		}
		seqs = append(seqs, seq)
	}
	q.add(b, "t", []byte{9})

	if q.isBlocked(a) {
		t.Fatal("new lock is blocked; want not blocked")
	}

	// The first event is acknowledged, the second fails.
	q.remove(a, seqs[0])
	q.block(a)
	if !q.isBlocked(a) {
		t.Fatal("lock with a failed send is not blocked")
	}
	if q.isBlocked(b) {
		t.Fatal("blocking one lock blocked another")
	}

	again := q.resend(a)
	if len(again) != 2 || again[0].payload[0] != 2 || again[1].payload[0] != 3 {
		t.Fatalf("resend = %v; want payloads 2, 3 in order", again)
	}
	if q.isBlocked(a) {
		t.Fatal("lock still blocked after resend")
	}

	// An empty lock is never blocked: nothing of it can be overtaken.
	empty := &lockState{id: "empty"}
	q.block(empty)
	if q.isBlocked(empty) {
		t.Fatal("lock without queued events is blocked")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.waitEmpty(ctx); err == nil {
		t.Fatal("waitEmpty with 3 events queued returned nil; want a timeout")
	}

	done := make(chan error, 1)
	go func() { done <- q.waitEmpty(context.Background()) }()
	q.remove(a, seqs[1])
	q.remove(a, seqs[2])
	q.remove(b, q.pending(b)[0].seq)
	if err := <-done; err != nil {
		t.Fatalf("waitEmpty after every acknowledgement: %v", err)
	}
	if q.size() != 0 {
		t.Fatalf("size = %d; want 0", q.size())
	}
}
