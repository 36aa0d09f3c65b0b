// Package discovery builds the Home Assistant MQTT discovery configs that make
// each LOQED lock, and the bridge itself, a device in Home Assistant.
//
// Every function is pure: it turns Options and a Lock description into
// Messages and leaves publishing to the caller. Every Message is meant to be
// published retained, and an empty Payload removes the config it addresses.
//
// Two layouts are supported. ModeDevice publishes one device-based config per
// device at <prefix>/device/<object_id>/config, which Home Assistant 2024.11
// and later understand. ModeComponent publishes one config per entity at
// <prefix>/<platform>/<node_id>/<key>/config, which every Home Assistant
// version with MQTT discovery understands. MigrationMessages switches a lock
// between the two without losing entity ids or user settings.
//
// The package imports only the standard library and declares its own input
// types, so it depends on no other package of this module.
package discovery

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Mode selects the discovery layout.
type Mode string

// Discovery layouts.
const (
	// ModeDevice publishes one config per device with a components map.
	ModeDevice Mode = "device"
	// ModeComponent publishes one config per entity.
	ModeComponent Mode = "component"
)

// Defaults applied by Options.withDefaults.
const (
	DefaultPrefix     = "homeassistant"
	DefaultBaseTopic  = "loqed"
	DefaultOriginName = "loqed2mqtt"
	DefaultModel      = "LOQED Touch Smart Lock"
)

// Origin is the application that publishes the configs. Home Assistant
// requires its name for device-based discovery and logs all three fields when
// it discovers a config.
type Origin struct {
	Name       string
	SWVersion  string
	SupportURL string
}

// Options are the bridge-wide settings that shape every config.
type Options struct {
	// Prefix is Home Assistant's discovery prefix; empty means
	// DefaultPrefix.
	Prefix string
	// BaseTopic is the first level of every bridge topic (MQTT_BASE_TOPIC);
	// empty means DefaultBaseTopic.
	BaseTopic string
	// BridgeID is the stable identifier of this bridge instance, used as the
	// bridge device's identifier and node id. It must match
	// [a-zA-Z0-9_-]+; empty means BridgeIDFor(BaseTopic).
	BridgeID string
	// Origin describes this application; an empty Origin.Name means
	// DefaultOriginName.
	Origin Origin
	// Mode is the discovery layout; empty means ModeDevice.
	Mode Mode
	// AllowOpen reports whether COMMANDS_ALLOWED contains "open". Only then
	// does the lock entity get payload_open, which is what gives it the Open
	// button in Home Assistant.
	AllowOpen bool
	// AllowLock reports whether COMMANDS_ALLOWED contains lock and unlock.
	// Without it the lock is published as a read-only enum sensor.
	AllowLock bool
	// AllowSettings reports whether COMMANDS_ALLOWED contains "settings".
	// Settings are switches only then; otherwise they are read-only binary
	// sensors.
	AllowSettings bool
	// CodeFormat is a regular expression for the code Home Assistant
	// requests before a lock command, e.g. `^\d{4,8}$`. Set it when a
	// command PIN is configured. The lock then sends JSON commands of the
	// form {"action":"night_lock","code":"1234"} to <base>/<id>/set.
	CodeFormat string
}

// Lock describes one lock as the discovery configs need it. It carries no
// keys or secrets.
type Lock struct {
	// ID is the immutable Integrations API id. It is used as a topic level
	// as it is and inside discovery topics after sanitizing.
	ID string
	// Name is the lock's name in the LOQED app; it becomes the device name.
	Name string
	// Model is the device model; empty means DefaultModel.
	Model string
	// SupportedStates lists the bolt states the lock supports: "open",
	// "day_lock", "night_lock". An empty list means all three.
	SupportedStates []string
	// Settings lists the setting names the bridge publishes under
	// <base>/<id>/settings/<name>, e.g. open_house_mode.
	Settings []string
}

// Message is one discovery config to publish retained. An empty Payload
// removes the retained config and the item Home Assistant discovered from it.
type Message struct {
	Topic   string
	Payload []byte
}

// LockMessages returns the discovery configs of one lock. In ModeDevice it is
// exactly one message at <prefix>/device/loqed_<id>/config; in ModeComponent
// it is one message per entity at <prefix>/<platform>/loqed_<id>/<key>/config.
func LockMessages(o Options, l Lock) []Message {
	o = o.withDefaults()
	d := lockDevice(o, l)
	return d.messages(o)
}

// BridgeMessages returns the discovery configs of the bridge device: its
// connectivity binary sensor on <base>/bridge/state and its version sensor.
// In ModeDevice it is one message at <prefix>/device/<BridgeID>/config.
func BridgeMessages(o Options) []Message {
	o = o.withDefaults()
	d := bridgeDevice(o)
	return d.messages(o)
}

// RemoveLock returns empty payloads for every config topic LockMessages can
// produce for l in either mode and with any command permissions, so that it
// clears the lock completely whatever an earlier run published.
func RemoveLock(o Options, l Lock) []Message {
	o = o.withDefaults()
	d := lockDevice(o, l)
	return removals(d.allTopics(o))
}

// RemoveBridge returns empty payloads for every config topic BridgeMessages
// produces in either mode.
func RemoveBridge(o Options) []Message {
	o = o.withDefaults()
	d := bridgeDevice(o)
	return removals(d.allTopics(o))
}

// MigrationMessages moves a lock from one discovery layout to the other the
// way Home Assistant documents it, keeping entity ids and user settings:
// first {"migrate_discovery": true} to every old topic, then the new configs,
// then empty payloads to the old topics. The messages are returned in that
// order and must be published in it. When from equals to there is nothing to
// migrate and the result is LockMessages in that mode.
func MigrationMessages(from, to Mode, o Options, l Lock) []Message {
	from, to = from.orDefault(), to.orDefault()
	o.Mode = to
	if from == to {
		return LockMessages(o, l)
	}

	old := o
	old.Mode = from
	return migrate(Topics(old, l), LockMessages(o, l))
}

// BridgeMigrationMessages is MigrationMessages for the bridge device.
func BridgeMigrationMessages(from, to Mode, o Options) []Message {
	from, to = from.orDefault(), to.orDefault()
	o.Mode = to
	if from == to {
		return BridgeMessages(o)
	}

	old := o
	old.Mode = from
	return migrate(topicsOf(BridgeMessages(old)), BridgeMessages(o))
}

// RemovalForTopic returns the message that removes the retained config at
// topic.
func RemovalForTopic(topic string) Message {
	return Message{Topic: topic}
}

// Topics returns the config topics LockMessages(o, l) publishes, in the same
// order.
func Topics(o Options, l Lock) []string {
	return topicsOf(LockMessages(o, l))
}

// BridgeIDFor derives a bridge id from a base topic, e.g. "loqed2mqtt_loqed"
// for "loqed". Characters that a discovery topic level cannot contain become
// underscores, so two base topics that differ only in such characters get the
// same id.
func BridgeIDFor(baseTopic string) string {
	if baseTopic == "" {
		baseTopic = DefaultBaseTopic
	}
	return "loqed2mqtt_" + topicLevel(baseTopic)
}

// migrationPayload makes Home Assistant unload a discovered item but keep its
// registry entry, so that a config on another topic can take it over.
var migrationPayload = []byte(`{"migrate_discovery":true}`)

func migrate(oldTopics []string, configs []Message) []Message {
	msgs := make([]Message, 0, 2*len(oldTopics)+len(configs))
	for _, t := range oldTopics {
		msgs = append(msgs, Message{Topic: t, Payload: migrationPayload})
	}
	msgs = append(msgs, configs...)
	return append(msgs, removals(oldTopics)...)
}

func removals(topics []string) []Message {
	msgs := make([]Message, 0, len(topics))
	for _, t := range topics {
		msgs = append(msgs, RemovalForTopic(t))
	}
	return msgs
}

func topicsOf(msgs []Message) []string {
	topics := make([]string, 0, len(msgs))
	for _, m := range msgs {
		topics = append(topics, m.Topic)
	}
	return topics
}

func (m Mode) orDefault() Mode {
	if m == "" {
		return ModeDevice
	}
	return m
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	if o.BaseTopic == "" {
		o.BaseTopic = DefaultBaseTopic
	}
	o.BaseTopic = strings.TrimSuffix(o.BaseTopic, "/")
	if o.BridgeID == "" {
		o.BridgeID = BridgeIDFor(o.BaseTopic)
	}
	o.BridgeID = topicLevel(o.BridgeID)
	if o.Origin.Name == "" {
		o.Origin.Name = DefaultOriginName
	}
	o.Mode = o.Mode.orDefault()
	return o
}

// topicLevel replaces every character outside [a-zA-Z0-9_-] with an
// underscore. Home Assistant ignores a discovery topic whose node_id or
// object_id contains anything else.
func topicLevel(s string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if isTopicLevelRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isTopicLevelRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// entitySlug turns s into the object part of a Home Assistant entity id:
// lower case [a-z0-9_], no leading, trailing or doubled underscores.
func entitySlug(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	underscore := true // suppresses a leading underscore
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
			continue
		}
		if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// encode marshals v without HTML escaping, so that templates such as
// `{{ value }}` stay readable with mosquitto_sub. The output of
// encoding/json is deterministic: struct fields keep their order and map
// keys are sorted.
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only the package's own struct and string types are encoded, and
		// they always marshal.
		panic("discovery: cannot encode config: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
