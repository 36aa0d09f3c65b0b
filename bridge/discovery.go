package bridge

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/discovery"
	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// pinCodeFormat is the code_format Home Assistant checks a code against
// before it sends a lock command when COMMAND_PIN is set.
const pinCodeFormat = `^\S+$`

// discoveryState gates discovery publishing until the start-up clean-up has
// run, and debounces Home Assistant birth messages.
type discoveryState struct {
	mu         sync.Mutex
	birthTimer *time.Timer

	// ready is set once Start has cleaned up and migrated the retained
	// configs. Until then a lock's configs are not published on their own,
	// because configs in a new mode would reach Home Assistant before the
	// migrate_discovery message of the old mode, and Home Assistant would
	// reject their unique_ids as taken. Start publishes every config after
	// it sets ready.
	ready atomic.Bool
}

func newDiscoveryState() *discoveryState {
	return &discoveryState{}
}

// BridgeID is the id of the bridge's own Home Assistant device, derived from
// the base topic so that it stays the same across restarts and instances.
func (b *Bridge) BridgeID() string {
	return discovery.BridgeIDFor(b.opts.BaseTopic)
}

func (b *Bridge) discoveryOptions() discovery.Options {
	o := discovery.Options{
		Prefix:        b.opts.DiscoveryPrefix,
		BaseTopic:     b.opts.BaseTopic,
		BridgeID:      b.BridgeID(),
		Origin:        discovery.Origin{Name: "loqed2mqtt", SWVersion: b.opts.Version, SupportURL: b.opts.SupportURL},
		Mode:          b.opts.DiscoveryMode,
		AllowOpen:     b.allowed[AllowOpen],
		AllowLock:     b.allowed[AllowLock] || b.allowed[AllowUnlock],
		AllowSettings: b.allowed[AllowSettings],
	}
	if b.opts.CommandPIN != "" {
		o.CodeFormat = pinCodeFormat
	}
	return o
}

// discoveryLock describes a lock for discovery. The caller holds l.mu.
func (l *lockState) discoveryLock() discovery.Lock {
	return l.b.discoveryLockOf(l.id, l.info)
}

// discoveryLockOf describes the lock id for discovery. The lock list record
// info is nil for a lock known only from webhooks, which is named by its id.
func (b *Bridge) discoveryLockOf(id string, info *loqed.Lock) discovery.Lock {
	d := discovery.Lock{ID: id, Name: id, Settings: b.opts.Settings}
	if info != nil {
		if info.Name != "" {
			d.Name = info.Name
		}
		d.Model = info.ModelName
		for _, s := range info.SupportedLockStates {
			d.SupportedStates = append(d.SupportedStates, string(s))
		}
	}
	return d
}

// publishDiscovery publishes the configs of the bridge and of every lock.
func (b *Bridge) publishDiscovery() {
	o := b.discoveryOptions()
	for _, m := range discovery.BridgeMessages(o) {
		b.pub.PublishAsync(m.Topic, m.Payload, true, nil)
	}
	for _, l := range b.allLocks() {
		b.publishLockDiscovery(l)
	}
}

// publishLockDiscovery publishes the configs of one lock. A rename keeps the
// lock's topics and unique ids, so Home Assistant keeps its entities.
func (b *Bridge) publishLockDiscovery(l *lockState) {
	l.mu.Lock()
	d := l.discoveryLock()
	l.mu.Unlock()
	b.publishLockConfigs(d)
}

// publishRecordDiscovery publishes the configs of a new lock from its lock
// list record. The caller publishes them before the lock's states, because
// Home Assistant subscribes to an entity's state topics only once it has the
// entity's config.
func (b *Bridge) publishRecordDiscovery(rec *loqed.Lock) {
	b.publishLockConfigs(b.discoveryLockOf(rec.ID, rec))
}

func (b *Bridge) publishLockConfigs(d discovery.Lock) {
	if !b.discovery.ready.Load() {
		return
	}
	for _, m := range discovery.LockMessages(b.discoveryOptions(), d) {
		b.pub.PublishAsync(m.Topic, m.Payload, true, nil)
	}
}

// removeLockDiscovery clears every config of a lock. The caller holds l.mu.
func (b *Bridge) removeLockDiscovery(l *lockState) {
	for _, m := range discovery.RemoveLock(b.discoveryOptions(), l.discoveryLock()) {
		b.pub.PublishAsync(m.Topic, nil, true, nil)
	}
}

// componentPlatforms are the platforms of the bridge's single-component
// configs.
var componentPlatforms = []string{"lock", "sensor", "binary_sensor", "event", "switch", "button"}

// ownConfigs reads the retained discovery configs that point into the base
// topic: the device-based configs under <prefix>/device/ and the
// single-component configs of the platforms the bridge uses. A platform with
// more retained configs than the broker sends one client at once (other
// integrations' sensors, say) is read again for the bridge's own node ids
// only.
// NOTE: in that case a single-component config of a lock the bridge no
// longer has at all (no retained topic left under the base topic) is not
// found.
func (b *Bridge) ownConfigs(ctx context.Context) (map[string][]byte, error) {
	prefix := b.opts.DiscoveryPrefix
	retained, err := b.snapshot(ctx, prefix+"/device/+/config")
	if err != nil {
		return nil, err
	}

	for _, platform := range componentPlatforms {
		part, err := b.snapshot(ctx, prefix+"/"+platform+"/+/+/config")
		if errors.Is(err, errSnapshotIncomplete) {
			b.log.Warn().Str("platform", platform).Msg("too many retained discovery configs to read at once; reading the bridge's own only")
			part, err = b.nodeConfigs(ctx, platform)
		}
		if err != nil {
			return nil, err
		}
		for topic, payload := range part {
			retained[topic] = payload
		}
	}

	o := b.discoveryOptions()
	own := make(map[string][]byte)
	for topic, payload := range retained {
		if discovery.IsOwnConfig(o, topic, payload) {
			own[topic] = payload
		}
	}
	return own, nil
}

// nodeConfigs reads the single-component configs of one platform whose node
// id belongs to the bridge or to a lock it has.
func (b *Bridge) nodeConfigs(ctx context.Context, platform string) (map[string][]byte, error) {
	component := b.discoveryOptions()
	component.Mode = discovery.ModeComponent
	nodes := []string{}
	if msgs := discovery.BridgeMessages(component); len(msgs) > 0 {
		nodes = append(nodes, nodeOf(msgs[0].Topic))
	}
	for _, l := range b.allLocks() {
		l.mu.Lock()
		d := l.discoveryLock()
		l.mu.Unlock()
		if topics := discovery.Topics(component, d); len(topics) > 0 {
			nodes = append(nodes, nodeOf(topics[0]))
		}
	}

	// A lock has at most a few configs per platform.
	const nodesPerSnapshot = 100
	retained := make(map[string][]byte)
	for len(nodes) > 0 {
		n := min(len(nodes), nodesPerSnapshot)
		filters := make([]string, 0, n)
		for _, node := range nodes[:n] {
			filters = append(filters, b.opts.DiscoveryPrefix+"/"+platform+"/"+node+"/+/config")
		}
		nodes = nodes[n:]

		part, err := b.snapshot(ctx, filters...)
		if err != nil {
			return nil, err
		}
		for topic, payload := range part {
			retained[topic] = payload
		}
	}
	return retained, nil
}

// nodeOf returns the node id level of a single-component config topic,
// <prefix>/<platform>/<node id>/<object id>/config.
func nodeOf(topic string) string {
	levels := strings.Split(topic, "/")
	if len(levels) < 5 {
		return ""
	}
	return levels[len(levels)-3]
}

// cleanupDiscovery clears the retained configs under the discovery prefix
// that point into the base topic but that this bridge no longer produces,
// such as those of a lock that left the account. Configs of the other
// discovery mode are migrated the way Home Assistant documents, so entities
// keep their ids and settings.
func (b *Bridge) cleanupDiscovery(ctx context.Context) {
	defer b.discovery.ready.Store(true)

	if _, loaded := b.inventory.lastUpdate(); !loaded && b.opts.API != nil {
		// Without a lock list every lock would look removed. Clearing
		// configs because an API call failed would delete the user's
		// entities, so nothing is cleared.
		b.log.Warn().Msg("no lock list available: skipping the clean-up of stale discovery configs")
		return
	}

	own, err := b.ownConfigs(ctx)
	if err != nil {
		b.log.Warn().Err(err).Msg("failed to read discovery configs for clean-up")
		return
	}

	o := b.discoveryOptions()
	other := o
	other.Mode = discovery.ModeComponent
	if o.Mode == discovery.ModeComponent {
		other.Mode = discovery.ModeDevice
	}

	wanted := make(map[string]bool)
	for _, m := range discovery.BridgeMessages(o) {
		wanted[m.Topic] = true
	}
	if hasAny(own, discovery.BridgeMessages(other)) {
		b.log.Info().Str("from", string(other.Mode)).Str("to", string(o.Mode)).Msg("migrating the discovery configs of the bridge device")
		b.publishMigration(own, discovery.BridgeMigrationMessages(other.Mode, o.Mode, o))
	}

	for _, l := range b.allLocks() {
		l.mu.Lock()
		d := l.discoveryLock()
		l.mu.Unlock()
		for _, t := range discovery.Topics(o, d) {
			wanted[t] = true
		}

		// Configs of the other mode for a lock still here: migrate, so
		// that Home Assistant keeps the entity ids and settings.
		if hasAny(own, discovery.LockMessages(other, d)) {
			b.log.Info().Str("lock_id", l.id).Str("from", string(other.Mode)).Str("to", string(o.Mode)).Msg("migrating discovery configs")
			b.publishMigration(own, discovery.MigrationMessages(other.Mode, o.Mode, o, d))
		}
	}

	for topic := range own {
		if wanted[topic] {
			continue
		}
		b.log.Info().Str("topic", topic).Msg("clearing a discovery config this bridge no longer produces")
		b.pub.PublishAsync(topic, nil, true, nil)
	}
}

// hasAny reports whether one of the topics of msgs has a retained config in
// own.
func hasAny(own map[string][]byte, msgs []discovery.Message) bool {
	for _, m := range msgs {
		if _, ok := own[m.Topic]; ok {
			return true
		}
	}
	return false
}

// publishMigration publishes migration messages in their order and removes
// the topics they clear from own.
func (b *Bridge) publishMigration(own map[string][]byte, msgs []discovery.Message) {
	for _, m := range msgs {
		b.pub.PublishAsync(m.Topic, m.Payload, true, nil)
		if len(m.Payload) == 0 {
			delete(own, m.Topic)
		}
	}
}

// removeOwnDiscovery clears every config this bridge published, for
// HA_DISCOVERY=false.
func (b *Bridge) removeOwnDiscovery(ctx context.Context) {
	own, err := b.ownConfigs(ctx)
	if err != nil {
		b.log.Warn().Err(err).Msg("failed to read discovery configs for removal")
		return
	}
	for topic := range own {
		b.pub.PublishAsync(topic, nil, true, nil)
	}
	if len(own) > 0 {
		b.log.Info().Int("configs", len(own)).Msg("Home Assistant discovery is off: removed the configs published earlier")
	}
}

// handleBirth republishes discovery and then every state after Home
// Assistant announces itself on <prefix>/status. The random delay keeps many
// clients from publishing at the same moment, as Home Assistant recommends.
func (b *Bridge) handleBirth(m Message) {
	if strings.TrimSpace(string(m.Payload)) != "online" {
		return
	}
	delay := b.opts.BirthDelayMin
	if span := b.opts.BirthDelayMax - b.opts.BirthDelayMin; span > 0 {
		delay += rand.N(span)
	}

	ds := b.discovery
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.birthTimer != nil {
		ds.birthTimer.Stop()
	}
	b.log.Info().Dur("delay", delay).Msg("Home Assistant started; publishing discovery again")
	ds.birthTimer = time.AfterFunc(delay, func() {
		if b.ctx.Err() != nil {
			return
		}
		// Every lock entity is available only while the bridge state
		// is online. A broker that lost its retained messages without
		// a reconnect of this bridge no longer has it.
		b.pub.PublishAsync(b.topics.bridgeState(), []byte(online), true, nil)
		b.Resync()
	})
}

// subscribe subscribes to the command topics and the Home Assistant birth
// topic.
func (b *Bridge) subscribe(ctx context.Context) error {
	share := ""
	if b.opts.SharedGroup != "" {
		share = "$share/" + b.opts.SharedGroup + "/"
	}
	base := b.opts.BaseTopic
	filters := []string{
		share + base + "/+/" + suffixSet,
		share + base + "/+/" + suffixRefresh,
		share + base + "/+/" + suffixSettings + "/+/" + suffixSet,
	}
	for _, f := range filters {
		if err := b.sub.Subscribe(ctx, f, 1, b.routeCommand); err != nil {
			return err
		}
	}
	if b.opts.Discovery {
		if err := b.sub.Subscribe(ctx, b.opts.DiscoveryPrefix+"/status", 1, b.handleBirth); err != nil {
			return err
		}
	}
	return nil
}

// routeCommand is the handler of the command subscriptions.
func (b *Bridge) routeCommand(m Message) {
	if b.ctx.Err() != nil {
		return
	}
	b.handleCommand(m)
}
