package bridge

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/discovery"
)

// pinCodeFormat is the code_format Home Assistant checks a code against
// before it sends a lock command when COMMAND_PIN is set.
const pinCodeFormat = `^\S+$`

// discoveryState remembers the config topics this bridge publishes, and
// debounces Home Assistant birth messages.
type discoveryState struct {
	mu         sync.Mutex
	birthTimer *time.Timer
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
	d := discovery.Lock{ID: l.id, Name: l.id, Settings: l.b.opts.Settings}
	if l.info != nil {
		if l.info.Name != "" {
			d.Name = l.info.Name
		}
		d.Model = l.info.ModelName
		for _, s := range l.info.SupportedLockStates {
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

// ownConfigs reads the retained discovery configs that point into the base
// topic.
func (b *Bridge) ownConfigs(ctx context.Context) (map[string][]byte, error) {
	prefix := b.opts.DiscoveryPrefix
	retained, err := b.snapshot(ctx, prefix+"/#", prefix+"/loqed2mqtt_sync/"+b.BridgeID())
	if err != nil {
		return nil, err
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

// cleanupDiscovery clears the retained configs under the discovery prefix
// that point into the base topic but that this bridge no longer produces,
// such as those of a lock that left the account. Configs of the other
// discovery mode are migrated the way Home Assistant documents, so entities
// keep their ids and settings.
func (b *Bridge) cleanupDiscovery(ctx context.Context) {
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
	wanted := make(map[string]bool)
	for _, m := range discovery.BridgeMessages(o) {
		wanted[m.Topic] = true
	}
	other := o
	other.Mode = discovery.ModeComponent
	if o.Mode == discovery.ModeComponent {
		other.Mode = discovery.ModeDevice
	}

	for _, l := range b.allLocks() {
		l.mu.Lock()
		d := l.discoveryLock()
		l.mu.Unlock()
		for _, t := range discovery.Topics(o, d) {
			wanted[t] = true
		}

		// Configs of the other mode for a lock still here: migrate.
		migrate := false
		for _, t := range discovery.Topics(other, d) {
			if _, ok := own[t]; ok && !wanted[t] {
				migrate = true
			}
		}
		if migrate {
			b.log.Info().Str("lock_id", l.id).Str("from", string(other.Mode)).Str("to", string(o.Mode)).Msg("migrating discovery configs")
			for _, m := range discovery.MigrationMessages(other.Mode, o.Mode, o, d) {
				b.pub.PublishAsync(m.Topic, m.Payload, true, nil)
				if len(m.Payload) == 0 {
					delete(own, m.Topic)
				}
			}
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
		if b.ctx.Err() == nil {
			b.Resync()
		}
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
