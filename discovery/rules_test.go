package discovery

import (
	"encoding/json"
	"strings"
	"testing"
)

// mutate decodes a config, lets edit break it and encodes it again.
func mutate(t *testing.T, payload []byte, edit func(cfg map[string]any)) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(payload, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// comp returns one component of a device-based config for editing.
func comp(cfg map[string]any, key string) map[string]any {
	return cfg["components"].(map[string]any)[key].(map[string]any)
}

func TestCheck_RejectsBrokenDeviceConfig(t *testing.T) {
	o := testOptions(ModeDevice)
	o.CodeFormat = `^\d{4,8}$`
	valid := LockMessages(o, fixtureLock(t))[0]
	if err := Check(valid.Topic, valid.Payload); err != nil {
		t.Fatalf("the unbroken config fails: %v", err)
	}

	tests := []struct {
		name string
		edit func(cfg map[string]any)
		want string // part of the expected error
	}{
		{"no device", func(c map[string]any) { delete(c, "device") }, "device is missing"},
		{"device without ids", func(c map[string]any) { delete(c["device"].(map[string]any), "identifiers") }, "neither identifiers nor connections"},
		{"empty identifiers", func(c map[string]any) { c["device"].(map[string]any)["identifiers"] = []any{} }, "neither identifiers nor connections"},
		{"no origin", func(c map[string]any) { delete(c, "origin") }, "origin is missing"},
		{"origin without name", func(c map[string]any) { delete(c["origin"].(map[string]any), "name") }, "origin.name is missing"},
		{"no components", func(c map[string]any) { c["components"] = map[string]any{} }, "components is missing"},
		{"component without platform", func(c map[string]any) { delete(comp(c, "battery"), "platform") }, "platform is missing"},
		{"unknown platform", func(c map[string]any) { comp(c, "battery")["platform"] = "gauge" }, `platform "gauge"`},
		{"illegal component key", func(c map[string]any) {
			comps := c["components"].(map[string]any)
			comps["bat tery"] = comps["battery"]
			delete(comps, "battery")
		}, "must match [a-zA-Z0-9_-]+"},
		{"component without unique_id", func(c map[string]any) { delete(comp(c, "battery"), "unique_id") }, "unique_id is missing"},
		{"repeated unique_id", func(c map[string]any) {
			comp(c, "battery_type")["unique_id"] = comp(c, "battery")["unique_id"]
		}, "is also used by component"},
		{"device per component", func(c map[string]any) { comp(c, "battery")["device"] = c["device"] }, "device is set per component"},
		{"lock without command_topic", func(c map[string]any) { delete(comp(c, "lock"), "command_topic") }, "lock requires command_topic"},
		{"sensor without state_topic", func(c map[string]any) { delete(comp(c, "battery"), "state_topic") }, "sensor requires state_topic"},
		{"binary_sensor without state_topic", func(c map[string]any) { delete(comp(c, "online"), "state_topic") }, "binary_sensor requires state_topic"},
		{"event without event_types", func(c map[string]any) { delete(comp(c, "event"), "event_types") }, "event requires event_types"},
		{"event with empty event_types", func(c map[string]any) { comp(c, "event")["event_types"] = []any{} }, "event_types must be a non-empty list"},
		{"switch without command_topic", func(c map[string]any) {
			delete(comp(c, "setting_twist_assist"), "command_topic")
		}, "switch requires command_topic"},
		{"button without command_topic", func(c map[string]any) { delete(comp(c, "refresh"), "command_topic") }, "button requires command_topic"},
		{"battery in volts", func(c map[string]any) { comp(c, "battery")["unit_of_measurement"] = "V" }, `"V" is not valid together with device_class "battery"`},
		{"battery without unit", func(c map[string]any) { delete(comp(c, "battery"), "unit_of_measurement") }, `device_class "battery"`},
		{"signal_strength in percent", func(c map[string]any) {
			comp(c, "wifi_strength")["device_class"] = "signal_strength"
		}, `"%" is not valid together with device_class "signal_strength"`},
		{"enum with unit", func(c map[string]any) { comp(c, "battery_type")["unit_of_measurement"] = "%" }, "takes no unit_of_measurement"},
		{"enum with state_class", func(c map[string]any) { comp(c, "battery_type")["state_class"] = "measurement" }, "takes no state_class"},
		{"enum without options", func(c map[string]any) { delete(comp(c, "battery_type"), "options") }, "requires a non-empty options list"},
		{"options without enum", func(c map[string]any) { comp(c, "battery")["options"] = []any{"a"} }, "options belong to enum sensors"},
		{"unknown sensor class", func(c map[string]any) { comp(c, "last_changed_by")["device_class"] = "person" }, `device_class "person"`},
		{"invalid state_class", func(c map[string]any) { comp(c, "battery")["state_class"] = "average" }, `state_class "average"`},
		{"binary_sensor class", func(c map[string]any) { comp(c, "online")["device_class"] = "online" }, "invalid for binary_sensor"},
		{"binary_sensor with unit", func(c map[string]any) { comp(c, "online")["unit_of_measurement"] = "%" }, "a binary_sensor has none"},
		{"binary_sensor same payloads", func(c map[string]any) { comp(c, "online")["payload_off"] = "online" }, "payload_on and payload_off are both"},
		{"sensor in config category", func(c map[string]any) { comp(c, "battery")["entity_category"] = "config" }, "a sensor cannot have entity_category config"},
		{"binary_sensor in config category", func(c map[string]any) {
			comp(c, "motor_stall")["entity_category"] = "config"
		}, "a binary_sensor cannot have entity_category config"},
		{"invalid entity_category", func(c map[string]any) { comp(c, "refresh")["entity_category"] = "system" }, "entity_category system is invalid"},
		{"retained lock commands", func(c map[string]any) { comp(c, "lock")["retain"] = true }, "retain is true"},
		{"retained switch commands", func(c map[string]any) {
			comp(c, "setting_twist_assist")["retain"] = true
		}, "retain is true"},
		{"retain at root", func(c map[string]any) { c["retain"] = true }, "retain is true"},
		{"availability twice at root", func(c map[string]any) { c["availability_topic"] = "loqed/bridge/state" }, "availability and availability_topic are both set"},
		{"availability twice after merge", func(c map[string]any) {
			delete(c, "availability")
			c["availability_topic"] = "loqed/bridge/state"
		}, `component "online": availability and availability_topic are both set`},
		{"availability without topic", func(c map[string]any) { c["availability"] = []any{map[string]any{}} }, "availability[0] has no topic"},
		{"invalid availability_mode", func(c map[string]any) { c["availability_mode"] = "both" }, "availability_mode both is invalid"},
		{"invalid qos", func(c map[string]any) { c["qos"] = 3 }, "qos 3 is invalid"},
		{"wildcard command topic", func(c map[string]any) { comp(c, "lock")["command_topic"] = "loqed/+/set" }, "contains a wildcard"},
		{"empty state topic", func(c map[string]any) { comp(c, "battery")["state_topic"] = "" }, "state_topic must be a non-empty string"},
		{"payload_open on a switch", func(c map[string]any) {
			comp(c, "setting_twist_assist")["payload_open"] = "open"
		}, "payload_open is a lock option"},
		{"empty payload_open", func(c map[string]any) { comp(c, "lock")["payload_open"] = "" }, "payload_open must be a non-empty string"},
		{"open equals unlock", func(c map[string]any) { comp(c, "lock")["payload_open"] = "day_lock" }, "payload_unlock and payload_open are both day_lock"},
		{"code_format without template", func(c map[string]any) { delete(comp(c, "lock"), "command_template") }, "command_template does not use code"},
		{"invalid code_format", func(c map[string]any) { comp(c, "lock")["code_format"] = "^(\\d" }, "not a valid regular expression"},
		{"name starts with device name", func(c map[string]any) { comp(c, "battery")["name"] = "Front door battery" }, "starts with the device name"},
		{"name starts with device name in other case", func(c map[string]any) {
			comp(c, "battery")["name"] = "front door battery"
		}, "starts with the device name"},
		{"default_entity_id of other domain", func(c map[string]any) {
			comp(c, "battery")["default_entity_id"] = "binary_sensor.loqed_battery"
		}, "default_entity_id binary_sensor.loqed_battery is invalid"},
		{"default_entity_id with upper case", func(c map[string]any) {
			comp(c, "battery")["default_entity_id"] = "sensor.Loqed_battery"
		}, "is invalid"},
		{"default_entity_id with double underscore", func(c map[string]any) {
			comp(c, "battery")["default_entity_id"] = "sensor.loqed__battery"
		}, "is invalid"},
		{"abbreviated option", func(c map[string]any) {
			b := comp(c, "battery")
			b["stat_t"] = b["state_topic"]
		}, `option "stat_t" is abbreviated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := mutate(t, valid.Payload, tt.edit)
			err := Check(valid.Topic, payload)
			if err == nil {
				t.Fatalf("Check accepted the broken config %s", payload)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCheck_RejectsBrokenSingleConfig(t *testing.T) {
	msgs := LockMessages(testOptions(ModeComponent), fixtureLock(t))
	lock := msgs[0]
	if !strings.HasPrefix(lock.Topic, "homeassistant/lock/") {
		t.Fatalf("first component topic = %s; want the lock", lock.Topic)
	}

	tests := []struct {
		name string
		edit func(cfg map[string]any)
		want string
	}{
		{"platform differs from topic", func(c map[string]any) { c["platform"] = "switch" }, "differs from the topic's component"},
		{"no unique_id", func(c map[string]any) { delete(c, "unique_id") }, "unique_id is missing"},
		{"device without ids", func(c map[string]any) { delete(c["device"].(map[string]any), "identifiers") }, "neither identifiers nor connections"},
		{"origin without name", func(c map[string]any) { c["origin"] = map[string]any{"sw_version": "1"} }, "origin.name is missing"},
		{"no command_topic", func(c map[string]any) { delete(c, "command_topic") }, "lock requires command_topic"},
		{"retain", func(c map[string]any) { c["retain"] = true }, "retain is true"},
		{"both availability forms", func(c map[string]any) { c["availability_topic"] = "loqed/bridge/state" }, "are both set"},
		{"name starts with device name", func(c map[string]any) { c["name"] = "Front door lock" }, "starts with the device name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := mutate(t, lock.Payload, tt.edit)
			err := Check(lock.Topic, payload)
			if err == nil {
				t.Fatalf("Check accepted the broken config %s", payload)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCheck_Topics(t *testing.T) {
	valid := `{"state_topic":"loqed/x/battery","unique_id":"u"}`
	tests := []struct {
		topic   string
		payload string
		ok      bool
	}{
		{"homeassistant/sensor/node/object/config", valid, true},
		{"homeassistant/sensor/object/config", valid, true},
		{"my/prefix/sensor/node/object/config", valid, true},
		{"homeassistant/sensor/no-de_1/obj-2/config", valid, true},
		{"homeassistant/sensor/no.de/object/config", valid, false},
		{"homeassistant/sensor/a/b/c/config", valid, false},
		{"homeassistant/gauge/node/object/config", valid, false},
		{"homeassistant/sensor/node/object/state", valid, false},
		{"sensor/object/config", valid, false},
		{"homeassistant/sensor/node/object/config", "", true},
		{"homeassistant/device/node/config", `{"migrate_discovery":true}`, true},
		{"homeassistant/sensor/no.de/object/config", "", false},
		{"homeassistant/sensor/node/object/config", "not json", false},
		{"homeassistant/sensor/node/object/config", `["a"]`, false},
	}
	for _, tt := range tests {
		err := Check(tt.topic, []byte(tt.payload))
		if (err == nil) != tt.ok {
			t.Errorf("Check(%q, %q) = %v; want ok = %v", tt.topic, tt.payload, err, tt.ok)
		}
	}
}

func TestCheck_RemovalStub(t *testing.T) {
	payload := []byte(`{"device":{"identifiers":["d"],"name":"D"},"origin":{"name":"o"},` +
		`"components":{"old":{"platform":"switch"},"new":{"platform":"sensor","unique_id":"d_new","state_topic":"t"}}}`)
	if err := Check("homeassistant/device/d/config", payload); err != nil {
		t.Errorf("Check rejects a removal stub: %v", err)
	}
}

func TestCheckUniqueIDs_Repeated(t *testing.T) {
	l := fixtureLock(t)
	device := LockMessages(testOptions(ModeDevice), l)[0]

	// The same lock under a second device topic repeats every unique_id.
	payloads := map[string][]byte{
		device.Topic:                             device.Payload,
		"homeassistant/device/loqed_copy/config": device.Payload,
	}
	err := CheckUniqueIDs(payloads)
	if err == nil {
		t.Fatal("CheckUniqueIDs accepted two configs with the same unique_ids")
	}
	if !strings.Contains(err.Error(), `"loqed_Ab3dEf6hIj9kLm2nOp5q_battery"`) {
		t.Errorf("error = %v; want it to name loqed_Ab3dEf6hIj9kLm2nOp5q_battery", err)
	}

	// Single-component configs are compared by their root unique_id.
	payloads = map[string][]byte{
		"homeassistant/sensor/a/x/config": []byte(`{"unique_id":"same"}`),
		"homeassistant/sensor/b/x/config": []byte(`{"unique_id":"same"}`),
		"homeassistant/sensor/c/x/config": nil,
	}
	if err := CheckUniqueIDs(payloads); err == nil {
		t.Error("CheckUniqueIDs accepted two single-component configs with one unique_id")
	}

	if err := CheckUniqueIDs(map[string][]byte{"homeassistant/sensor/a/x/config": []byte("{")}); err == nil {
		t.Error("CheckUniqueIDs accepted a payload that is not JSON")
	}
}
