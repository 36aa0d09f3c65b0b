// Package bridge is the core of loqed2mqtt: it keeps a shadow of every lock,
// turns LOQED webhooks into retained MQTT topics, runs MQTT commands against
// the Integrations API one at a time per lock, and publishes Home Assistant
// discovery.
//
// The broker's retained topics are the durable state. Everything the bridge
// holds in memory can be rebuilt from them and from the lock list, which is
// what lets an instance restart without calling the API and lets several
// instances share one broker.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/discovery"
	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Publisher sends MQTT messages with QoS 1.
type Publisher interface {
	// PublishAsync queues a message and calls done once with the outcome.
	// Messages queued from one goroutine reach the broker in call order.
	PublishAsync(topic string, payload []byte, retained bool, done func(error))

	// Publish sends a message and waits for the broker's acknowledgement.
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error

	// IsConnected reports whether the broker connection is open.
	IsConnected() bool
}

// Message is an MQTT message the bridge receives.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Subscriber subscribes to MQTT topic filters. Handlers for one filter run in
// arrival order and never on the MQTT library's own goroutines.
type Subscriber interface {
	Subscribe(ctx context.Context, filter string, qos byte, handle func(Message)) error

	// SubscribeGroup subscribes to several filters in one SUBSCRIBE packet
	// with one handler that receives their messages in arrival order.
	SubscribeGroup(ctx context.Context, filters []string, qos byte, handle func(Message)) error

	Unsubscribe(ctx context.Context, filters ...string) error
}

// LockAPI is the part of the LOQED Integrations API the bridge calls.
type LockAPI interface {
	ListLocks(ctx context.Context) ([]loqed.Lock, error)
	SetBoltState(ctx context.Context, lockID string, state loqed.BoltState) error
	SetSetting(ctx context.Context, lockID, name string, value int) error
}

// Command names of COMMANDS_ALLOWED.
const (
	AllowLock     = "lock"
	AllowUnlock   = "unlock"
	AllowOpen     = "open"
	AllowSettings = "settings"
)

// Options configure a Bridge. Zero durations and limits take the defaults
// documented on each field.
type Options struct {
	// BaseTopic is the first level of every topic, e.g. "loqed".
	BaseTopic string

	// WebhookSecret is the path segment every webhook URL must carry.
	WebhookSecret string

	// API is nil when no token is configured: the bridge then only receives
	// webhooks and rejects commands.
	API LockAPI

	Discovery         bool
	DiscoveryPrefix   string
	DiscoveryMode     discovery.Mode
	Version           string
	SupportURL        string
	BirthDelayMin     time.Duration // default 1s
	BirthDelayMax     time.Duration // default 5s
	CleanupCollectFor time.Duration // how long start-up waits for retained configs; default 2s

	// CommandsAllowed lists what MQTT may do: AllowLock, AllowUnlock,
	// AllowOpen, AllowSettings.
	CommandsAllowed []string

	// CommandPIN, when set, must come with every lock command.
	CommandPIN string

	// Settings are the setting names published as switches.
	Settings []string

	RefreshInterval time.Duration // default 12h: a cached lock list older than this is read again
	RefreshAtStart  bool          // read the lock list at start even when the cached one is fresh
	ListBudget      int           // default 10 list calls per BudgetWindow
	BudgetWindow    time.Duration // default 12h
	ConfirmTimeout  time.Duration // default 20s
	DedupWindow     time.Duration // default 10s
	EventQueueLimit int           // default 10000 events waiting for the broker, over all locks
	MaxLocks        int           // default 10000 locks known at once
	RetryBase       time.Duration // default 1s: first retry delay of a failed API call
	RetryMax        time.Duration // default 30s: cap of the retry delay
	RetryAttempts   int           // default 4 attempts in all

	// SharedGroup, when set, subscribes command topics through
	// $share/<group>/ so that one instance of the group runs each command.
	SharedGroup string

	Logger     zerolog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

func (o *Options) setDefaults() {
	if o.BaseTopic == "" {
		o.BaseTopic = "loqed"
	}
	if o.DiscoveryPrefix == "" {
		o.DiscoveryPrefix = "homeassistant"
	}
	if o.DiscoveryMode == "" {
		o.DiscoveryMode = discovery.ModeDevice
	}
	if o.BirthDelayMin == 0 && o.BirthDelayMax == 0 {
		o.BirthDelayMin, o.BirthDelayMax = time.Second, 5*time.Second
	}
	if o.CleanupCollectFor == 0 {
		o.CleanupCollectFor = 2 * time.Second
	}
	if o.CommandsAllowed == nil {
		o.CommandsAllowed = []string{AllowLock, AllowUnlock, AllowOpen, AllowSettings}
	}
	if o.Settings == nil {
		o.Settings = []string{loqed.SettingOpenHouseMode, loqed.SettingTwistAssist, loqed.SettingTouchToConnect}
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 12 * time.Hour
	}
	if o.ListBudget == 0 {
		o.ListBudget = 10
	}
	if o.BudgetWindow == 0 {
		o.BudgetWindow = 12 * time.Hour
	}
	if o.ConfirmTimeout == 0 {
		o.ConfirmTimeout = 20 * time.Second
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = 10 * time.Second
	}
	if o.EventQueueLimit == 0 {
		o.EventQueueLimit = 10000
	}
	if o.MaxLocks == 0 {
		o.MaxLocks = 10000
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.RetryAttempts == 0 {
		o.RetryAttempts = 4
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Bridge connects LOQED webhooks and API calls with MQTT topics.
type Bridge struct {
	opts    Options
	pub     Publisher // b.out, or nil without a publisher
	out     *outbox
	sub     Subscriber
	log     zerolog.Logger
	metrics *metrics
	topics  topics
	allowed map[string]bool
	budget  *loqed.Budget

	mu      sync.Mutex
	locks   map[string]*lockState // by Integrations API id
	aliases map[string]string     // numeric cloud id -> Integrations API id

	queued    *eventQueue
	discovery *discoveryState
	inventory *inventory

	// holding is set until Start has published the discovery configs: lock
	// states wait for them, as Home Assistant needs a config before its
	// states, and Start then publishes every state once.
	holding atomic.Bool

	dropLog     onceEvery // rate-limits the log line of dropped events
	retainedLog onceEvery // rate-limits the log line of retained commands

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a bridge that publishes through pub and subscribes through sub.
// It does nothing until Start.
func New(opts Options, pub Publisher, sub Subscriber) (*Bridge, error) {
	opts.setDefaults()
	if err := loqed.CheckLockID(opts.BaseTopic); err != nil {
		return nil, fmt.Errorf("invalid base topic %q: %w", opts.BaseTopic, err)
	}

	b := &Bridge{
		opts:    opts,
		pub:     pub,
		sub:     sub,
		log:     opts.Logger,
		topics:  topics{base: opts.BaseTopic},
		allowed: make(map[string]bool),
		budget:  loqed.NewBudget(opts.ListBudget, opts.BudgetWindow),
		locks:   make(map[string]*lockState),
		aliases: make(map[string]string),

		dropLog:     onceEvery{interval: time.Minute},
		retainedLog: onceEvery{interval: time.Minute},
	}
	for _, c := range opts.CommandsAllowed {
		b.allowed[c] = true
	}

	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	b.metrics = m
	b.metrics.budgetRemaining.Set(float64(opts.ListBudget))
	b.queued = newEventQueue(opts.EventQueueLimit)
	if pub != nil {
		b.out = newOutbox(pub)
		b.pub = b.out
	}
	b.discovery = newDiscoveryState()
	b.inventory = &inventory{}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.holding.Store(true)
	return b, nil
}

// Start loads the lock inventory (from the broker's retained info topics,
// or from the API when the cache is missing or stale), subscribes to the
// command topics and publishes discovery and state. The MQTT client must
// already be connected; after each reconnect the caller runs Resync.
func (b *Bridge) Start(ctx context.Context) error {
	if err := b.subscribe(ctx); err != nil {
		return err
	}
	if err := b.loadInventory(ctx); err != nil {
		return err
	}
	if b.opts.Discovery {
		b.cleanupDiscovery(ctx)
	} else {
		b.removeOwnDiscovery(ctx)
	}

	// The snapshots above subscribe to and unsubscribe from the same
	// filters, so the lock topics are followed only after them.
	if b.opts.SharedGroup != "" {
		if err := b.sub.SubscribeGroup(ctx, b.mirrorFilters(), 1, b.handleMirror); err != nil {
			return err
		}
	}

	// Configs first, then every state, once. The broker acknowledges QoS 1
	// messages in order, so once the version published last is
	// acknowledged, everything before it is on the broker.
	b.holding.Store(false)
	b.resyncLocks()
	if err := b.pub.Publish(ctx, b.topics.bridgeVersion(), []byte(b.opts.Version), true); err != nil {
		b.log.Warn().Err(err).Msg("the broker did not acknowledge the initial state; it is published again after the next connect")
	}

	b.wg.Add(1)
	go b.maintain()
	return nil
}

// Close stops background work, waits for the commands under way and then
// for the broker to acknowledge every queued event message, at most until
// ctx ends. Webhooks received after Close are rejected.
func (b *Bridge) Close(ctx context.Context) error {
	b.cancel()

	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("bridge: shutdown: %w", ctx.Err())
	}

	// Locks whose send failed get one more try before the wait for the
	// queue to empty.
	if b.pub.IsConnected() {
		b.resyncDirty()
	}
	if err := b.queued.waitEmpty(ctx); err != nil {
		return fmt.Errorf("bridge: shutdown: %w", err)
	}
	if b.out != nil {
		if err := b.out.flush(ctx); err != nil {
			return fmt.Errorf("bridge: shutdown: %w", err)
		}
	}
	return nil
}

// maintain republishes locks whose last publish failed and re-reads a stale
// lock list, until Close.
func (b *Bridge) maintain() {
	defer b.wg.Done()

	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
			if b.pub.IsConnected() {
				b.resyncDirty()
			}
			b.refreshIfStale(b.ctx)
		}
	}
}

// lock returns the lock with the Integrations API id or alias id.
func (b *Bridge) lock(id string) *lockState {
	b.mu.Lock()
	defer b.mu.Unlock()

	if l, ok := b.locks[id]; ok {
		return l
	}
	if real, ok := b.aliases[id]; ok {
		return b.locks[real]
	}
	return nil
}

// errTooManyLocks is returned when a webhook names a new lock while MaxLocks
// locks are known already.
var errTooManyLocks = errors.New("too many locks")

// lockOrCreate returns the lock with the id, creating it when the bridge does
// not know it yet: a bridge without an API token learns its locks from
// webhooks.
func (b *Bridge) lockOrCreate(id string) (*lockState, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()

	if l, ok := b.locks[id]; ok {
		return l, false, nil
	}
	if real, ok := b.aliases[id]; ok {
		return b.locks[real], false, nil
	}
	if len(b.locks) >= b.opts.MaxLocks {
		return nil, false, errTooManyLocks
	}
	l := b.newLockState(id)
	b.locks[id] = l
	b.metrics.locks.Set(float64(len(b.locks)))
	return l, true, nil
}

// bindAlias records that the numeric cloud id alias belongs to the lock with
// the Integrations API id.
func (b *Bridge) bindAlias(alias, id string) {
	if alias == "" || alias == id {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, isLock := b.locks[alias]; isLock {
		return
	}
	if b.aliases[alias] != id {
		b.aliases[alias] = id
		b.log.Info().Str("lock_id", id).Str("cloud_id", alias).Msg("bound cloud lock id to lock")
	}
}

// allLocks returns the known locks in no particular order.
func (b *Bridge) allLocks() []*lockState {
	b.mu.Lock()
	defer b.mu.Unlock()

	out := make([]*lockState, 0, len(b.locks))
	for _, l := range b.locks {
		out = append(out, l)
	}
	return out
}
