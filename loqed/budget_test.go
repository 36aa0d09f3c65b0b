package loqed

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestBudget_Allow(t *testing.T) {
	b := NewBudget(3, time.Hour)

	for i := 0; i < 3; i++ {
		ok, _ := b.Allow(t0.Add(time.Duration(i) * time.Minute))
		if !ok {
			t.Fatalf("call %d rejected; want allowed", i+1)
		}
	}
	if got := b.Remaining(t0.Add(3 * time.Minute)); got != 0 {
		t.Errorf("Remaining = %d; want 0", got)
	}

	ok, freeAt := b.Allow(t0.Add(10 * time.Minute))
	if ok {
		t.Fatal("fourth call allowed; want rejected")
	}
	if want := t0.Add(time.Hour); !freeAt.Equal(want) {
		t.Errorf("freeAt = %v; want %v", freeAt, want)
	}
	if got := len(b.Calls()); got != 3 {
		t.Errorf("a rejected call was recorded: %d calls; want 3", got)
	}

	// A call made at t counts until exactly t+window.
	if ok, _ := b.Allow(t0.Add(time.Hour - time.Nanosecond)); ok {
		t.Error("call just before the oldest left the window allowed; want rejected")
	}
	if ok, _ := b.Allow(t0.Add(time.Hour)); !ok {
		t.Error("call when the oldest left the window rejected; want allowed")
	}
	if got := b.Remaining(t0.Add(time.Hour)); got != 0 {
		t.Errorf("Remaining = %d; want 0", got)
	}
	if got := b.Remaining(t0.Add(time.Hour + 30*time.Minute)); got != 2 {
		t.Errorf("Remaining at t0+1h30m = %d; want 2", got)
	}
	if got := b.Remaining(t0.Add(5 * time.Hour)); got != 3 {
		t.Errorf("Remaining much later = %d; want 3", got)
	}
}

func TestBudget_ZeroLimit(t *testing.T) {
	b := NewBudget(0, time.Hour)
	ok, freeAt := b.Allow(t0)
	if ok || !freeAt.IsZero() {
		t.Errorf("Allow = %v, %v; want false, zero time", ok, freeAt)
	}
	if got := b.Remaining(t0); got != 0 {
		t.Errorf("Remaining = %d; want 0", got)
	}
}

func TestBudget_CallsAreCopies(t *testing.T) {
	b := NewBudget(2, time.Hour)
	b.Allow(t0)
	calls := b.Calls()
	calls[0] = time.Time{}
	if got := b.Calls()[0]; !got.Equal(t0) {
		t.Errorf("Calls()[0] = %v after changing the returned slice; want %v", got, t0)
	}
}

func TestBudget_Restore(t *testing.T) {
	b := NewBudget(3, time.Hour)
	b.Allow(t0.Add(50 * time.Minute))

	b.Restore([]time.Time{
		t0.Add(50 * time.Minute), // duplicate of the recorded call
		t0.Add(10 * time.Minute),
		t0.Add(10 * time.Minute).In(time.FixedZone("CET", 3600)), // same instant
		t0.Add(-2 * time.Hour),                                   // outside the window of the newest call
		{},                                                       // zero time
	})

	calls := b.Calls()
	if len(calls) != 2 {
		t.Fatalf("Calls = %v; want 2 calls", calls)
	}
	if !calls[0].Equal(t0.Add(10*time.Minute)) || !calls[1].Equal(t0.Add(50*time.Minute)) {
		t.Errorf("Calls = %v; want t0+10m, t0+50m in order", calls)
	}
	if got := b.Remaining(t0.Add(55 * time.Minute)); got != 1 {
		t.Errorf("Remaining = %d; want 1", got)
	}
}

func TestBudget_RestoreKeepsNewest(t *testing.T) {
	b := NewBudget(2, time.Hour)
	b.Restore([]time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute), t0.Add(3 * time.Minute)})

	// With four calls in the window and a limit of two, the budget frees
	// up when the third-oldest call leaves.
	ok, freeAt := b.Allow(t0.Add(4 * time.Minute))
	if ok {
		t.Fatal("Allow after restoring four calls succeeded; want rejected")
	}
	if want := t0.Add(time.Hour + 2*time.Minute); !freeAt.Equal(want) {
		t.Errorf("freeAt = %v; want %v", freeAt, want)
	}
	if ok, _ := b.Allow(t0.Add(time.Hour + 2*time.Minute)); !ok {
		t.Error("Allow at freeAt rejected; want allowed")
	}
}

func TestBudget_RestoreRoundTrip(t *testing.T) {
	a := NewBudget(12, 12*time.Hour)
	for i := 0; i < 5; i++ {
		a.Allow(t0.Add(time.Duration(i) * time.Hour))
	}

	b := NewBudget(12, 12*time.Hour)
	b.Restore(a.Calls())
	now := t0.Add(6 * time.Hour)
	if got, want := b.Remaining(now), a.Remaining(now); got != want {
		t.Errorf("Remaining after restore = %d; want %d", got, want)
	}
}

func TestBudget_Concurrent(t *testing.T) {
	b := NewBudget(50, time.Hour)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				now := t0.Add(time.Duration(g*20+i) * time.Millisecond)
				if ok, _ := b.Allow(now); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
				b.Remaining(now)
				b.Restore(b.Calls())
			}
		}(g)
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d calls allowed; want exactly the limit of 50", allowed)
	}
}
