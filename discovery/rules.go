package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// This file checks discovery configs against the rules Home Assistant's MQTT
// integration applies when it loads them (2024.11 to 2025.10 releases), plus
// the conventions of this bridge. A config that breaks one of these rules is
// dropped, or loaded with a warning or a surprise, by Home Assistant. The
// checker is exported so that end-to-end tests can run it on what the bridge
// really publishes.

// Check validates one retained discovery message and returns every rule it
// breaks, joined with errors.Join, or nil. An empty payload (a removal) and
// {"migrate_discovery": true} are valid on any valid config topic. The topic's
// prefix is not known to Check: it takes the component level to be the one
// that names a Home Assistant component.
func Check(topic string, payload []byte) error {
	return errors.Join(CheckConfig(topic, payload)...)
}

// CheckConfig is Check returning the broken rules one by one.
func CheckConfig(topic string, payload []byte) []error {
	t, ok := guessConfigTopic(topic)
	if !ok {
		return []error{fmt.Errorf("%s: not a valid discovery topic: want <prefix>/<component>/[<node_id>/]<object_id>/config "+
			"with a supported component and ids of [a-zA-Z0-9_-]+", topic)}
	}
	if len(payload) == 0 {
		return nil
	}

	var root map[string]any
	if err := json.Unmarshal(payload, &root); err != nil {
		return []error{fmt.Errorf("%s: payload is not a JSON object: %w", topic, err)}
	}
	if isMigration(root) {
		return nil
	}

	c := &checker{topic: topic}
	c.noAbbreviations("", root)
	c.noRetain("", root)
	if t.component == "device" {
		c.deviceConfig(root)
	} else {
		c.singleConfig(t.component, root)
	}
	return c.errs
}

// CheckUniqueIDs returns an error naming every unique_id that occurs in more
// than one entity of payloads, which maps config topics to payloads. Home
// Assistant rejects the second entity of a platform with a known unique_id.
// This check is stricter: unique_ids must be distinct across platforms too.
// Empty payloads are skipped.
func CheckUniqueIDs(payloads map[string][]byte) error {
	var errs []error
	seen := make(map[string]string) // unique_id -> where it was first seen

	for _, topic := range slices.Sorted(maps.Keys(payloads)) {
		payload := payloads[topic]
		if len(payload) == 0 {
			continue
		}
		var root map[string]any
		if err := json.Unmarshal(payload, &root); err != nil {
			errs = append(errs, fmt.Errorf("%s: payload is not a JSON object: %w", topic, err))
			continue
		}

		scopes := map[string]any{topic: root}
		if components, ok := root["components"].(map[string]any); ok {
			scopes = make(map[string]any, len(components))
			for key, comp := range components {
				scopes[topic+" component "+key] = comp
			}
		}
		for _, where := range slices.Sorted(maps.Keys(scopes)) {
			scope, _ := scopes[where].(map[string]any)
			id, _ := scope["unique_id"].(string)
			if id == "" {
				continue
			}
			if first, dup := seen[id]; dup {
				errs = append(errs, fmt.Errorf("unique_id %q is used by %s and by %s", id, first, where))
				continue
			}
			seen[id] = where
		}
	}
	return errors.Join(errs...)
}

func isMigration(root map[string]any) bool {
	return len(root) == 1 && root["migrate_discovery"] == true
}

// checker collects the broken rules of one config.
type checker struct {
	topic string
	errs  []error
}

func (c *checker) fail(where, format string, args ...any) {
	if where != "" {
		where = " " + where
	}
	c.errs = append(c.errs, fmt.Errorf("%s%s: %s", c.topic, where, fmt.Sprintf(format, args...)))
}

// sharedOptions are the options a device-based config's components inherit
// from its root unless they set them themselves.
var sharedOptions = []string{
	"availability", "availability_topic", "availability_mode", "availability_template",
	"payload_available", "payload_not_available", "state_topic", "command_topic",
	"qos", "encoding",
}

func (c *checker) deviceConfig(root map[string]any) {
	deviceName := c.deviceBlock("", root["device"], true)
	c.originBlock("", root["origin"], true)
	c.availabilityScope("", root)
	c.qos("", root)

	components, ok := root["components"].(map[string]any)
	if !ok || len(components) == 0 {
		c.fail("", "components is missing or empty; a device-based config needs at least one component")
		return
	}

	uniqueIDs := make(map[string]string)
	for _, key := range slices.Sorted(maps.Keys(components)) {
		where := fmt.Sprintf("component %q", key)
		if !validIDLevel(key) {
			c.fail(where, "component key must match [a-zA-Z0-9_-]+ because it becomes the object_id")
		}
		comp, ok := components[key].(map[string]any)
		if !ok {
			c.fail(where, "component is not a JSON object")
			continue
		}

		platform, _ := comp["platform"].(string)
		if !c.platform(where, platform) {
			continue
		}
		if len(comp) == 1 {
			continue // {"platform": ...} is the documented removal of one component
		}
		for _, key := range []string{"device", "origin"} {
			if _, ok := comp[key]; ok {
				c.fail(where, "%s is set per component; in a device-based config it belongs at the root only", key)
			}
		}

		id, _ := comp["unique_id"].(string)
		if other, dup := uniqueIDs[id]; dup && id != "" {
			c.fail(where, "unique_id %q is also used by component %q", id, other)
		}
		uniqueIDs[id] = key

		c.entity(where, platform, inherit(comp, root), deviceName)
	}
}

func (c *checker) singleConfig(platform string, cfg map[string]any) {
	if !c.platform("", platform) {
		return
	}
	if p, ok := cfg["platform"]; ok && p != platform {
		c.fail("", "platform %v differs from the topic's component %q", p, platform)
	}

	deviceName := ""
	if dev, ok := cfg["device"]; ok {
		deviceName = c.deviceBlock("", dev, false)
	}
	if orig, ok := cfg["origin"]; ok {
		c.originBlock("", orig, false)
	}
	c.entity("", platform, cfg, deviceName)
}

// platform checks a component's platform and reports whether the entity
// checks can go on.
func (c *checker) platform(where, platform string) bool {
	switch {
	case platform == "":
		c.fail(where, "platform is missing")
		return false
	case platform == "device" || !slices.Contains(supportedComponents, platform):
		c.fail(where, "platform %q is not a Home Assistant MQTT platform", platform)
		return false
	}
	return true
}

// inherit returns comp with the shared options of root it does not set, as
// Home Assistant merges them.
func inherit(comp, root map[string]any) map[string]any {
	merged := maps.Clone(comp)
	for _, key := range sharedOptions {
		if v, ok := root[key]; ok {
			if _, set := merged[key]; !set {
				merged[key] = v
			}
		}
	}
	return merged
}

// deviceBlock checks a device block and returns its name.
func (c *checker) deviceBlock(where string, v any, required bool) string {
	dev, ok := v.(map[string]any)
	if !ok {
		if required || v != nil {
			c.fail(where, "device is missing or not an object; device-based discovery requires it")
		}
		return ""
	}
	if !nonEmptyIDs(dev["identifiers"]) && !nonEmptyList(dev["connections"]) {
		c.fail(where, "device has neither identifiers nor connections; Home Assistant needs one of them to register the device")
	}
	name, _ := dev["name"].(string)
	return name
}

func (c *checker) originBlock(where string, v any, required bool) {
	orig, ok := v.(map[string]any)
	if !ok {
		if required || v != nil {
			c.fail(where, "origin is missing or not an object; device-based discovery requires it")
		}
		return
	}
	if name, _ := orig["name"].(string); name == "" {
		c.fail(where, "origin.name is missing; Home Assistant drops a config whose origin has no name")
	}
}

// requiredOptions lists the options each platform cannot work without.
var requiredOptions = map[string][]string{
	"lock":          {"command_topic"},
	"sensor":        {"state_topic"},
	"binary_sensor": {"state_topic"},
	"event":         {"state_topic", "event_types"},
	"switch":        {"command_topic"},
	"button":        {"command_topic"},
}

// entity checks one entity's merged config.
func (c *checker) entity(where, platform string, cfg map[string]any, deviceName string) {
	for _, key := range requiredOptions[platform] {
		if _, ok := cfg[key]; !ok {
			c.fail(where, "%s requires %s", platform, key)
		}
	}
	if id, _ := cfg["unique_id"].(string); id == "" {
		c.fail(where, "unique_id is missing; without it the entity cannot join a device or be renamed")
	}

	c.availabilityScope(where, cfg)
	c.qos(where, cfg)
	c.topics(where, cfg)
	c.entityCategory(where, platform, cfg)
	c.defaultEntityID(where, platform, cfg)
	c.name(where, cfg, deviceName)

	switch platform {
	case "sensor":
		c.sensor(where, cfg)
	case "binary_sensor":
		c.binarySensor(where, cfg)
	case "lock":
		c.lock(where, cfg)
	case "event":
		c.event(where, cfg)
	case "switch":
		c.distinct(where, cfg, "payload_on", "payload_off")
		c.deviceClass(where, platform, cfg, []string{"outlet", "switch"})
	case "button":
		c.deviceClass(where, platform, cfg, []string{"identify", "restart", "update"})
	}
	if _, ok := cfg["payload_open"]; ok && platform != "lock" {
		c.fail(where, "payload_open is a lock option; %s has no open feature", platform)
	}
}

func (c *checker) availabilityScope(where string, cfg map[string]any) {
	_, list := cfg["availability"]
	_, single := cfg["availability_topic"]
	if list && single {
		c.fail(where, "availability and availability_topic are both set; Home Assistant accepts only one of them")
	}
	if list {
		entries, ok := cfg["availability"].([]any)
		if !ok || len(entries) == 0 {
			c.fail(where, "availability must be a non-empty list")
		}
		for i, e := range entries {
			a, _ := e.(map[string]any)
			if topic, _ := a["topic"].(string); topic == "" {
				c.fail(where, "availability[%d] has no topic", i)
			}
		}
	}
	if mode, ok := cfg["availability_mode"]; ok && !slices.Contains([]any{"all", "any", "latest"}, mode) {
		c.fail(where, "availability_mode %v is invalid: want all, any or latest", mode)
	}
}

func (c *checker) qos(where string, cfg map[string]any) {
	v, ok := cfg["qos"]
	if !ok {
		return
	}
	if q, isNumber := v.(float64); !isNumber || (q != 0 && q != 1 && q != 2) {
		c.fail(where, "qos %v is invalid: want 0, 1 or 2", v)
	}
}

// topics checks every option ending in _topic: a non-empty string, and for
// command topics, which Home Assistant publishes to, no wildcard.
func (c *checker) topics(where string, cfg map[string]any) {
	for _, key := range slices.Sorted(maps.Keys(cfg)) {
		if !strings.HasSuffix(key, "_topic") {
			continue
		}
		topic, ok := cfg[key].(string)
		if !ok || topic == "" {
			c.fail(where, "%s must be a non-empty string", key)
			continue
		}
		if strings.HasPrefix(key, "command") && strings.ContainsAny(topic, "+#") {
			c.fail(where, "%s %q contains a wildcard; Home Assistant cannot publish to it", key, topic)
		}
	}
}

func (c *checker) entityCategory(where, platform string, cfg map[string]any) {
	category, ok := cfg["entity_category"]
	if !ok {
		return
	}
	if category != "config" && category != "diagnostic" {
		c.fail(where, "entity_category %v is invalid: want config or diagnostic", category)
	}
	if category == "config" && (platform == "sensor" || platform == "binary_sensor") {
		c.fail(where, "a %s cannot have entity_category config; Home Assistant refuses to add it, use diagnostic", platform)
	}
}

// defaultEntityID checks the suggested entity id against Home Assistant's
// entity id rule: <domain>.<object>, both of [a-z0-9_] without leading,
// trailing or doubled underscores.
func (c *checker) defaultEntityID(where, platform string, cfg map[string]any) {
	v, ok := cfg["default_entity_id"]
	if !ok {
		return
	}
	s, _ := v.(string)
	domain, object, found := strings.Cut(s, ".")
	if !found || domain != platform || !validEntitySlug(object) {
		c.fail(where, "default_entity_id %v is invalid: want %s.<object> with object of [a-z0-9_], "+
			"no leading, trailing or doubled underscore", v, platform)
	}
}

func validEntitySlug(s string) bool {
	if s == "" || strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// name checks that an entity name does not repeat the device name. Home
// Assistant shows entity names after the device name, and warns about and
// strips a name that starts with it.
func (c *checker) name(where string, cfg map[string]any, deviceName string) {
	name, ok := cfg["name"].(string)
	if !ok || deviceName == "" {
		return
	}
	if strings.HasPrefix(strings.ToLower(name), strings.ToLower(deviceName)) {
		c.fail(where, "name %q starts with the device name %q; Home Assistant adds the device name itself", name, deviceName)
	}
}

// sensorUnits maps the sensor device classes this checker supports to the
// units Home Assistant allows for them (its DEVICE_CLASS_UNITS table). A nil
// list means the class takes no unit.
var sensorUnits = map[string][]string{
	"battery":         {"%"},
	"signal_strength": {"dB", "dBm"},
	"humidity":        {"%"},
	"voltage":         {"V", "mV", "µV", "kV", "MV"},
	"temperature":     {"°C", "°F", "K"},
	"duration":        {"d", "h", "min", "s", "ms", "µs"},
	"enum":            nil,
	"timestamp":       nil,
	"date":            nil,
}

var stateClasses = []string{"measurement", "measurement_angle", "total", "total_increasing"}

func (c *checker) sensor(where string, cfg map[string]any) {
	class, hasClass := cfg["device_class"].(string)
	unit, hasUnit := cfg["unit_of_measurement"].(string)
	stateClass, hasStateClass := cfg["state_class"].(string)

	if hasStateClass && !slices.Contains(stateClasses, stateClass) {
		c.fail(where, "state_class %q is invalid: want one of %s", stateClass, strings.Join(stateClasses, ", "))
	}

	if hasClass {
		units, known := sensorUnits[class]
		switch {
		case !known:
			c.fail(where, "sensor device_class %q is not one this checker knows; add it with its units", class)
		case units == nil && hasUnit:
			c.fail(where, "device_class %q takes no unit_of_measurement, got %q", class, unit)
		case units != nil && !slices.Contains(units, unit):
			c.fail(where, "unit_of_measurement %q is not valid together with device_class %q; want one of %s",
				unit, class, strings.Join(units, ", "))
		}
		if known && units == nil && hasStateClass {
			c.fail(where, "device_class %q takes no state_class, got %q", class, stateClass)
		}
	}

	options, hasOptions := cfg["options"]
	if class == "enum" && !nonEmptyList(options) {
		c.fail(where, "device_class enum requires a non-empty options list")
	}
	if hasOptions && class != "enum" {
		c.fail(where, "options is set but device_class is %q; options belong to enum sensors", class)
	}
}

var binarySensorClasses = []string{
	"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
	"garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
	"occupancy", "opening", "plug", "power", "presence", "problem", "running",
	"safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}

func (c *checker) binarySensor(where string, cfg map[string]any) {
	c.deviceClass(where, "binary_sensor", cfg, binarySensorClasses)
	for _, key := range []string{"unit_of_measurement", "state_class", "options"} {
		if _, ok := cfg[key]; ok {
			c.fail(where, "%s is a sensor option; a binary_sensor has none", key)
		}
	}
	c.distinct(where, cfg, "payload_on", "payload_off")
}

func (c *checker) deviceClass(where, platform string, cfg map[string]any, valid []string) {
	class, ok := cfg["device_class"]
	if !ok {
		return
	}
	if s, _ := class.(string); !slices.Contains(valid, s) {
		c.fail(where, "device_class %v is invalid for %s: want one of %s", class, platform, strings.Join(valid, ", "))
	}
}

func (c *checker) lock(where string, cfg map[string]any) {
	c.distinct(where, cfg, "payload_lock", "payload_unlock", "payload_open")
	if open, ok := cfg["payload_open"]; ok {
		if s, _ := open.(string); s == "" {
			c.fail(where, "payload_open must be a non-empty string; leave it out when the lock cannot open")
		}
	}

	format, ok := cfg["code_format"]
	if !ok {
		return
	}
	s, _ := format.(string)
	if _, err := regexp.Compile(s); s == "" || err != nil {
		c.fail(where, "code_format %v is not a valid regular expression", format)
	}
	if tpl, _ := cfg["command_template"].(string); !strings.Contains(tpl, "code") {
		c.fail(where, "code_format is set but command_template does not use code, so the code never reaches the bridge")
	}
}

func (c *checker) event(where string, cfg map[string]any) {
	types, ok := cfg["event_types"].([]any)
	if !ok || len(types) == 0 {
		c.fail(where, "event_types must be a non-empty list")
	}
	for i, t := range types {
		if s, _ := t.(string); s == "" {
			c.fail(where, "event_types[%d] must be a non-empty string", i)
		}
	}
	c.deviceClass(where, "event", cfg, []string{"button", "doorbell", "motion"})
}

// distinct fails when two of the given options are set to the same value,
// which would make Home Assistant unable to tell the commands or states
// apart.
func (c *checker) distinct(where string, cfg map[string]any, keys ...string) {
	seen := make(map[any]string)
	for _, key := range keys {
		v, ok := cfg[key]
		if !ok {
			continue
		}
		if other, dup := seen[v]; dup {
			c.fail(where, "%s and %s are both %v", other, key, v)
		}
		seen[v] = key
	}
}

// noRetain fails on "retain": true anywhere in the config. Home Assistant
// would publish commands retained, and the broker would replay a retained
// command, such as opening the door, to the bridge after every reconnect.
func (c *checker) noRetain(path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, key := range slices.Sorted(maps.Keys(v)) {
			if key == "retain" && v[key] == true {
				c.fail(path, "retain is true; commands must not be published retained")
			}
			c.noRetain(strings.TrimPrefix(path+"."+key, "."), v[key])
		}
	case []any:
		for i, e := range v {
			c.noRetain(fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

// abbreviations are short option names Home Assistant expands. This bridge
// writes full names so that configs read well with mosquitto_sub. The checker
// reads full names only, so it rejects the common abbreviations.
var abbreviations = []string{
	"~", "avty", "avty_t", "cmd_t", "cmd_tpl", "cmps", "dev", "dev_cla", "ent_cat",
	"json_attr_t", "o", "p", "pl_avail", "pl_not_avail", "pl_off", "pl_on", "pl_open",
	"ret", "stat_cla", "stat_t", "uniq_id", "unit_of_meas", "val_tpl",
}

func (c *checker) noAbbreviations(path string, root map[string]any) {
	check := func(where string, scope map[string]any) {
		for _, key := range slices.Sorted(maps.Keys(scope)) {
			if slices.Contains(abbreviations, key) {
				c.fail(where, "option %q is abbreviated; write the full option name", key)
			}
		}
	}
	check(path, root)
	components, _ := root["components"].(map[string]any)
	for _, key := range slices.Sorted(maps.Keys(components)) {
		if comp, ok := components[key].(map[string]any); ok {
			check(fmt.Sprintf("component %q", key), comp)
		}
	}
}

func nonEmptyIDs(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	}
	return false
}

func nonEmptyList(v any) bool {
	list, ok := v.([]any)
	return ok && len(list) > 0
}
