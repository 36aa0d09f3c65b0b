package bridge

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

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
// accepted until the broker acknowledges them. While the broker is away they
// wait here, at most limit over all locks; on reconnect each lock's events
// are published again in order.
type eventQueue struct {
	mu     sync.Mutex
	limit  int
	total  int
	seq    uint64
	byLock map[*lockState][]queuedEvent
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, byLock: make(map[*lockState][]queuedEvent)}
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

	list := q.byLock[l]
	for i, e := range list {
		if e.seq == seq {
			copy(list[i:], list[i+1:])
			list = list[:len(list)-1]
			q.total--
			break
		}
	}
	if len(list) == 0 {
		delete(q.byLock, l)
		return
	}
	q.byLock[l] = list
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

// queueEvent keeps an event message until the broker acknowledges it and
// sends it now. The caller holds l.mu.
func (b *Bridge) queueEvent(l *lockState, topic string, payload []byte) {
	seq, queued, dropped := b.queued.add(l, topic, payload)
	if dropped {
		b.metrics.eventsDropped.Inc()
		b.dropLog.Do(func() {
			l.log.Warn().Int("limit", b.opts.EventQueueLimit).Msg("event queue full while the broker is unreachable; dropping the oldest event of the lock (further drops are counted in loqed2mqtt_events_dropped_total)")
		})
	}
	if !queued {
		return
	}
	b.metrics.eventsQueued.Set(float64(b.queued.size()))
	b.sendEvent(l, queuedEvent{seq: seq, topic: topic, payload: payload})
}

func (b *Bridge) sendEvent(l *lockState, e queuedEvent) {
	b.pub.PublishAsync(e.topic, e.payload, false, func(err error) {
		if err != nil {
			l.dirty.Store(true)
			b.metrics.publishFailures.Inc()
			return
		}
		b.queued.remove(l, e.seq)
		b.metrics.published.Inc()
		b.metrics.eventsQueued.Set(float64(b.queued.size()))
	})
}

// resyncLock publishes the lock's waiting events in order, then its whole
// retained state.
func (b *Bridge) resyncLock(l *lockState) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.dirty.Store(false)
	for _, e := range b.queued.pending(l) {
		b.sendEvent(l, e)
	}
	l.publishAll()
}

// Resync publishes the bridge version, the discovery configs and then every
// lock's waiting events and retained state. The MQTT client calls it after
// every connect, which is what gives a broker that lost its retained
// messages everything back.
func (b *Bridge) Resync() {
	b.pub.PublishAsync(b.topics.bridgeVersion(), []byte(b.opts.Version), true, nil)
	if b.opts.Discovery {
		b.publishDiscovery()
	}
	for _, l := range b.allLocks() {
		b.resyncLock(l)
	}
}

// resyncDirty republishes the locks that had a failed publish.
func (b *Bridge) resyncDirty() {
	for _, l := range b.allLocks() {
		if l.dirty.Load() {
			b.resyncLock(l)
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
