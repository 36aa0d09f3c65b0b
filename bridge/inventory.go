package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// inventory tracks when the lock list was last read and serializes reads.
type inventory struct {
	mu      sync.Mutex // held during a list call
	stateMu sync.Mutex
	updated time.Time // oldest updated_at of the cached lock descriptions
	loaded  bool      // a lock list, from the API or the broker, is known
}

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

// snapshot collects the retained messages under filter. It subscribes, then
// publishes a marker below the same filter: the broker sends a
// subscription's retained messages before anything published later, so once
// the marker arrives every retained message has.
func (b *Bridge) snapshot(ctx context.Context, filter, markerPrefix string) (map[string][]byte, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	marker := markerPrefix + "/" + hex.EncodeToString(nonce[:])

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

	if err := b.sub.Subscribe(ctx, filter, 1, handle); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %s: %w", filter, err)
	}
	defer b.sub.Unsubscribe(context.WithoutCancel(ctx), filter)

	if err := b.pub.Publish(ctx, marker, []byte("sync"), false); err != nil {
		return nil, fmt.Errorf("failed to publish the snapshot marker: %w", err)
	}
	wait := time.NewTimer(b.opts.CleanupCollectFor + 5*time.Second)
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		return nil, errors.New("timed out waiting for the retained messages")
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	mu.Lock()
	defer mu.Unlock()
	return got, nil
}

// loadInventory rebuilds the shadow of every lock from the broker's retained
// topics, and reads the lock list from the API only when the cached list is
// missing or older than RefreshInterval: a restart costs no API call.
func (b *Bridge) loadInventory(ctx context.Context) error {
	retained, err := b.snapshot(ctx, b.opts.BaseTopic+"/#", b.topics.base+"/"+bridgeLevel+"/sync")
	if err != nil {
		return fmt.Errorf("failed to read retained state from the broker: %w", err)
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
	if loaded && b.opts.Now().Sub(updated) < b.opts.RefreshInterval {
		b.log.Info().Time("updated_at", updated).Int("locks", len(b.allLocks())).Msg("lock list taken from the broker's retained info topics")
		return nil
	}
	if err := b.refresh(ctx, "start-up"); err != nil {
		// The bridge still runs: webhooks work without the list.
		b.log.Error().Err(err).Msg("failed to read the lock list; running with what the broker retained")
	}
	return nil
}

// restore fills lock shadows from retained messages.
func (b *Bridge) restore(retained map[string][]byte) {
	prefix := b.topics.base + "/"
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
			infos++
			if oldest.IsZero() || updated.Before(oldest) {
				oldest = updated
			}
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
		l.info, l.infoUpdated = info, updated
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
// recorded on the retained budget topic.
func (b *Bridge) handleBudget(m Message) {
	if len(m.Payload) == 0 {
		return
	}
	var msg budgetMessage
	if err := json.Unmarshal(m.Payload, &msg); err != nil {
		b.log.Warn().Err(err).Str("topic", m.Topic).Msg("ignoring invalid budget message")
		return
	}
	b.budget.Restore(msg.Calls)
	b.metrics.budgetRemaining.Set(float64(b.budget.Remaining(b.opts.Now())))
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
	ok, freeAt := b.budget.Allow(now)
	b.metrics.budgetRemaining.Set(float64(b.budget.Remaining(now)))
	if !ok {
		return &budgetError{limit: b.opts.ListBudget, window: b.opts.BudgetWindow, freeAt: freeAt}
	}
	b.publishBudget(ctx)

	b.log.Info().Str("reason", reason).Int("budget_remaining", b.budget.Remaining(now)).Msg("reading the lock list")
	locks, err := b.opts.API.ListLocks(ctx)
	if err != nil {
		return fmt.Errorf("failed to list locks: %w", err)
	}
	b.applyInventory(locks, b.opts.Now())
	return nil
}

func (b *Bridge) publishBudget(ctx context.Context) {
	msg := budgetMessage{
		Limit:         b.opts.ListBudget,
		WindowSeconds: int(b.opts.BudgetWindow / time.Second),
		Calls:         b.budget.Calls(),
	}
	payload, _ := json.Marshal(msg)
	if err := b.pub.Publish(ctx, b.topics.bridgeBudget(), payload, true); err != nil {
		b.log.Warn().Err(err).Msg("failed to publish the call budget; another instance may not count this call")
	}
}

// refreshIfStale reads the lock list again once the cached one is older than
// RefreshInterval.
func (b *Bridge) refreshIfStale(ctx context.Context) {
	if b.opts.API == nil {
		return
	}
	updated, loaded := b.inventory.lastUpdate()
	if loaded && b.opts.Now().Sub(updated) < b.opts.RefreshInterval {
		return
	}
	if ok, _ := b.budgetAvailable(); !ok {
		return
	}
	if err := b.refresh(ctx, "list older than LOQED_REFRESH_INTERVAL"); err != nil {
		b.log.Warn().Err(err).Msg("failed to refresh the lock list")
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
		b.refuse(lockID, command, "", codeUnknownLock, fmt.Errorf("unknown lock %q", lockID))
		return
	case b.opts.API == nil:
		b.refuse(lockID, command, "", codeReceiveOnly, errors.New("no LOQED_API_TOKEN configured: the bridge only receives webhooks"))
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
		renamed := l.applyRecord(&rec, at)
		if b.opts.Discovery && (created || renamed) {
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
	l.info, l.infoUpdated = &info, at

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
		// A record without "online" says nothing; a listed lock is taken
		// as reachable until a webhook says otherwise.
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

// removeLock forgets a lock that left the account and clears its retained
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
