package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/rs/zerolog"
)

// inventory tracks when the lock list was last read and serializes reads.
type inventory struct {
	mu      sync.Mutex // held during a list call
	stateMu sync.Mutex
	updated time.Time // oldest updated_at of the cached lock descriptions
	loaded  bool      // a lock list, from the API or the broker, is known

	// failures counts the automatic reads that failed in a row, and
	// retryAt is the earliest time of the next one.
	failures int
	retryAt  time.Time

	// limitedUntil is the end of the Retry-After of a 429 response to a list
	// call. No list call is made before it.
	limitedUntil time.Time
}

// Bounds of the wait before an automatic list read that follows a failed
// one. The wait doubles with every failure in a row, so a rejected token
// costs a few calls a day instead of one every maintenance tick.
const (
	minRefreshRetry = time.Minute
	maxRefreshRetry = time.Hour
)

func (inv *inventory) lastUpdate() (time.Time, bool) {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	return inv.updated, inv.loaded
}

func (inv *inventory) setUpdate(t time.Time) {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	inv.updated = t
	inv.loaded = true
}

// readSucceeded clears the wait that failed automatic reads set.
func (inv *inventory) readSucceeded() {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	inv.failures = 0
	inv.retryAt = time.Time{}
}

// readFailed records a failed automatic read and returns the earliest time
// of the next one: minRefreshRetry doubled per failure in a row, at most
// maxRefreshRetry or the refresh interval, and never before a Retry-After.
func (inv *inventory) readFailed(now time.Time, interval time.Duration) time.Time {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()

	inv.failures++
	wait := minRefreshRetry
	for i := 1; i < inv.failures && wait < maxRefreshRetry; i++ {
		wait *= 2
	}
	wait = min(wait, maxRefreshRetry, max(interval, minRefreshRetry))
	inv.retryAt = now.Add(wait)
	if inv.limitedUntil.After(inv.retryAt) {
		inv.retryAt = inv.limitedUntil
	}
	return inv.retryAt
}

// mayRetry reports whether an automatic read may be made at now.
func (inv *inventory) mayRetry(now time.Time) bool {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	return !now.Before(inv.retryAt)
}

// rateLimited returns the end of the current Retry-After, or the zero time.
func (inv *inventory) rateLimited(now time.Time) time.Time {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	if now.Before(inv.limitedUntil) {
		return inv.limitedUntil
	}
	return time.Time{}
}

func (inv *inventory) setRateLimited(until time.Time) {
	inv.stateMu.Lock()
	defer inv.stateMu.Unlock()
	if until.After(inv.limitedUntil) {
		inv.limitedUntil = until
	}
}

// infoMessage is the JSON payload of the retained <base>/<id>/info topic: the
// lock list record without any key or secret, and when it was read.
type infoMessage struct {
	ID                  string          `json:"id"`
	Name                string          `json:"name"`
	ModelName           string          `json:"model_name,omitempty"`
	BoltState           string          `json:"bolt_state,omitempty"`
	BatteryPercentage   *int            `json:"battery_percentage,omitempty"`
	BatteryType         string          `json:"battery_type,omitempty"`
	LockDirection       string          `json:"lock_direction,omitempty"`
	MortiseLockType     string          `json:"mortise_lock_type,omitempty"`
	SupportedLockStates []string        `json:"supported_lock_states"`
	Online              *bool           `json:"online,omitempty"`
	Settings            map[string]bool `json:"settings"`
	UpdatedAt           time.Time       `json:"updated_at"`
}

func (l *lockState) infoPayload() []byte {
	i := l.info
	msg := infoMessage{
		ID:                  l.id,
		Name:                i.Name,
		ModelName:           i.ModelName,
		BoltState:           string(i.BoltState),
		BatteryPercentage:   i.BatteryPercentage,
		BatteryType:         i.BatteryType,
		LockDirection:       i.LockDirection,
		MortiseLockType:     i.MortiseLockType,
		SupportedLockStates: make([]string, 0, len(i.SupportedLockStates)),
		Online:              i.Online,
		Settings:            i.Settings,
		UpdatedAt:           l.infoUpdated.UTC(),
	}
	for _, s := range i.SupportedLockStates {
		msg.SupportedLockStates = append(msg.SupportedLockStates, string(s))
	}
	if msg.Settings == nil {
		msg.Settings = map[string]bool{}
	}
	payload, _ := json.Marshal(msg)
	return payload
}

// lockFromInfo rebuilds a lock description from a retained info payload.
func lockFromInfo(payload []byte) (*loqed.Lock, time.Time, error) {
	var msg infoMessage
	if err := json.Unmarshal(payload, &msg); err != nil {
		return nil, time.Time{}, fmt.Errorf("invalid info JSON: %w", err)
	}
	if err := loqed.CheckLockID(msg.ID); err != nil {
		return nil, time.Time{}, fmt.Errorf("invalid info: %w", err)
	}
	l := &loqed.Lock{
		ID:                msg.ID,
		Name:              msg.Name,
		ModelName:         msg.ModelName,
		BoltState:         loqed.BoltState(msg.BoltState),
		BatteryPercentage: msg.BatteryPercentage,
		BatteryType:       msg.BatteryType,
		LockDirection:     msg.LockDirection,
		MortiseLockType:   msg.MortiseLockType,
		Online:            msg.Online,
		Settings:          msg.Settings,
	}
	for _, s := range msg.SupportedLockStates {
		l.SupportedLockStates = append(l.SupportedLockStates, loqed.BoltState(s))
	}
	return l, msg.UpdatedAt, nil
}

// budgetMessage is the JSON payload of the retained <base>/bridge/budget
// topic: the list calls of every instance within the window, so that the
// budget survives restarts and is shared by instances on one broker.
type budgetMessage struct {
	Limit         int         `json:"limit"`
	WindowSeconds int         `json:"window_seconds"`
	Calls         []time.Time `json:"calls"`
}

// snapshotLimit is the maximum number of retained messages one snapshot
// subscription requests. Mosquitto, as shipped, holds at most 1,000 QoS 1 messages queued
// plus 20 in flight for a client (max_queued_messages, max_inflight_messages)
// and drops the rest of a subscription's retained messages without notice.
const snapshotLimit = 900

// snapshotTimeout bounds the wait for one snapshot's retained messages. They
// come from a broker on the same network within milliseconds; a snapshot
// that overflowed the broker's queue loses its marker and times out.
const snapshotTimeout = 3 * time.Second

// errSnapshotIncomplete is returned when a snapshot's marker did not arrive.
var errSnapshotIncomplete = errors.New("timed out waiting for the retained messages: more than the broker queues for one client, or the broker is slow")

// snapshot collects the retained messages of filters. It subscribes to them
// together with a private marker topic in one SUBSCRIBE packet, then
// publishes the marker: the broker sends the retained messages of a
// subscription before anything published later, so once the marker arrives
// every retained message has.
func (b *Bridge) snapshot(ctx context.Context, filters ...string) (map[string][]byte, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	marker := b.topics.base + "/" + bridgeLevel + "/sync/" + hex.EncodeToString(nonce[:])
	group := append(append([]string(nil), filters...), marker)

	var mu sync.Mutex
	got := make(map[string][]byte)
	done := make(chan struct{})
	var once sync.Once
	handle := func(m Message) {
		if m.Topic == marker {
			once.Do(func() { close(done) })
			return
		}
		if !m.Retained {
			return
		}
		mu.Lock()
		got[m.Topic] = m.Payload
		mu.Unlock()
	}

	if err := b.sub.SubscribeGroup(ctx, group, 1, handle); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %v: %w", filters, err)
	}
	defer b.sub.Unsubscribe(context.WithoutCancel(ctx), group...)

	if err := b.pub.Publish(ctx, marker, []byte("sync"), false); err != nil {
		return nil, fmt.Errorf("failed to publish the snapshot marker: %w", err)
	}
	wait := time.NewTimer(snapshotTimeout)
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		mu.Lock()
		n := len(got)
		mu.Unlock()
		return nil, fmt.Errorf("%w (%d messages of %v arrived)", errSnapshotIncomplete, n, filters)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	mu.Lock()
	defer mu.Unlock()
	return got, nil
}

// retainedLockTopics reads the retained lock topics: first the info topics
// and the call budget, which also give the number of locks, then the other
// topics, in as few snapshots as the broker's queue allows.
func (b *Bridge) retainedLockTopics(ctx context.Context) (map[string][]byte, error) {
	perLock := b.topics.base + "/+/"
	retained, err := b.snapshot(ctx, perLock+suffixInfo, b.topics.bridgeBudget())
	if err != nil {
		return nil, err
	}
	locks := len(retained)

	suffixes := []string{suffixState, suffixAvailability, suffixBattery, suffixBatteryType,
		suffixWiFiStrength, suffixBLEStrength, suffixLastChangedBy, suffixSettings + "/+"}
	var groups [][]string
	if locks*(len(suffixes)+len(b.opts.Settings)) <= snapshotLimit {
		group := make([]string, 0, len(suffixes))
		for _, s := range suffixes {
			group = append(group, perLock+s)
		}
		groups = append(groups, group)
	} else {
		// NOTE: with more locks than snapshotLimit, a broker with the
		// default queue limits drops part of each snapshot, which then
		// times out and is skipped.
		for _, s := range suffixes {
			groups = append(groups, []string{perLock + s})
		}
	}

	for _, g := range groups {
		part, err := b.snapshot(ctx, g...)
		if err != nil {
			b.log.Warn().Err(err).Strs("filters", g).Msg("failed to read retained lock topics; they are rebuilt from webhooks and the lock list")
			continue
		}
		for topic, payload := range part {
			retained[topic] = payload
		}
	}
	return retained, nil
}

// loadInventory rebuilds the shadow of every lock from the broker's retained
// topics, and reads the lock list from the API only when the cached list is
// missing or older than RefreshInterval: a restart costs no API call.
func (b *Bridge) loadInventory(ctx context.Context) error {
	retained, err := b.retainedLockTopics(ctx)
	if err != nil {
		// Without the cache the bridge starts as on an empty broker: the
		// lock list is read within the budget and webhooks rebuild the
		// rest.
		b.log.Error().Err(err).Msg("failed to read the retained lock topics from the broker")
	}
	b.restore(retained)

	if err := b.sub.Subscribe(ctx, b.topics.bridgeBudget(), 1, b.handleBudget); err != nil {
		return fmt.Errorf("failed to subscribe to %s: %w", b.topics.bridgeBudget(), err)
	}

	if b.opts.API == nil {
		b.log.Warn().Msg("no LOQED_API_TOKEN: receive-only mode, locks are learnt from webhooks and commands are rejected")
		return nil
	}
	updated, loaded := b.inventory.lastUpdate()
	if loaded && !b.opts.RefreshAtStart && b.opts.Now().Sub(updated) < b.opts.RefreshInterval {
		b.log.Info().Time("updated_at", updated).Int("locks", len(b.allLocks())).Msg("lock list taken from the broker's retained info topics")
		return nil
	}
	if err := b.refresh(ctx, "start-up"); err != nil {
		// The bridge still runs: webhooks work without the list.
		b.logReadFailure(b.log.Error(), err, "failed to read the lock list; running with what the broker retained")
	}
	return nil
}

// logReadFailure logs a failed automatic list read with what the user can
// do about it, and postpones the next automatic read.
func (b *Bridge) logReadFailure(e *zerolog.Event, err error, msg string) {
	code, action := describeAPIError(err)
	var be *budgetError
	if errors.As(err, &be) {
		code, action = codeBudget, sentence(err)+"."
	}
	retryAt := b.inventory.readFailed(b.opts.Now(), b.opts.RefreshInterval)
	e.Err(err).Str("code", code).Str("action", action).Time("retry_at", retryAt).Msg(msg)
}

// restore fills lock shadows from retained messages.
func (b *Bridge) restore(retained map[string][]byte) {
	prefix := b.topics.base + "/"
	now := b.opts.Now()
	oldest := time.Time{}
	infos := 0

	for topic, payload := range retained {
		rest, ok := strings.CutPrefix(topic, prefix)
		if !ok || len(payload) == 0 {
			continue
		}
		id, suffix, ok := strings.Cut(rest, "/")
		if !ok || id == bridgeLevel {
			if topic == b.topics.bridgeBudget() {
				b.handleBudget(Message{Topic: topic, Payload: payload, Retained: true})
			}
			continue
		}
		if loqed.CheckLockID(id) != nil || !knownSuffix(suffix) {
			continue
		}
		l, _, err := b.lockOrCreate(id)
		if err != nil {
			continue
		}
		if updated, ok := l.restoreTopic(suffix, payload); ok {
			// A description from a clock ahead of this one counts as read
			// now: taken as it is, it would never become stale.
			if updated.After(now) {
				updated = now
			}
			if infos == 0 || updated.Before(oldest) {
				oldest = updated
			}
			infos++
		}
	}
	if infos > 0 {
		b.inventory.setUpdate(oldest)
	}
}

func knownSuffix(suffix string) bool {
	switch suffix {
	case suffixInfo, suffixState, suffixAvailability, suffixBattery, suffixBatteryType,
		suffixWiFiStrength, suffixBLEStrength, suffixLastChangedBy:
		return true
	}
	name, ok := strings.CutPrefix(suffix, suffixSettings+"/")
	return ok && name != "" && !strings.Contains(name, "/")
}

// restoreTopic takes one retained value into the shadow. Values that are not
// valid are ignored: the next webhook or list call replaces them. For an
// info topic it returns the time the description was read.
func (l *lockState) restoreTopic(suffix string, payload []byte) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	// A webhook taken before the snapshot is newer than anything retained.
	if _, seen := l.sent[l.b.topics.lock(l.id, suffix)]; seen {
		return time.Time{}, false
	}

	value := string(payload)
	switch suffix {
	case suffixInfo:
		info, updated, err := lockFromInfo(payload)
		if err != nil || info.ID != l.id {
			l.log.Warn().Err(err).Msg("ignoring invalid retained lock info")
			return time.Time{}, false
		}
		l.info, l.infoUpdated, l.infoJSON = info, updated, ""
		for name, v := range info.Settings {
			if _, ok := l.settings[name]; !ok {
				l.settings[name] = v
			}
		}
		l.sent[l.b.topics.lock(l.id, suffix)] = value
		return updated, true
	case suffixState:
		switch {
		case isFinal(value):
			l.state, l.confirmed = value, value
		case value == stateLocking || value == stateUnlocking || value == stateOpening:
			l.startTransition(value, time.Time{})
		default:
			return time.Time{}, false
		}
	case suffixAvailability:
		if value != online && value != offline {
			return time.Time{}, false
		}
		l.availability = value
	case suffixBattery, suffixWiFiStrength, suffixBLEStrength:
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 100 {
			return time.Time{}, false
		}
		switch suffix {
		case suffixBattery:
			l.battery = &n
		case suffixWiFiStrength:
			l.wifiStrength = &n
		default:
			l.bleStrength = &n
		}
	case suffixBatteryType:
		l.batteryType = loqed.NormalizeBatteryType(value)
	case suffixLastChangedBy:
		if len(value) > 256 {
			return time.Time{}, false
		}
		l.lastChangedBy = value
	default:
		name := strings.TrimPrefix(suffix, suffixSettings+"/")
		switch value {
		case "ON":
			l.settings[name] = true
		case "OFF":
			l.settings[name] = false
		default:
			return time.Time{}, false
		}
	}
	l.sent[l.b.topics.lock(l.id, suffix)] = value
	return time.Time{}, false
}

// handleBudget merges the list calls another instance, or an earlier run,
// recorded on the retained budget topic. A message that lacks a call this
// instance knows means two instances published at about the same time and
// the broker kept only one message, so the merged list is published again.
func (b *Bridge) handleBudget(m Message) {
	lacking, err := b.mergeBudget(m.Payload)
	if err != nil {
		b.log.Warn().Err(err).Str("topic", m.Topic).Msg("ignoring invalid budget message")
		return
	}
	if lacking {
		b.pub.PublishAsync(b.topics.bridgeBudget(), b.budgetPayload(), true, nil)
	}
}

// mergeBudget takes the calls of a budget message into the budget and
// reports whether the message lacks a call inside the window that the budget
// holds.
func (b *Bridge) mergeBudget(payload []byte) (lacking bool, err error) {
	if len(payload) == 0 {
		return false, nil
	}
	var msg budgetMessage
	if err := json.Unmarshal(payload, &msg); err != nil {
		return false, fmt.Errorf("invalid budget JSON: %w", err)
	}
	b.budget.Restore(msg.Calls)

	now := b.opts.Now()
	b.metrics.budgetRemaining.Set(float64(b.budget.Remaining(now)))
	for _, c := range b.budget.Calls() {
		if c.Add(b.opts.BudgetWindow).After(now) && !slices.ContainsFunc(msg.Calls, c.Equal) {
			return true, nil
		}
	}
	return false, nil
}

// budgetError is returned when the list call budget is used up.
type budgetError struct {
	limit  int
	window time.Duration
	freeAt time.Time
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("the lock list may be read %d times in %s and that budget is used up: the next read is possible at %s",
		e.limit, e.window, e.freeAt.UTC().Format(time.RFC3339))
}

// refresh reads the lock list within the call budget and applies it.
func (b *Bridge) refresh(ctx context.Context, reason string) error {
	b.inventory.mu.Lock()
	defer b.inventory.mu.Unlock()

	now := b.opts.Now()
	if until := b.inventory.rateLimited(now); !until.IsZero() {
		return &loqed.APIError{Endpoint: loqed.EndpointListLocks, Err: loqed.ErrRateLimited, RetryAfter: until.Sub(now),
			Message: "not calling again before the Retry-After of the last list call passes"}
	}
	ok, freeAt := b.budget.Allow(now)
	b.metrics.budgetRemaining.Set(float64(b.budget.Remaining(now)))
	if !ok {
		return &budgetError{limit: b.opts.ListBudget, window: b.opts.BudgetWindow, freeAt: freeAt}
	}
	// The call is counted on the broker before it is made, so that a crash
	// during the call cannot lose it.
	b.publishBudget(ctx)

	b.log.Info().Str("reason", reason).Int("budget_remaining", b.budget.Remaining(now)).Msg("reading the lock list")
	locks, err := b.opts.API.ListLocks(ctx)
	if err != nil {
		var apiErr *loqed.APIError
		if errors.As(err, &apiErr) && errors.Is(err, loqed.ErrRateLimited) {
			wait := apiErr.RetryAfter
			if wait <= 0 {
				wait = minRefreshRetry
			}
			b.inventory.setRateLimited(b.opts.Now().Add(wait))
		}
		return fmt.Errorf("failed to list locks: %w", err)
	}
	b.applyInventory(locks, b.opts.Now())
	b.inventory.readSucceeded()
	return nil
}

// publishBudget publishes the budget and waits for the broker to store it.
func (b *Bridge) publishBudget(ctx context.Context) {
	if err := b.pub.Publish(ctx, b.topics.bridgeBudget(), b.budgetPayload(), true); err != nil {
		b.log.Warn().Err(err).Msg("failed to publish the call budget; another instance may not count this call")
	}
}

func (b *Bridge) budgetPayload() []byte {
	msg := budgetMessage{
		Limit:         b.opts.ListBudget,
		WindowSeconds: int(b.opts.BudgetWindow / time.Second),
		Calls:         b.budget.Calls(),
	}
	if msg.Calls == nil {
		msg.Calls = []time.Time{}
	}
	payload, _ := json.Marshal(msg)
	return payload
}

// refreshIfStale reads the lock list again once the cached one is older than
// RefreshInterval.
func (b *Bridge) refreshIfStale(ctx context.Context) {
	if b.opts.API == nil {
		return
	}
	now := b.opts.Now()
	// Calls leave the budget window as time passes, and other instances
	// add theirs, so the gauge is brought up to date on every tick.
	b.metrics.budgetRemaining.Set(float64(b.budget.Remaining(now)))

	updated, loaded := b.inventory.lastUpdate()
	if loaded && now.Sub(updated) < b.opts.RefreshInterval {
		return
	}
	if !b.inventory.mayRetry(now) {
		return
	}
	if ok, _ := b.budgetAvailable(); !ok {
		return
	}
	if err := b.refresh(ctx, "list older than LOQED_REFRESH_INTERVAL"); err != nil {
		b.logReadFailure(b.log.Warn(), err, "failed to refresh the lock list")
	}
}

func (b *Bridge) budgetAvailable() (bool, int) {
	n := b.budget.Remaining(b.opts.Now())
	return n > 0, n
}

// refreshInBackground re-reads the lock list when the budget allows.
func (b *Bridge) refreshInBackground(reason string) {
	if b.opts.API == nil {
		return
	}
	if ok, _ := b.budgetAvailable(); !ok {
		b.log.Debug().Str("reason", reason).Msg("not re-reading the lock list: call budget used up")
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.refresh(b.ctx, reason); err != nil {
			b.log.Warn().Err(err).Str("reason", reason).Msg("failed to refresh the lock list")
		}
	}()
}

// handleRefresh runs a refresh command of <base>/<id>/refresh.
func (b *Bridge) handleRefresh(lockID string) {
	const command = "refresh"
	switch {
	case b.lock(lockID) == nil:
		b.reject(lockID, command, "", codeUnknownLock, fmt.Errorf("unknown lock %q", lockID))
		return
	case b.opts.API == nil:
		b.reject(lockID, command, "", codeReceiveOnly, errors.New("no LOQED_API_TOKEN configured: the bridge only receives webhooks"))
		return
	}

	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.refresh(b.ctx, "refresh command")
		var be *budgetError
		switch {
		case err == nil:
			b.publishResult(lockID, commandResult{Command: command, OK: true, Status: statusConfirmed})
		case errors.As(err, &be):
			b.log.Warn().Str("lock_id", lockID).Time("free_at", be.freeAt).Msg("refresh rejected: call budget used up")
			b.publishResult(lockID, commandResult{Command: command, Status: statusFailed, Error: sentence(err) + ".", Code: codeBudget})
		default:
			code, text := describeAPIError(err)
			b.log.Error().Err(err).Str("lock_id", lockID).Msg("refresh failed")
			b.publishResult(lockID, commandResult{Command: command, Status: statusFailed, Error: text, Code: code})
		}
	}()
}

// applyInventory takes a fresh lock list: it updates every listed lock and
// removes the locks that left the account.
func (b *Bridge) applyInventory(locks []loqed.Lock, at time.Time) {
	listed := make(map[string]bool, len(locks))
	for i := range locks {
		rec := locks[i]
		if err := loqed.CheckLockID(rec.ID); err != nil || rec.ID == bridgeLevel {
			b.log.Warn().Err(err).Msg("ignoring a lock with an id that cannot be a topic level")
			continue
		}
		listed[rec.ID] = true

		l, created, err := b.lockOrCreate(rec.ID)
		if err != nil {
			b.log.Error().Err(err).Str("lock_id", rec.ID).Msg("ignoring listed lock")
			continue
		}
		if b.opts.Discovery && created {
			b.publishRecordDiscovery(&rec)
		}
		renamed := l.applyRecord(&rec, at)
		if b.opts.Discovery && renamed && !created {
			b.publishLockDiscovery(l)
		}
	}

	for _, l := range b.allLocks() {
		if !listed[l.id] && l.listed() {
			b.removeLock(l)
		}
	}
	b.inventory.setUpdate(at)
	b.log.Info().Int("locks", len(listed)).Msg("lock list applied")
}

// listed reports whether the lock came from a lock list, as opposed to a
// webhook only.
func (l *lockState) listed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info != nil
}

// applyRecord takes a lock list record into the shadow and publishes what
// changed. It reports whether the name or the supported states changed, which
// changes the discovery config.
func (l *lockState) applyRecord(rec *loqed.Lock, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()

	changed := l.info == nil || l.info.Name != rec.Name || fmt.Sprint(l.info.SupportedLockStates) != fmt.Sprint(rec.SupportedLockStates)
	info := *rec
	info.Secrets = loqed.LockSecrets{}
	l.info, l.infoUpdated, l.infoJSON = &info, at, ""

	// The list is a fresh read, but a webhook under way is newer still, so a
	// moving lock keeps its moving state.
	if isFinal(l.state) || l.state == "" {
		switch rec.BoltState {
		case loqed.StateOpen, loqed.StateDayLock, loqed.StateNightLock, loqed.StateUnknown:
			l.state, l.confirmed = string(rec.BoltState), string(rec.BoltState)
		}
	}
	if rec.BatteryPercentage != nil {
		l.battery = rec.BatteryPercentage
	}
	if rec.BatteryType != "" {
		l.batteryType = loqed.NormalizeBatteryType(rec.BatteryType)
	}
	switch {
	case rec.Online != nil && *rec.Online:
		l.availability = online
	case rec.Online != nil:
		l.availability = offline
	case l.availability == "":
		// A record without "online" leaves reachability open, so a
		// listed lock is taken as reachable until a webhook reports
		// otherwise.
		l.availability = online
	}
	for _, name := range l.b.opts.Settings {
		if v, ok := rec.Settings[name]; ok {
			l.settings[name] = v
		}
	}
	l.publishChanged()
	return changed
}

// removeLock drops a lock that left the account and clears its retained
// topics and discovery configs.
func (b *Bridge) removeLock(l *lockState) {
	b.mu.Lock()
	delete(b.locks, l.id)
	for alias, id := range b.aliases {
		if id == l.id {
			delete(b.aliases, alias)
		}
	}
	b.metrics.locks.Set(float64(len(b.locks)))
	b.mu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.Info().Msg("lock left the account; clearing its topics")
	if b.opts.Discovery {
		b.removeLockDiscovery(l)
	}
	for topic := range l.sent {
		b.pub.PublishAsync(topic, nil, true, nil)
	}
	l.sent = make(map[string]string)
}
