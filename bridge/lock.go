package bridge

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/rs/zerolog"
)

// State payloads of <base>/<id>/state beyond the three bolt states.
const (
	stateLocking   = "locking"
	stateUnlocking = "unlocking"
	stateOpening   = "opening"
	stateJammed    = "jammed"
	stateUnknown   = "unknown"
)

// Availability payloads.
const (
	online  = "online"
	offline = "offline"
)

// transitional returns the state a lock shows while it moves towards target.
func transitional(target loqed.BoltState) string {
	switch target {
	case loqed.StateNightLock:
		return stateLocking
	case loqed.StateDayLock:
		return stateUnlocking
	case loqed.StateOpen:
		return stateOpening
	}
	return ""
}

// isFinal reports whether a state payload is a position the lock rests in.
func isFinal(state string) bool {
	switch state {
	case string(loqed.StateNightLock), string(loqed.StateDayLock), string(loqed.StateOpen), stateJammed, stateUnknown:
		return true
	}
	return false
}

// lockState is the shadow of one lock: what the bridge last published for it
// and what it still has to publish. Its mutex orders everything published
// for the lock, so the broker receives the lock's messages in the order the
// bridge accepted them.
type lockState struct {
	id  string
	b   *Bridge
	log zerolog.Logger

	mu            sync.Mutex
	info          *loqed.Lock // nil until the lock list or a retained info names the lock
	infoUpdated   time.Time
	infoJSON      string // info payload, built when first needed after info changes
	state         string // current state payload, "" until known
	confirmed     string // last final state, "" until known
	availability  string
	battery       *int
	batteryType   string
	wifiStrength  *int
	bleStrength   *int
	lastChangedBy string
	settings      map[string]bool

	sent       map[string]string      // topic -> retained payload last queued
	recent     []fingerprint          // events accepted within the dedup window, oldest first
	latest     map[uint64]fingerprint // the newest of recent by sum
	settles    uint64                 // times the confirmed state changed
	transition *time.Timer            // falls back to the confirmed state
	waiters    []chan string          // commands waiting for a final state

	// dirty is set by publish callbacks when a message did not reach the
	// broker, so the next resync republishes the lock.
	dirty atomic.Bool

	commands *commandQueue
}

func (b *Bridge) newLockState(id string) *lockState {
	l := &lockState{
		id:       id,
		b:        b,
		log:      b.log.With().Str("lock_id", id).Logger(),
		settings: make(map[string]bool),
		sent:     make(map[string]string),
	}
	l.commands = newCommandQueue(l)
	return l
}

// fingerprint identifies an event for deduplication.
type fingerprint struct {
	sum     uint64
	at      time.Time
	settles uint64 // lockState.settles when the event was accepted
}

// eventMessage is the JSON payload of <base>/<id>/event.
type eventMessage struct {
	EventType string `json:"event_type"`

	// State is the reached state, or the target of a GO_TO_STATE event.
	State string `json:"state"`

	// Action is the state word the event stands for, with the moving states
	// for GO_TO_STATE events and jammed for a motor stall: the event type of
	// the Home Assistant event entity.
	Action string `json:"action"`

	LockID          string `json:"lock_id"`
	KeyLocalID      *int   `json:"key_local_id"`
	KeyNameUser     string `json:"key_name_user,omitempty"`
	KeyNameAdmin    string `json:"key_name_admin,omitempty"`
	KeyAccountEmail string `json:"key_account_email,omitempty"`
	KeyAccountName  string `json:"key_account_name,omitempty"`
	ChangedBy       string `json:"changed_by"`
	ReceivedAt      string `json:"received_at"`
}

// applyEvent updates the shadow from a webhook event and publishes what
// changed. It reports false when the event repeats one accepted within the
// dedup window, which LOQED does: each event may arrive twice a few seconds
// apart.
func (l *lockState) applyEvent(ev *loqed.Event, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.isDuplicate(ev, at) {
		return false
	}

	if ev.Kind != loqed.KindReadings {
		l.applyMovement(ev, at)
	}
	l.applyReadings(ev)
	l.publishChanged()

	if ev.Type != "" {
		l.emitEvent(ev, at)
	}
	return true
}

// applyMovement maps an event with an event_type to the lock state. The
// event type decides, as LOQED's requested_state can differ from the state
// reached; go_to_state and requested_state were folded in by the decoder.
func (l *lockState) applyMovement(ev *loqed.Event, at time.Time) {
	// Any movement proves the lock reachable.
	l.availability = online
	if by := changedBy(ev); by != "" || ev.Kind == loqed.KindStateChanged {
		if by == "" {
			by = "manual"
		}
		l.lastChangedBy = by
	}

	switch ev.Kind {
	case loqed.KindStateChanged:
		l.settle(string(ev.State))
	case loqed.KindMotorStall:
		l.settle(stateJammed)
	case loqed.KindGoToState:
		// A lock asked for the state it is in does not move and sends no
		// final event, so it keeps showing that state.
		if ev.State.Valid() && string(ev.State) != l.confirmed {
			l.startTransition(transitional(ev.State), at)
		}
	}
}

// settle records a final state and wakes the commands waiting for one.
func (l *lockState) settle(state string) {
	if l.confirmed != state {
		l.settles++
	}
	l.state = state
	l.confirmed = state
	if l.transition != nil {
		l.transition.Stop()
		l.transition = nil
	}
	for _, w := range l.waiters {
		select {
		case w <- state:
		default:
		}
	}
}

// startTransition shows a moving state until a final event arrives or the
// confirm timeout passes, after which the last confirmed state returns.
func (l *lockState) startTransition(state string, _ time.Time) {
	l.state = state
	if l.transition != nil {
		l.transition.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(l.b.opts.ConfirmTimeout, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.transition != t {
			return
		}
		l.transition = nil
		l.revert()
	})
	l.transition = t
}

// revert returns a moving lock to its last confirmed state. The caller holds
// l.mu.
func (l *lockState) revert() {
	if isFinal(l.state) {
		return
	}
	fallback := l.confirmed
	if fallback == "" {
		fallback = stateUnknown
	}
	l.log.Info().Str("state", l.state).Str("fallback", fallback).Msg("no final event arrived in time; returning to the last confirmed state")
	l.state = fallback
	l.publishChanged()
}

func (l *lockState) applyReadings(ev *loqed.Event) {
	if ev.BatteryPercentage != nil {
		l.battery = ev.BatteryPercentage
	}
	if ev.BatteryType != "" {
		l.batteryType = ev.BatteryType
	}
	if ev.WiFiStrength != nil {
		l.wifiStrength = ev.WiFiStrength
	}
	if ev.BLEStrength != nil {
		l.bleStrength = ev.BLEStrength
	}
	if ev.Online != nil {
		if *ev.Online {
			l.availability = online
		} else {
			l.availability = offline
		}
	}
}

// changedBy names who moved the lock: the key name, else the account, else
// the key number. It returns "" when the event names no key or account.
func changedBy(ev *loqed.Event) string {
	switch {
	case ev.KeyNameUser != "":
		return ev.KeyNameUser
	case ev.KeyAccountName != "":
		return ev.KeyAccountName
	case ev.KeyNameAdmin != "":
		return ev.KeyNameAdmin
	case ev.KeyLocalID != nil:
		return "KeyID " + strconv.Itoa(*ev.KeyLocalID)
	}
	return ""
}

// isDuplicate reports whether the event is a second delivery of one accepted
// within the dedup window, and remembers it otherwise. An identical event
// counts as a copy only while it would not move the lock: a lock locked,
// unlocked and locked again within the window sends the same events twice,
// and the second time they are real.
func (l *lockState) isDuplicate(ev *loqed.Event, at time.Time) bool {
	sum := eventSum(ev)
	l.forgetBefore(at.Add(-l.b.opts.DedupWindow))

	if f, ok := l.latest[sum]; ok && l.repeats(ev, f) {
		return true
	}
	l.remember(sum, at)
	return false
}

// remember records an accepted event for deduplication. The caller holds
// l.mu.
func (l *lockState) remember(sum uint64, at time.Time) {
	f := fingerprint{sum: sum, at: at, settles: l.settles}
	l.recent = append(l.recent, f)
	if l.latest == nil {
		l.latest = make(map[uint64]fingerprint)
	}
	l.latest[sum] = f
}

// forgetBefore drops the fingerprints of events accepted before t. recent is
// in acceptance order, so the expired ones are at its front.
func (l *lockState) forgetBefore(t time.Time) {
	n := 0
	for n < len(l.recent) && !l.recent[n].at.After(t) {
		f := l.recent[n]
		if l.latest[f.sum] == f {
			delete(l.latest, f.sum)
		}
		n++
	}
	if n > 0 {
		l.recent = append(l.recent[:0], l.recent[n:]...)
	}
}

// repeats reports whether ev, identical to the accepted event f, brings
// nothing new. A final state the lock is in already is a copy. A GO_TO_STATE
// event is a copy while the lock has not settled since f, or once it has
// reached that target. The caller holds l.mu.
func (l *lockState) repeats(ev *loqed.Event, f fingerprint) bool {
	switch ev.Kind {
	case loqed.KindStateChanged:
		return l.confirmed == string(ev.State)
	case loqed.KindMotorStall:
		return l.confirmed == stateJammed
	case loqed.KindGoToState:
		return f.settles == l.settles || l.confirmed == string(ev.State)
	}
	return true
}

// publishChanged queues every retained topic whose payload differs from the
// one last queued. The caller holds l.mu.
func (l *lockState) publishChanged() {
	// Until Start publishes everything, only record the values, so that
	// restore can tell they are newer than what the broker retained.
	holding := l.b.holding.Load()
	for _, m := range l.retained() {
		if l.sent[m.topic] == m.payload {
			continue
		}
		l.sent[m.topic] = m.payload
		if !holding {
			l.b.publishRetained(l, m.topic, m.payload)
		}
	}
}

// publishAll queues every retained topic of the lock. The caller holds l.mu.
func (l *lockState) publishAll() {
	for _, m := range l.retained() {
		l.sent[m.topic] = m.payload
		l.b.publishRetained(l, m.topic, m.payload)
	}
}

type retainedMessage struct {
	topic   string
	payload string
}

// retained lists the lock's retained topics with their current payloads,
// leaving out values that are not known.
func (l *lockState) retained() []retainedMessage {
	t := l.b.topics
	out := make([]retainedMessage, 0, 12)
	add := func(suffix, payload string) {
		if payload != "" {
			out = append(out, retainedMessage{topic: t.lock(l.id, suffix), payload: payload})
		}
	}

	if l.info != nil {
		if l.infoJSON == "" {
			l.infoJSON = string(l.infoPayload())
		}
		add(suffixInfo, l.infoJSON)
	}
	add(suffixAvailability, l.availability)
	add(suffixState, l.state)
	if l.battery != nil {
		add(suffixBattery, strconv.Itoa(*l.battery))
	}
	add(suffixBatteryType, l.batteryType)
	if l.wifiStrength != nil {
		add(suffixWiFiStrength, strconv.Itoa(*l.wifiStrength))
	}
	if l.bleStrength != nil {
		add(suffixBLEStrength, strconv.Itoa(*l.bleStrength))
	}
	add(suffixLastChangedBy, l.lastChangedBy)
	for _, name := range l.b.opts.Settings {
		if v, ok := l.settings[name]; ok {
			out = append(out, retainedMessage{topic: t.setting(l.id, name), payload: onOff(v)})
		}
	}
	return out
}

func onOff(v bool) string {
	if v {
		return "ON"
	}
	return "OFF"
}

// emitEvent queues the non-retained event message. The caller holds l.mu.
func (l *lockState) emitEvent(ev *loqed.Event, at time.Time) {
	msg := eventMessage{
		EventType:       ev.Type,
		State:           reachedOrTarget(ev),
		Action:          eventAction(ev),
		LockID:          l.id,
		KeyLocalID:      ev.KeyLocalID,
		KeyNameUser:     ev.KeyNameUser,
		KeyNameAdmin:    ev.KeyNameAdmin,
		KeyAccountEmail: ev.KeyAccountEmail,
		KeyAccountName:  ev.KeyAccountName,
		ChangedBy:       l.lastChangedBy,
		ReceivedAt:      at.UTC().Format(time.RFC3339),
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		l.log.Error().Err(err).Msg("failed to encode event")
		return
	}
	l.b.queueEvent(l, l.b.topics.lock(l.id, suffixEvent), payload)
}

// reachedOrTarget is the state of an event message: the reached state, or
// the target of a GO_TO_STATE event.
func reachedOrTarget(ev *loqed.Event) string {
	if ev.State == "" {
		return stateUnknown
	}
	return string(ev.State)
}

// eventAction is the action of an event message: the reached state of a
// final event, the moving state of a GO_TO_STATE event, jammed for a motor
// stall.
func eventAction(ev *loqed.Event) string {
	switch ev.Kind {
	case loqed.KindMotorStall:
		return stateJammed
	case loqed.KindGoToState:
		if s := transitional(ev.State); s != "" {
			return s
		}
	}
	return reachedOrTarget(ev)
}
