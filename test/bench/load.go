package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subscribeQoS is the QoS of the bench's subscription to event topics, the
// same for every target. Every target publishes events with QoS 1, so QoS 1
// here means the broker delivers them as published, with an acknowledgement.
const subscribeQoS = 1

// loadSpec describes the load of one run.
type loadSpec struct {
	open        bool          // open loop at rate; closed loop at concurrency otherwise
	concurrency int           // closed loop: requests in flight
	events      int           // events to send
	rate        float64       // open loop: events per second
	maxInflight int           // open loop: cap on requests in flight
	grace       time.Duration // wait for MQTT messages after the last response
	maxTime     time.Duration // hard cap on sending plus grace
}

// runSample is the raw outcome of one run's load.
type runSample struct {
	t0         time.Time // the moment every duration below counts from
	sent       int
	sendAt     []time.Duration // scheduled (open loop) or actual (closed loop) send time per event
	httpDur    []time.Duration // send time to response, or -1 without response
	recvAt     []time.Duration // MQTT arrival, or 0 when none arrived
	httpErrors int
	duplicates int
	sendLagMax time.Duration // open loop: worst delay of an actual send behind its schedule
	firstErr   string
}

// collector is the bench's MQTT subscriber. It matches each message on
// <base>/+/event to the event whose unique key_name_user it carries.
type collector struct {
	client paho.Client

	mu      sync.Mutex
	current *runState
}

// runState is the receive side of one run.
type runState struct {
	marker   []byte // "bench-<run id>-", followed by the event's sequence number
	t0       time.Time
	recvAt   []atomic.Int64 // nanoseconds since t0
	received atomic.Int64
	dups     atomic.Int64
	want     atomic.Int64 // events sent; complete is closed when received reaches it
	complete chan struct{}
	once     sync.Once
}

func newCollector(broker, base string) (*collector, error) {
	c := &collector{}

	// Without reconnection a lost connection shows up as lost events, which
	// is right for a measurement, and the log line gives the reason.
	opts := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(fmt.Sprintf("bench-sub-%d", os.Getpid())).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			fmt.Fprintf(os.Stderr, "bench: the subscriber lost its connection to %s, so later events count as lost: %v\n", broker, err)
		})
	c.client = paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(c.client.Connect(), 10*time.Second); err != nil {
		return nil, fmt.Errorf("cannot connect the bench's subscriber to %s: %w", broker, err)
	}
	filter := base + "/+/event"
	if err := paho.WaitTokenTimeout(c.client.Subscribe(filter, subscribeQoS, c.handle), 10*time.Second); err != nil {
		c.client.Disconnect(250)
		return nil, fmt.Errorf("cannot subscribe to %s: %w", filter, err)
	}
	return c, nil
}

func (c *collector) Close() { c.client.Disconnect(250) }

// handle runs on paho's delivery goroutine, so it only takes the time and
// looks up the sequence number.
func (c *collector) handle(_ paho.Client, msg paho.Message) {
	c.mu.Lock()
	rs := c.current
	c.mu.Unlock()
	if rs == nil {
		return
	}
	now := time.Since(rs.t0)

	payload := msg.Payload()
	i := bytes.Index(payload, rs.marker)
	if i < 0 {
		return
	}
	digits := payload[i+len(rs.marker):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	seq, err := strconv.Atoi(string(digits[:n]))
	if err != nil || seq < 0 || seq >= len(rs.recvAt) {
		return
	}

	if !rs.recvAt[seq].CompareAndSwap(0, int64(max(now, 1))) {
		rs.dups.Add(1)
		return
	}
	if got := rs.received.Add(1); got == rs.want.Load() {
		rs.once.Do(func() { close(rs.complete) })
	}
}

// begin prepares the collector for a run of n events and returns its state.
func (c *collector) begin(runID string, n int, t0 time.Time) *runState {
	rs := &runState{
		marker:   []byte("bench-" + runID + "-"),
		t0:       t0,
		recvAt:   make([]atomic.Int64, n),
		complete: make(chan struct{}),
	}
	rs.want.Store(int64(n) + 1) // not reachable until the sender sets it
	c.mu.Lock()
	c.current = rs
	c.mu.Unlock()
	return rs
}

func (c *collector) end() {
	c.mu.Lock()
	c.current = nil
	c.mu.Unlock()
}

// setSent records how many events were sent, so that the run completes when
// that many have arrived.
func (rs *runState) setSent(n int) {
	rs.want.Store(int64(n))
	if rs.received.Load() >= int64(n) {
		rs.once.Do(func() { close(rs.complete) })
	}
}

// webhookBody builds the LOQED cloud webhook for event seq. States alternate
// per lock between night lock and day lock (LATCH), so every event is a
// state change.
func webhookBody(runID string, seq int, lockIDs []string) []byte {
	lock := lockIDs[seq%len(lockIDs)]
	eventType, state := "STATE_CHANGED_NIGHT_LOCK", "NIGHT_LOCK"
	if (seq/len(lockIDs))%2 == 1 {
		eventType, state = "STATE_CHANGED_LATCH", "DAY_LOCK"
	}
	return fmt.Appendf(nil, `{"event_type":%q,"requested_state":%q,"lock_id":%q,"key_local_id":"1","key_name_user":"bench-%s-%d","key_name_admin":"Bench","key_account_email":"bench@example.invalid","key_account_name":"Bench"}`,
		eventType, state, lock, runID, seq)
}

// generateLoad sends spec.events webhooks to url and waits for their MQTT
// messages. Bodies are built before the clock starts.
func generateLoad(ctx context.Context, httpClient *http.Client, col *collector, url, runID string, lockIDs []string, spec loadSpec) runSample {
	bodies := make([][]byte, spec.events)
	for i := range bodies {
		bodies[i] = webhookBody(runID, i, lockIDs)
	}

	ctx, cancel := context.WithTimeout(ctx, spec.maxTime)
	defer cancel()

	s := runSample{
		sendAt:  make([]time.Duration, spec.events),
		httpDur: make([]time.Duration, spec.events),
	}
	var errCount atomic.Int64
	var firstErr atomic.Value
	post := func(i int, from time.Duration, t0 time.Time) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i]))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			var resp *http.Response
			resp, err = httpClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("POST returned %s", resp.Status)
				}
			}
		}
		s.httpDur[i] = time.Since(t0) - from
		if err != nil {
			s.httpDur[i] = -1
			errCount.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	}

	t0 := time.Now()
	s.t0 = t0
	rs := col.begin(runID, spec.events, t0)
	defer col.end()

	if spec.open {
		s.sent, s.sendLagMax = openLoop(ctx, spec, t0, s.sendAt, post)
	} else {
		s.sent = closedLoop(ctx, spec, t0, s.sendAt, post)
	}
	rs.setSent(s.sent)

	// The grace period starts when the last response is in; ctx still caps it.
	graceCtx, graceCancel := context.WithTimeout(ctx, spec.grace)
	defer graceCancel()
	select {
	case <-rs.complete:
	case <-graceCtx.Done():
	}

	s.recvAt = make([]time.Duration, s.sent)
	for i := range s.sent {
		s.recvAt[i] = time.Duration(rs.recvAt[i].Load())
	}
	s.sendAt = s.sendAt[:s.sent]
	s.httpDur = s.httpDur[:s.sent]
	s.httpErrors = int(errCount.Load())
	s.duplicates = int(rs.dups.Load())
	if v, ok := firstErr.Load().(string); ok {
		s.firstErr = v
	}
	return s
}

// closedLoop keeps spec.concurrency requests in flight until every event is
// sent or ctx ends, and returns how many were sent. Latency counts from the
// actual send time.
func closedLoop(ctx context.Context, spec loadSpec, t0 time.Time, sendAt []time.Duration, post func(int, time.Duration, time.Time)) int {
	var next atomic.Int64
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range spec.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(sendAt) {
					return
				}
				sendAt[i] = time.Since(t0)
				post(i, sendAt[i], t0)
				sent.Add(1)
			}
		}()
	}
	wg.Wait()

	// Events are taken in order, so the sent ones are exactly 0..sent-1.
	return int(sent.Load())
}

// openLoop sends event i at t0 + i/rate, whatever the state of earlier
// requests, up to spec.maxInflight in flight. Latency counts from the
// scheduled time, so a target that falls behind is charged for the wait of
// every event queued behind it (no coordinated omission).
func openLoop(ctx context.Context, spec loadSpec, t0 time.Time, sendAt []time.Duration, post func(int, time.Duration, time.Time)) (int, time.Duration) {
	interval := time.Duration(float64(time.Second) / spec.rate)
	slots := make(chan struct{}, spec.maxInflight)
	var wg sync.WaitGroup
	var lagMax time.Duration
	sent := 0

	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range sendAt {
		scheduled := time.Duration(i) * interval
		if wait := scheduled - time.Since(t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}

		lagMax = max(lagMax, time.Since(t0)-scheduled)
		sendAt[i] = scheduled
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(i, scheduled, t0)
			<-slots
		}()
	}
	wg.Wait()
	return sent, lagMax
}
