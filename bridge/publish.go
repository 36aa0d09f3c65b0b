package bridge

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// outbox hands messages to the Publisher on a goroutine of its own, in call
// order. The MQTT client's PublishAsync can block for its write timeout while
// it has not yet noticed a lost connection, and webhook handlers (which hold
// a lock's mutex) and acknowledgement callbacks must not wait for that. The
// queue is not bounded: while the client blocks it grows by what arrives in
// that time, and while the client is disconnected it drains at once because
// the client then fails every message immediately.
type outbox struct {
	pub Publisher

	mu     sync.Mutex
	queue  []outMessage
	added  uint64        // messages queued so far
	handed uint64        // messages handed to the Publisher so far
	busy   bool          // the goroutine is handing messages over
	idle   chan struct{} // closed and replaced when the queue is empty and not busy
	moved  chan struct{} // closed and replaced after every batch handed over
	wake   chan struct{}
}

type outMessage struct {
	topic    string
	payload  []byte
	retained bool
	done     func(error)
}

func newOutbox(pub Publisher) *outbox {
	o := &outbox{pub: pub, idle: make(chan struct{}), moved: make(chan struct{}), wake: make(chan struct{}, 1)}
	go o.run()
	return o
}

// PublishAsync queues a message for the Publisher and returns at once.
func (o *outbox) PublishAsync(topic string, payload []byte, retained bool, done func(error)) {
	o.mu.Lock()
	o.queue = append(o.queue, outMessage{topic: topic, payload: payload, retained: retained, done: done})
	o.added++
	o.mu.Unlock()

	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Publish queues a message behind those queued before and waits for the
// broker's acknowledgement or the end of ctx.
func (o *outbox) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	result := make(chan error, 1)
	o.PublishAsync(topic, payload, retained, func(err error) { result <- err })
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *outbox) IsConnected() bool { return o.pub.IsConnected() }

// run hands queued messages over for the life of the process. A bridge is
// created once per process, so the goroutine is never stopped.
func (o *outbox) run() {
	for range o.wake {
		for {
			o.mu.Lock()
			batch := o.queue
			o.queue = nil
			if len(batch) == 0 {
				o.busy = false
				close(o.idle)
				o.idle = make(chan struct{})
				o.mu.Unlock()
				break
			}
			o.busy = true
			o.mu.Unlock()

			for _, m := range batch {
				o.pub.PublishAsync(m.topic, m.payload, m.retained, m.done)
			}

			o.mu.Lock()
			o.handed += uint64(len(batch))
			close(o.moved)
			o.moved = make(chan struct{})
			o.mu.Unlock()
		}
	}
}

// queued returns the number of messages queued so far, for waitHandedOver.
func (o *outbox) queued() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.added
}

// waitHandedOver waits until the first n messages are handed to the
// Publisher or ctx ends.
func (o *outbox) waitHandedOver(ctx context.Context, n uint64) {
	for {
		o.mu.Lock()
		handed, moved := o.handed, o.moved
		o.mu.Unlock()
		if handed >= n {
			return
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return
		}
	}
}

// flush waits until every queued message is handed to the Publisher or ctx
// ends.
func (o *outbox) flush(ctx context.Context) error {
	for {
		o.mu.Lock()
		empty, idle := len(o.queue) == 0 && !o.busy, o.idle
		o.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("MQTT messages not handed to the client: %w", ctx.Err())
		}
	}
}

// publishRetained queues a retained message of a lock. A message that does
// not reach the broker marks the lock dirty, and the next resync publishes
// its whole state again.
func (b *Bridge) publishRetained(l *lockState, topic, payload string) {
	b.pub.PublishAsync(topic, []byte(payload), true, func(err error) {
		if err != nil {
			l.dirty.Store(true)
			b.metrics.publishFailures.Inc()
			return
		}
		b.metrics.published.Inc()
	})
}

// queuedEvent is a non-retained event message that has not been acknowledged
// by the broker yet.
type queuedEvent struct {
	seq     uint64
	topic   string
	payload []byte
}

// eventQueue holds the event messages of every lock from the moment they are
// accepted until the broker acknowledges them, at most limit over all locks.
//
// A lock's events are sent as they come, without waiting for earlier
// acknowledgements. Once a send fails, the lock is blocked: later events only
// queue, and the next resync sends every unacknowledged event of the lock
// again, oldest first. That keeps a lock's events in order across a lost
// connection, at the price of a possible second delivery of an event whose
// acknowledgement was lost.
type eventQueue struct {
	mu      sync.Mutex
	limit   int
	total   int
	seq     uint64
	byLock  map[*lockState][]queuedEvent
	blocked map[*lockState]bool
	changed chan struct{} // closed and replaced whenever total decreases
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{
		limit:   limit,
		byLock:  make(map[*lockState][]queuedEvent),
		blocked: make(map[*lockState]bool),
		changed: make(chan struct{}),
	}
}

// add appends an event of l. When the queue is full, the oldest event of the
// same lock makes room, or, if l has none queued, the new event is dropped.
// It returns the sequence number of the queued event and whether an event
// was dropped.
func (q *eventQueue) add(l *lockState, topic string, payload []byte) (seq uint64, queued, dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()

	if q.total >= q.limit {
		list := q.byLock[l]
		if len(list) == 0 {
			return 0, false, true
		}
		q.byLock[l] = list[1:]
		q.total--
		dropped = true
	}
	q.seq++
	q.byLock[l] = append(q.byLock[l], queuedEvent{seq: q.seq, topic: topic, payload: payload})
	q.total++
	return q.seq, true, dropped
}

// remove drops the acknowledged event seq of l.
func (q *eventQueue) remove(l *lockState, seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.removeLocked(l, seq)
}

func (q *eventQueue) removeLocked(l *lockState, seq uint64) {
	list := q.byLock[l]
	for i, e := range list {
		if e.seq == seq {
			copy(list[i:], list[i+1:])
			list = list[:len(list)-1]
			q.total--
			close(q.changed)
			q.changed = make(chan struct{})
			break
		}
	}
	if len(list) == 0 {
		delete(q.byLock, l)
		return
	}
	q.byLock[l] = list
}

// block stops sending the events of l until the next resend.
func (q *eventQueue) block(l *lockState) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.byLock[l]) > 0 {
		q.blocked[l] = true
	}
}

// isBlocked reports whether a send of l failed since its last resend.
func (q *eventQueue) isBlocked(l *lockState) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.blocked[l]
}

// resend unblocks l and returns its unacknowledged events, oldest first.
func (q *eventQueue) resend(l *lockState) []queuedEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.blocked, l)
	return append([]queuedEvent(nil), q.byLock[l]...)
}

// pending returns the events of l not yet acknowledged, oldest first.
func (q *eventQueue) pending(l *lockState) []queuedEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queuedEvent(nil), q.byLock[l]...)
}

// size returns the number of events waiting over all locks.
func (q *eventQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// waitEmpty waits until every queued event is acknowledged or ctx ends.
func (q *eventQueue) waitEmpty(ctx context.Context) error {
	for {
		q.mu.Lock()
		total, changed := q.total, q.changed
		q.mu.Unlock()
		if total == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d event messages not acknowledged by the broker: %w", total, ctx.Err())
		}
	}
}

// queueEvent keeps an event message until the broker acknowledges it and
// sends it now, unless an earlier send of the lock failed: then it waits for
// the resync that sends the lock's events again in order. The caller holds
// l.mu.
func (b *Bridge) queueEvent(l *lockState, topic string, payload []byte) {
	seq, queued, dropped := b.queued.add(l, topic, payload)
	if dropped {
		b.metrics.eventsDropped.Inc()
		b.dropLog.Do(func() {
			l.log.Warn().Int("limit", b.opts.EventQueueLimit).Msg("event queue full: the broker does not acknowledge events fast enough or is unreachable; dropping the oldest event of the lock (further drops are counted in loqed2mqtt_events_dropped_total)")
		})
	}
	if !queued {
		return
	}
	b.metrics.eventsQueued.Set(float64(b.queued.size()))
	if b.queued.isBlocked(l) {
		return
	}
	b.sendEvent(l, queuedEvent{seq: seq, topic: topic, payload: payload})
}

// sendEvent publishes one queued event. An acknowledged event leaves the
// queue; a failed one blocks the lock's events until the next resync.
func (b *Bridge) sendEvent(l *lockState, e queuedEvent) {
	b.pub.PublishAsync(e.topic, e.payload, false, func(err error) {
		if err != nil {
			b.queued.block(l)
			l.dirty.Store(true)
			b.metrics.publishFailures.Inc()
			return
		}
		b.queued.remove(l, e.seq)
		b.metrics.published.Inc()
		b.metrics.eventsQueued.Set(float64(b.queued.size()))
	})
}

// resyncLock sends the lock's unacknowledged events again when a send
// failed, or after a reconnect (all is set), and then its whole retained
// state.
func (b *Bridge) resyncLock(l *lockState, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.dirty.Store(false)
	if all || b.queued.isBlocked(l) {
		for _, e := range b.queued.resend(l) {
			b.sendEvent(l, e)
		}
	}
	l.publishAll()
}

// ConnectionLost blocks the events of every lock that has some on their way
// to the broker, so that no later event overtakes them: after the reconnect,
// Resync sends them again in order.
func (b *Bridge) ConnectionLost() {
	for _, l := range b.allLocks() {
		b.queued.block(l)
	}
}

// Resync publishes the bridge version, the discovery configs and then every
// lock's waiting events and retained state. The MQTT client calls it after
// every connect, which is what gives a broker that lost its retained
// messages everything back.
func (b *Bridge) Resync() {
	b.pub.PublishAsync(b.topics.bridgeVersion(), []byte(b.opts.Version), true, nil)
	b.resyncLocks()
}

// resyncLocks publishes the discovery configs and then every lock's waiting
// events and retained state.
func (b *Bridge) resyncLocks() {
	if b.opts.Discovery {
		b.publishDiscovery()
	}
	for _, l := range b.allLocks() {
		b.resyncLock(l, true)
	}
}

// resyncDirty republishes the locks that had a failed publish.
func (b *Bridge) resyncDirty() {
	for _, l := range b.allLocks() {
		if l.dirty.Load() {
			b.resyncLock(l, false)
		}
	}
}

// eventSum hashes every field of an event that LOQED sends, so that two
// deliveries of one event have the same sum and two different events almost
// never do.
func eventSum(ev *loqed.Event) uint64 {
	h := fnv.New64a()
	str := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	num := func(p *int) {
		if p == nil {
			str("-")
			return
		}
		str(strconv.Itoa(*p))
	}

	str(ev.Type)
	str(strconv.Itoa(int(ev.Kind)))
	str(string(ev.State))
	str(string(ev.RequestedState))
	str(string(ev.GoToState))
	num(ev.KeyLocalID)
	str(ev.KeyNameUser)
	str(ev.KeyNameAdmin)
	str(ev.KeyAccountEmail)
	str(ev.KeyAccountName)
	str(ev.Value1)
	str(ev.Value2)
	str(ev.Value3)
	num(ev.BatteryPercentage)
	str(ev.BatteryType)
	num(ev.WiFiStrength)
	num(ev.BLEStrength)
	switch {
	case ev.Online == nil:
		str("-")
	case *ev.Online:
		str("1")
	default:
		str("0")
	}
	return h.Sum64()
}

// onceEvery runs a function at most once per interval, for log lines that
// would otherwise repeat for every event.
type onceEvery struct {
	mu       sync.Mutex
	interval time.Duration
	last     time.Time
}

// Do runs f unless it ran within the interval.
func (o *onceEvery) Do(f func()) {
	o.mu.Lock()
	now := time.Now()
	if !o.last.IsZero() && now.Sub(o.last) < o.interval {
		o.mu.Unlock()
		return
	}
	o.last = now
	o.mu.Unlock()
	f()
}
