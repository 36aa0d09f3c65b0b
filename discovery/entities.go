package discovery

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Payload words of the bridge topics the configs point at.
const (
	payloadOnline  = "online"
	payloadOffline = "offline"
	payloadOn      = "ON"
	payloadOff     = "OFF"
)

// lockStates is every word the bridge publishes on <base>/<id>/state.
var lockStates = []string{"night_lock", "day_lock", "open", "locking", "unlocking", "opening", "jammed", "unknown"}

// batteryTypes is every word the bridge publishes on <base>/<id>/battery_type.
var batteryTypes = []string{"alkaline", "nimh", "lithium", "unknown"}

// lockCommandTemplate renders the command Home Assistant sends when the lock
// has a code_format. Home Assistant fills in value (payload_lock,
// payload_unlock or payload_open) and code (the code the user entered, already
// checked against code_format). The code is inserted without JSON escaping.
// That is safe only while code_format admits no quote or backslash, as a
// digits pattern such as `^\d{4,8}$` does.
const lockCommandTemplate = `{"action":"{{ value }}","code":"{{ code }}"}`

// eventValueTemplate turns the bridge's event JSON into the payload the event
// platform expects. Home Assistant parses the rendered template as JSON and
// takes event_type from it; it must be one of event_types. The bridge's
// event_type field carries LOQED's raw type (e.g. STATE_CHANGED_LATCH), which
// is not a fixed set, so the entity's event type is the bridge's action field
// (the state word the event stands for, moving states included), and the raw
// type and the reached or target state become attributes. Both values are plain
// upper or lower case words, so inserting them into JSON strings unescaped is
// safe. Other fields of the bridge's event (key and account names) are not
// carried over; the last_changed_by sensor has them.
const eventValueTemplate = `{"event_type":"{{ value_json.action }}","loqed_event":"{{ value_json.event_type }}","state":"{{ value_json.state }}"}`

// motorStallTemplate maps the lock state to the binary sensor's ON/OFF.
const motorStallTemplate = `{{ 'ON' if value == 'jammed' else 'OFF' }}`

// availability is one entry of an availability list.
type availability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

// deviceInfo is the device registry block.
type deviceInfo struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	ViaDevice    string   `json:"via_device,omitempty"`
}

// originInfo is the origin block.
type originInfo struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

// component is the config of one entity. Device, Origin, Platform and the
// shared availability options are filled in by the layout: a device-based
// config carries them once at its root, a single-component config carries
// them in every entity.
type component struct {
	Platform         string         `json:"platform,omitempty"`
	Device           *deviceInfo    `json:"device,omitempty"`
	Origin           *originInfo    `json:"origin,omitempty"`
	Availability     []availability `json:"availability,omitempty"`
	AvailabilityMode string         `json:"availability_mode,omitempty"`
	QoS              *int           `json:"qos,omitempty"`

	UniqueID        string  `json:"unique_id"`
	DefaultEntityID string  `json:"default_entity_id"`
	Name            *string `json:"name"` // nil encodes as null: the device's main feature
	Icon            string  `json:"icon,omitempty"`
	EntityCategory  string  `json:"entity_category,omitempty"`

	DeviceClass       string   `json:"device_class,omitempty"`
	StateClass        string   `json:"state_class,omitempty"`
	UnitOfMeasurement string   `json:"unit_of_measurement,omitempty"`
	Options           []string `json:"options,omitempty"`
	EventTypes        []string `json:"event_types,omitempty"`

	StateTopic          string `json:"state_topic,omitempty"`
	ValueTemplate       string `json:"value_template,omitempty"`
	JSONAttributesTopic string `json:"json_attributes_topic,omitempty"`
	CommandTopic        string `json:"command_topic,omitempty"`
	CommandTemplate     string `json:"command_template,omitempty"`
	CodeFormat          string `json:"code_format,omitempty"`

	PayloadLock    string `json:"payload_lock,omitempty"`
	PayloadUnlock  string `json:"payload_unlock,omitempty"`
	PayloadOpen    string `json:"payload_open,omitempty"`
	PayloadReset   string `json:"payload_reset,omitempty"`
	StateLocked    string `json:"state_locked,omitempty"`
	StateUnlocked  string `json:"state_unlocked,omitempty"`
	StateOpen      string `json:"state_open,omitempty"`
	StateLocking   string `json:"state_locking,omitempty"`
	StateUnlocking string `json:"state_unlocking,omitempty"`
	StateOpening   string `json:"state_opening,omitempty"`
	StateJammed    string `json:"state_jammed,omitempty"`

	PayloadOn    string `json:"payload_on,omitempty"`
	PayloadOff   string `json:"payload_off,omitempty"`
	StateOn      string `json:"state_on,omitempty"`
	StateOff     string `json:"state_off,omitempty"`
	PayloadPress string `json:"payload_press,omitempty"`

	Retain     *bool `json:"retain,omitempty"`
	Optimistic *bool `json:"optimistic,omitempty"`
}

// removalStub is a device-based component reduced to its platform, which
// Home Assistant documents as the way to remove that one component.
type removalStub struct {
	Platform string `json:"platform"`
}

// deviceConfig is the payload of a device-based config.
type deviceConfig struct {
	Device           deviceInfo     `json:"device"`
	Origin           originInfo     `json:"origin"`
	Availability     []availability `json:"availability,omitempty"`
	AvailabilityMode string         `json:"availability_mode,omitempty"`
	QoS              int            `json:"qos"`
	Components       map[string]any `json:"components"`
}

// entity is one component of a device under its key. The key is the
// component's object_id: it must match [a-zA-Z0-9_-]+ and never change,
// because Home Assistant identifies the discovered item by it.
type entity struct {
	key      string
	platform string
	config   component
}

// device is everything one device publishes.
type device struct {
	nodeID           string // device topic object_id and single-component node_id
	info             deviceInfo
	availability     []availability // shared by all entities without their own list
	availabilityMode string
	entities         []entity
	// alternatives are the entities that other command permissions would
	// publish in place of some of entities. Device-based configs carry
	// them as removal stubs, so that changing permissions between runs
	// leaves no orphaned entity behind.
	alternatives []entity
}

// qos is the QoS of state subscriptions and command publishes. QoS 1 makes
// sure a lock command reaches the broker at least once; the bridge ignores
// duplicates of a state it already has.
const qos = 1

func (d *device) messages(o Options) []Message {
	if o.Mode == ModeComponent {
		msgs := make([]Message, 0, len(d.entities))
		for _, e := range d.entities {
			msgs = append(msgs, Message{Topic: d.componentTopic(o, e), Payload: encode(d.single(o, e))})
		}
		return msgs
	}
	return []Message{{Topic: d.deviceTopic(o), Payload: encode(d.deviceBased(o))}}
}

// allTopics returns the config topics of every entity and alternative in both
// layouts.
func (d *device) allTopics(o Options) []string {
	topics := []string{d.deviceTopic(o)}
	for _, e := range slices.Concat(d.entities, d.alternatives) {
		topics = append(topics, d.componentTopic(o, e))
	}
	return topics
}

func (d *device) deviceTopic(o Options) string {
	return o.Prefix + "/device/" + d.nodeID + "/config"
}

func (d *device) componentTopic(o Options, e entity) string {
	return o.Prefix + "/" + e.platform + "/" + d.nodeID + "/" + e.key + "/config"
}

func (d *device) deviceBased(o Options) deviceConfig {
	c := deviceConfig{
		Device:           d.info,
		Origin:           origin(o),
		Availability:     d.availability,
		AvailabilityMode: d.availabilityMode,
		QoS:              qos,
		Components:       make(map[string]any, len(d.entities)+len(d.alternatives)),
	}
	for _, e := range d.alternatives {
		c.Components[e.key] = removalStub{Platform: e.platform}
	}
	for _, e := range d.entities {
		cfg := e.config
		cfg.Platform = e.platform
		c.Components[e.key] = cfg
	}
	return c
}

// single returns e as a single-component config. The platform is left out
// because the topic names it.
func (d *device) single(o Options, e entity) component {
	cfg := e.config
	info, orig, q := d.info, origin(o), qos
	cfg.Device, cfg.Origin, cfg.QoS = &info, &orig, &q
	if cfg.Availability == nil {
		cfg.Availability = d.availability
		cfg.AvailabilityMode = d.availabilityMode
	}
	return cfg
}

func origin(o Options) originInfo {
	return originInfo{Name: o.Origin.Name, SWVersion: o.Origin.SWVersion, SupportURL: o.Origin.SupportURL}
}

// lockDevice describes the device of one lock and all its entities.
func lockDevice(o Options, l Lock) *device {
	b := lockBuilder{o: o, l: l, nodeID: "loqed_" + topicLevel(l.ID), topic: o.BaseTopic + "/" + l.ID}
	b.deviceName = l.Name
	if strings.TrimSpace(b.deviceName) == "" {
		b.deviceName = "LOQED " + l.ID
	}
	model := l.Model
	if model == "" {
		model = DefaultModel
	}

	d := &device{
		nodeID: b.nodeID,
		info: deviceInfo{
			Identifiers:  []string{"loqed_" + l.ID},
			Name:         b.deviceName,
			Manufacturer: "LOQED",
			Model:        model,
			ViaDevice:    o.BridgeID,
		},
		// Both must be online: the bridge process runs and LOQED reaches
		// the lock. Either one offline makes the lock's entities
		// unavailable.
		availability: []availability{
			newAvailability(o.BaseTopic + "/bridge/state"),
			newAvailability(b.topic + "/availability"),
		},
		availabilityMode: "all",
	}

	// Without lock permission the lock platform cannot be used, because it
	// requires a command_topic and Home Assistant would then offer buttons
	// the bridge refuses. The state is published as an enum sensor instead.
	if o.AllowLock {
		d.entities = append(d.entities, b.lock())
		d.alternatives = append(d.alternatives, b.lockState())
	} else {
		d.entities = append(d.entities, b.lockState())
		d.alternatives = append(d.alternatives, b.lock())
	}

	d.entities = append(d.entities,
		b.battery(), b.batteryType(),
		b.signal("wifi_strength", "Wi-Fi signal", "mdi:wifi"),
		b.signal("ble_strength", "Bluetooth signal", "mdi:bluetooth"),
		b.online(), b.motorStall(), b.lastChangedBy(), b.event(),
	)

	for _, s := range settingNames(l.Settings) {
		if o.AllowSettings {
			d.entities = append(d.entities, b.settingSwitch(s))
			d.alternatives = append(d.alternatives, b.settingStatus(s))
		} else {
			d.entities = append(d.entities, b.settingStatus(s))
			d.alternatives = append(d.alternatives, b.settingSwitch(s))
		}
	}

	d.entities = append(d.entities, b.refresh())
	return d
}

// bridgeDevice describes the bridge device. Its entities have no
// availability, so the connectivity sensor shows "disconnected" from the
// retained last will instead of turning unavailable.
func bridgeDevice(o Options) *device {
	const name = "loqed2mqtt"
	id := o.BridgeID
	slug := entitySlug(id)
	topic := o.BaseTopic + "/bridge"

	return &device{
		nodeID: id,
		info: deviceInfo{
			Identifiers:  []string{id},
			Name:         name,
			Manufacturer: "loqed2mqtt",
			SWVersion:    o.Origin.SWVersion,
		},
		entities: []entity{
			{key: "connectivity", platform: "binary_sensor", config: component{
				UniqueID:        id + "_connectivity",
				DefaultEntityID: "binary_sensor." + slug + "_connectivity",
				Name:            entityName(name, "Connectivity"),
				EntityCategory:  "diagnostic",
				DeviceClass:     "connectivity",
				StateTopic:      topic + "/state",
				PayloadOn:       payloadOnline,
				PayloadOff:      payloadOffline,
			}},
			{key: "version", platform: "sensor", config: component{
				UniqueID:        id + "_version",
				DefaultEntityID: "sensor." + slug + "_version",
				Name:            entityName(name, "Version"),
				Icon:            "mdi:tag",
				EntityCategory:  "diagnostic",
				StateTopic:      topic + "/version",
			}},
		},
	}
}

// lockBuilder builds the entities of one lock.
type lockBuilder struct {
	o          Options
	l          Lock
	nodeID     string
	topic      string // <base>/<id>
	deviceName string
}

// newEntity returns an entity with the identity every lock entity shares:
// unique_id loqed_<id>_<key>, which is built from immutable ids only so that
// renaming the lock changes no entity, and a default entity id derived from it.
func (b *lockBuilder) newEntity(key, platform, name string) entity {
	return entity{key: key, platform: platform, config: component{
		UniqueID:        "loqed_" + b.l.ID + "_" + key,
		DefaultEntityID: platform + "." + entitySlug("loqed_"+b.l.ID+"_"+key),
		Name:            entityName(b.deviceName, name),
	}}
}

func (b *lockBuilder) lock() entity {
	e := b.newEntity("lock", "lock", "")
	c := &e.config
	c.DefaultEntityID = "lock." + entitySlug("loqed_"+b.l.ID)
	c.Name = nil // the lock is the device's main feature
	c.StateTopic = b.topic + "/state"
	c.CommandTopic = b.topic + "/set"
	c.JSONAttributesTopic = b.topic + "/info"
	c.Retain, c.Optimistic = ptr(false), ptr(false)

	c.PayloadLock = "night_lock"
	c.PayloadUnlock = "day_lock"
	// payload_open alone gives the entity Home Assistant's open feature, so
	// it is set only when opening is both allowed and supported.
	if b.o.AllowOpen && b.supports("open") {
		c.PayloadOpen = "open"
	}
	// payload_reset sets the entity to unknown; Home Assistant's default
	// is "None".
	c.PayloadReset = "unknown"

	c.StateLocked = "night_lock"
	c.StateUnlocked = "day_lock"
	c.StateOpen = "open"
	c.StateLocking = "locking"
	c.StateUnlocking = "unlocking"
	c.StateOpening = "opening"
	c.StateJammed = "jammed"

	if b.o.CodeFormat != "" {
		c.CodeFormat = b.o.CodeFormat
		c.CommandTemplate = lockCommandTemplate
	}
	return e
}

func (b *lockBuilder) lockState() entity {
	e := b.newEntity("lock_state", "sensor", "Lock state")
	c := &e.config
	c.Icon = "mdi:lock"
	c.DeviceClass = "enum"
	c.Options = lockStates
	c.StateTopic = b.topic + "/state"
	c.JSONAttributesTopic = b.topic + "/info"
	return e
}

func (b *lockBuilder) battery() entity {
	e := b.newEntity("battery", "sensor", "Battery")
	c := &e.config
	c.EntityCategory = "diagnostic"
	c.DeviceClass = "battery"
	c.StateClass = "measurement"
	c.UnitOfMeasurement = "%"
	c.StateTopic = b.topic + "/battery"
	return e
}

func (b *lockBuilder) batteryType() entity {
	e := b.newEntity("battery_type", "sensor", "Battery type")
	c := &e.config
	c.EntityCategory = "diagnostic"
	c.DeviceClass = "enum"
	c.Options = batteryTypes
	c.StateTopic = b.topic + "/battery_type"
	return e
}

// signal returns a signal strength sensor. LOQED reports Wi-Fi and Bluetooth
// strength as a percentage, and Home Assistant accepts the signal_strength
// device class only with dB or dBm, so these sensors have no device class.
func (b *lockBuilder) signal(key, name, icon string) entity {
	e := b.newEntity(key, "sensor", name)
	c := &e.config
	c.Icon = icon
	c.EntityCategory = "diagnostic"
	c.StateClass = "measurement"
	c.UnitOfMeasurement = "%"
	c.StateTopic = b.topic + "/" + key
	return e
}

// online returns the lock's connectivity sensor. Its own availability lists
// only the bridge, so it shows "disconnected" while the lock is offline
// instead of turning unavailable with the other entities.
func (b *lockBuilder) online() entity {
	e := b.newEntity("online", "binary_sensor", "Lock online")
	c := &e.config
	c.Availability = []availability{newAvailability(b.o.BaseTopic + "/bridge/state")}
	c.EntityCategory = "diagnostic"
	c.DeviceClass = "connectivity"
	c.StateTopic = b.topic + "/availability"
	c.PayloadOn = payloadOnline
	c.PayloadOff = payloadOffline
	return e
}

func (b *lockBuilder) motorStall() entity {
	e := b.newEntity("motor_stall", "binary_sensor", "Motor stall")
	c := &e.config
	c.EntityCategory = "diagnostic"
	c.DeviceClass = "problem"
	c.StateTopic = b.topic + "/state"
	c.ValueTemplate = motorStallTemplate
	c.PayloadOn = payloadOn
	c.PayloadOff = payloadOff
	return e
}

// lastChangedBy returns a sensor because the MQTT lock platform ignores a
// changed_by attribute.
func (b *lockBuilder) lastChangedBy() entity {
	e := b.newEntity("last_changed_by", "sensor", "Last changed by")
	c := &e.config
	c.Icon = "mdi:account-key"
	c.StateTopic = b.topic + "/last_changed_by"
	return e
}

func (b *lockBuilder) event() entity {
	e := b.newEntity("event", "event", "Lock event")
	c := &e.config
	c.EventTypes = lockStates
	c.StateTopic = b.topic + "/event"
	c.ValueTemplate = eventValueTemplate
	return e
}

func (b *lockBuilder) settingSwitch(setting string) entity {
	e := b.newEntity("setting_"+topicLevel(setting), "switch", humanize(setting))
	c := &e.config
	c.EntityCategory = "config"
	c.StateTopic = b.topic + "/settings/" + setting
	c.CommandTopic = b.topic + "/settings/" + setting + "/set"
	c.PayloadOn, c.PayloadOff = payloadOn, payloadOff
	c.StateOn, c.StateOff = payloadOn, payloadOff
	c.Retain, c.Optimistic = ptr(false), ptr(false)
	return e
}

// settingStatus is the read-only form of a setting, published when settings
// may not be changed. Home Assistant refuses binary sensors in the config
// entity category, so it is a diagnostic entity.
func (b *lockBuilder) settingStatus(setting string) entity {
	e := b.newEntity("setting_"+topicLevel(setting)+"_status", "binary_sensor", humanize(setting))
	c := &e.config
	c.EntityCategory = "diagnostic"
	c.StateTopic = b.topic + "/settings/" + setting
	c.PayloadOn, c.PayloadOff = payloadOn, payloadOff
	return e
}

func (b *lockBuilder) refresh() entity {
	e := b.newEntity("refresh", "button", "Refresh")
	c := &e.config
	c.Icon = "mdi:refresh"
	c.EntityCategory = "diagnostic"
	c.CommandTopic = b.topic + "/refresh"
	c.PayloadPress = "refresh"
	c.Retain = ptr(false)
	return e
}

func (b *lockBuilder) supports(state string) bool {
	if len(b.l.SupportedStates) == 0 {
		return true
	}
	return slices.ContainsFunc(b.l.SupportedStates, func(s string) bool {
		return strings.EqualFold(strings.TrimSpace(s), state)
	})
}

func newAvailability(topic string) availability {
	return availability{Topic: topic, PayloadAvailable: payloadOnline, PayloadNotAvailable: payloadOffline}
}

// settingNames returns the non-empty setting names in their given order
// without duplicates. Names that become equal as topic levels are kept once,
// because they would share a component key.
func settingNames(settings []string) []string {
	seen := make(map[string]bool, len(settings))
	names := make([]string, 0, len(settings))
	for _, s := range settings {
		if s == "" || seen[topicLevel(s)] {
			continue
		}
		seen[topicLevel(s)] = true
		names = append(names, s)
	}
	return names
}

// entityName returns name for an entity of the device deviceName. Home
// Assistant prefixes entity names with the device name, and warns about and
// strips an entity name that already starts with it. When a lock's name is a
// prefix of a fixed entity name (a lock named "Lock" and "Lock online"), the
// name is put in parentheses so that it no longer starts with the device name.
func entityName(deviceName, name string) *string {
	if deviceName != "" && strings.HasPrefix(strings.ToLower(name), strings.ToLower(deviceName)) {
		name = "(" + name + ")"
	}
	return &name
}

// humanize turns a setting name such as open_house_mode into "Open house
// mode".
func humanize(setting string) string {
	words := strings.FieldsFunc(setting, func(r rune) bool { return r == '_' || r == '-' || r == ' ' })
	if len(words) == 0 {
		return setting
	}
	s := strings.ToLower(strings.Join(words, " "))
	first, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(first)) + s[size:]
}

func ptr[T any](v T) *T { return &v }
