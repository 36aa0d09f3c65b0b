package mqtt

import "sync"

// fifo is an unbounded first-in first-out queue for one consumer goroutine. A push
// only takes a short lock, so Paho's goroutines hand messages over without waiting for
// a slow consumer.
type fifo[T any] struct {
	mu    sync.Mutex
	items []T

	// ready buffers one wake-up. A push that finds it full skips the send, because
	// the consumer has not yet taken the earlier wake-up and will see the new item.
	ready chan struct{}
}

func newFIFO[T any]() *fifo[T] {
	return &fifo[T]{ready: make(chan struct{}, 1)}
}

// push appends v and wakes the consumer.
func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()

	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// takeAll removes and returns every queued item in arrival order.
func (q *fifo[T]) takeAll() []T {
	q.mu.Lock()
	defer q.mu.Unlock()

	items := q.items
	q.items = nil
	return items
}
