package loqed

import (
	"slices"
	"sync"
	"time"
)

// Budget limits calls to a number per rolling window, for example the
// lock list, which LOQED allows about 12 times in 12 hours before it blocks
// the account. The caller passes the current time, so tests need no
// clock. A Budget is safe for concurrent use.
type Budget struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	calls []time.Time // ascending, wall-clock only, at most limit entries
}

// NewBudget returns a Budget of limit calls per window. A limit below 1
// allows no call at all.
func NewBudget(limit int, window time.Duration) *Budget {
	return &Budget{limit: max(limit, 0), window: window}
}

// Allow reports whether a call may be made at now and, if so, records it.
// When it may not, freeAt is the time the oldest recorded call leaves the
// window. freeAt is the zero time when the limit is below 1.
func (b *Budget) Allow(now time.Time) (ok bool, freeAt time.Time) {
	now = now.Round(0)

	b.mu.Lock()
	defer b.mu.Unlock()

	b.prune(now)
	if b.limit == 0 {
		return false, time.Time{}
	}
	if len(b.calls) >= b.limit {
		return false, b.calls[0].Add(b.window)
	}

	b.calls = append(b.calls, now)
	b.sortAndTrim()
	return true, time.Time{}
}

// Remaining returns how many calls are allowed at now.
func (b *Budget) Remaining(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()

	b.prune(now.Round(0))
	return b.limit - len(b.calls)
}

// Calls returns the recorded calls inside the window, oldest first, for
// persisting the budget across restarts.
func (b *Budget) Calls() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()

	return slices.Clone(b.calls)
}

// Restore merges calls into the budget, for reading back what Calls
// returned before a restart or what another instance recorded. Duplicates
// and zero times are dropped, and so are calls older than one window
// before the newest known call, since they cannot count against any later
// call. Calls in the future still count until they leave the window.
func (b *Budget) Restore(calls []time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()

	for _, c := range calls {
		if c.IsZero() {
			continue
		}
		c = c.Round(0)
		if !slices.ContainsFunc(b.calls, c.Equal) {
			b.calls = append(b.calls, c)
		}
	}
	b.sortAndTrim()

	if len(b.calls) > 0 {
		b.prune(b.calls[len(b.calls)-1])
	}
}

// prune drops calls that have left the window at now. A call made at t
// counts until t+window.
func (b *Budget) prune(now time.Time) {
	i := 0
	for i < len(b.calls) && !b.calls[i].Add(b.window).After(now) {
		i++
	}
	b.calls = b.calls[i:]
}

// sortAndTrim sorts the calls and keeps the newest limit of them. Older
// ones cannot change any result, because while more than limit calls are
// in the window, the budget stays exhausted until the limit-th newest
// leaves.
func (b *Budget) sortAndTrim() {
	slices.SortFunc(b.calls, func(x, y time.Time) int { return x.Compare(y) })
	if len(b.calls) > b.limit {
		b.calls = slices.Clone(b.calls[len(b.calls)-b.limit:])
	}
}
