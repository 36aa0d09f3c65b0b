package discovery

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testOptions are the options of a bridge with every command allowed.
func testOptions(mode Mode) Options {
	return Options{
		Prefix:        "homeassistant",
		BaseTopic:     "loqed",
		BridgeID:      "loqed2mqtt_loqed",
		Origin:        Origin{Name: "loqed2mqtt", SWVersion: "1.2.3", SupportURL: "https://example.invalid/loqed2mqtt/issues"},
		Mode:          mode,
		AllowOpen:     true,
		AllowLock:     true,
		AllowSettings: true,
	}
}

// fixtureLock returns the lock of the recorded Integrations API lock list.
func fixtureLock(t testing.TB) Lock {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "cloud_locks_list.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct {
			ID              string   `json:"id"`
			Name            string   `json:"name"`
			SupportedStates []string `json:"supported_lock_states"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("cannot decode the lock list fixture: %v", err)
	}
	if len(list.Data) != 1 {
		t.Fatalf("lock list fixture has %d locks; want 1", len(list.Data))
	}
	l := list.Data[0]
	return Lock{
		ID:              l.ID,
		Name:            l.Name,
		SupportedStates: l.SupportedStates,
		Settings:        []string{"open_house_mode", "twist_assist", "touch_to_connect"},
	}
}

type goldenCase struct {
	name string
	msgs []Message
}

// goldenCases are the configs kept in testdata for review.
func goldenCases(t testing.TB) []goldenCase {
	lock := fixtureLock(t)

	twoStates := lock
	twoStates.SupportedStates = []string{"day_lock", "night_lock"}

	openDenied := testOptions(ModeDevice)
	openDenied.AllowOpen = false

	withCode := testOptions(ModeDevice)
	withCode.CodeFormat = `^\d{4,8}$`

	readOnly := testOptions(ModeDevice)
	readOnly.AllowOpen, readOnly.AllowLock, readOnly.AllowSettings = false, false, false

	return []goldenCase{
		{"lock_device", LockMessages(testOptions(ModeDevice), lock)},
		{"lock_component", LockMessages(testOptions(ModeComponent), lock)},
		{"lock_two_states", LockMessages(testOptions(ModeDevice), twoStates)},
		{"lock_open_denied", LockMessages(openDenied, lock)},
		{"lock_code_format", LockMessages(withCode, lock)},
		{"lock_read_only", LockMessages(readOnly, lock)},
		{"bridge_device", BridgeMessages(testOptions(ModeDevice))},
		{"bridge_component", BridgeMessages(testOptions(ModeComponent))},
	}
}

// render pretty-prints messages as a JSON list of topic and payload.
func render(t *testing.T, msgs []Message) []byte {
	t.Helper()
	type entry struct {
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	entries := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		if !json.Valid(m.Payload) {
			t.Fatalf("%s: payload is not valid JSON: %s", m.Topic, m.Payload)
		}
		entries = append(entries, entry{Topic: m.Topic, Payload: m.Payload})
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(entries); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, tc.msgs)
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v; run go test -update to create it", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("configs differ from %s; run go test -update and review the diff\ngot:\n%s", path, got)
			}
		})
	}
}

func TestGolden_PassesChecks(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			payloads := make(map[string][]byte)
			for _, m := range tc.msgs {
				if err := Check(m.Topic, m.Payload); err != nil {
					t.Errorf("Check: %v", err)
				}
				payloads[m.Topic] = m.Payload
			}
			if err := CheckUniqueIDs(payloads); err != nil {
				t.Errorf("CheckUniqueIDs: %v", err)
			}
		})
	}
}

func TestLockMessages_DeviceMode(t *testing.T) {
	msgs := LockMessages(testOptions(ModeDevice), fixtureLock(t))
	if len(msgs) != 1 {
		t.Fatalf("got %d messages; want 1", len(msgs))
	}
	if want := "homeassistant/device/loqed_Ab3dEf6hIj9kLm2nOp5q/config"; msgs[0].Topic != want {
		t.Errorf("Topic = %q; want %q", msgs[0].Topic, want)
	}
}

func TestLockMessages_ComponentTopics(t *testing.T) {
	o := testOptions(ModeComponent)
	l := fixtureLock(t)
	msgs := LockMessages(o, l)

	var keys []string
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Topic, "homeassistant/")
		levels := strings.Split(rest, "/")
		if !ok || len(levels) != 4 || levels[1] != "loqed_Ab3dEf6hIj9kLm2nOp5q" || levels[3] != "config" {
			t.Errorf("topic %q; want homeassistant/<platform>/loqed_Ab3dEf6hIj9kLm2nOp5q/<key>/config", m.Topic)
			continue
		}
		var cfg map[string]any
		if err := json.Unmarshal(m.Payload, &cfg); err != nil {
			t.Fatal(err)
		}
		if want := "loqed_Ab3dEf6hIj9kLm2nOp5q_" + levels[2]; cfg["unique_id"] != want {
			t.Errorf("%s: unique_id = %v; want %s", m.Topic, cfg["unique_id"], want)
		}
		keys = append(keys, levels[0]+"/"+levels[2])
	}

	want := []string{
		"lock/lock", "sensor/battery", "sensor/battery_type", "sensor/wifi_strength",
		"sensor/ble_strength", "binary_sensor/online", "binary_sensor/motor_stall",
		"sensor/last_changed_by", "event/event", "switch/setting_open_house_mode",
		"switch/setting_twist_assist", "switch/setting_touch_to_connect", "button/refresh",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("components = %v; want %v", keys, want)
	}
	if got := Topics(o, l); !slices.Equal(got, topicsOf(msgs)) {
		t.Errorf("Topics = %v; want the topics of LockMessages %v", got, topicsOf(msgs))
	}
}

// lockComponents decodes the components of a device-based lock config.
func lockComponents(t *testing.T, o Options, l Lock) map[string]map[string]any {
	t.Helper()
	o.Mode = ModeDevice
	msgs := LockMessages(o, l)
	var cfg struct {
		Components map[string]map[string]any `json:"components"`
	}
	if err := json.Unmarshal(msgs[0].Payload, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Components
}

func TestLockMessages_PayloadOpen(t *testing.T) {
	tests := []struct {
		name      string
		allowOpen bool
		supported []string
		want      bool
	}{
		{"allowed and supported", true, []string{"open", "day_lock", "night_lock"}, true},
		{"allowed, states unknown", true, nil, true},
		{"allowed, upper case state", true, []string{"OPEN", "DAY_LOCK"}, true},
		{"allowed, not supported", true, []string{"day_lock", "night_lock"}, false},
		{"denied and supported", false, []string{"open", "day_lock", "night_lock"}, false},
		{"denied, states unknown", false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(ModeDevice)
			o.AllowOpen = tt.allowOpen
			l := fixtureLock(t)
			l.SupportedStates = tt.supported

			lock := lockComponents(t, o, l)["lock"]
			_, got := lock["payload_open"]
			if got != tt.want {
				t.Errorf("payload_open present = %v; want %v", got, tt.want)
			}
			if got && lock["payload_open"] != "open" {
				t.Errorf("payload_open = %v; want open", lock["payload_open"])
			}
		})
	}
}

func TestLockMessages_CodeFormat(t *testing.T) {
	o := testOptions(ModeDevice)
	l := fixtureLock(t)

	lock := lockComponents(t, o, l)["lock"]
	for _, key := range []string{"code_format", "command_template"} {
		if _, ok := lock[key]; ok {
			t.Errorf("%s is set without CodeFormat", key)
		}
	}

	o.CodeFormat = `^\d{4,8}$`
	lock = lockComponents(t, o, l)["lock"]
	if lock["code_format"] != o.CodeFormat {
		t.Errorf("code_format = %v; want %q", lock["code_format"], o.CodeFormat)
	}
	if want := `{"action":"{{ value }}","code":"{{ code }}"}`; lock["command_template"] != want {
		t.Errorf("command_template = %v; want %s", lock["command_template"], want)
	}
}

func TestLockMessages_ReadOnly(t *testing.T) {
	o := testOptions(ModeDevice)
	o.AllowLock, o.AllowSettings = false, false
	comps := lockComponents(t, o, fixtureLock(t))

	if got := comps["lock"]; len(got) != 1 || got["platform"] != "lock" {
		t.Errorf("lock component = %v; want the removal stub {platform: lock}", got)
	}
	state := comps["lock_state"]
	if state["platform"] != "sensor" || state["device_class"] != "enum" || state["state_topic"] != "loqed/Ab3dEf6hIj9kLm2nOp5q/state" {
		t.Errorf("lock_state = %v; want an enum sensor on the state topic", state)
	}

	for _, s := range []string{"open_house_mode", "twist_assist", "touch_to_connect"} {
		if got := comps["setting_"+s]; len(got) != 1 || got["platform"] != "switch" {
			t.Errorf("setting_%s = %v; want the removal stub {platform: switch}", s, got)
		}
		status := comps["setting_"+s+"_status"]
		if status["platform"] != "binary_sensor" || status["entity_category"] != "diagnostic" {
			t.Errorf("setting_%s_status = %v; want a diagnostic binary_sensor", s, status)
		}
		if _, ok := status["command_topic"]; ok {
			t.Errorf("setting_%s_status has a command_topic", s)
		}
	}

	o.Mode = ModeComponent
	for _, m := range LockMessages(o, fixtureLock(t)) {
		if strings.Contains(m.Topic, "/lock/") || strings.Contains(m.Topic, "/switch/") {
			t.Errorf("read-only lock publishes %s", m.Topic)
		}
	}
}

func TestLockMessages_Settings(t *testing.T) {
	l := fixtureLock(t)
	l.Settings = []string{"twist_assist", "", "twist_assist", "Auto-Lock"}
	comps := lockComponents(t, testOptions(ModeDevice), l)

	var settings []string
	for key := range comps {
		if strings.HasPrefix(key, "setting_") && !strings.HasSuffix(key, "_status") {
			settings = append(settings, key)
		}
	}
	slices.Sort(settings)
	if want := []string{"setting_Auto-Lock", "setting_twist_assist"}; !slices.Equal(settings, want) {
		t.Fatalf("setting components = %v; want %v", settings, want)
	}

	auto := comps["setting_Auto-Lock"]
	checks := map[string]any{
		"name":              "Auto lock",
		"unique_id":         "loqed_Ab3dEf6hIj9kLm2nOp5q_setting_Auto-Lock",
		"default_entity_id": "switch.loqed_ab3def6hij9klm2nop5q_setting_auto_lock",
		"state_topic":       "loqed/Ab3dEf6hIj9kLm2nOp5q/settings/Auto-Lock",
		"command_topic":     "loqed/Ab3dEf6hIj9kLm2nOp5q/settings/Auto-Lock/set",
		"entity_category":   "config",
		"retain":            false,
		"optimistic":        false,
	}
	for key, want := range checks {
		if auto[key] != want {
			t.Errorf("%s = %v; want %v", key, auto[key], want)
		}
	}
}

func TestLockMessages_NameStartingWithDeviceName(t *testing.T) {
	l := fixtureLock(t)
	l.Name = "Lock"
	msgs := LockMessages(testOptions(ModeDevice), l)
	if err := Check(msgs[0].Topic, msgs[0].Payload); err != nil {
		t.Errorf("Check: %v", err)
	}
	if got := lockComponents(t, testOptions(ModeDevice), l)["online"]["name"]; got != "(Lock online)" {
		t.Errorf("online name = %v; want (Lock online)", got)
	}
}

func TestLockMessages_Defaults(t *testing.T) {
	l := Lock{ID: "x-1"}
	msgs := LockMessages(Options{}, l)
	if len(msgs) != 1 || msgs[0].Topic != "homeassistant/device/loqed_x-1/config" {
		t.Fatalf("messages = %v; want one at homeassistant/device/loqed_x-1/config", topicsOf(msgs))
	}
	if err := Check(msgs[0].Topic, msgs[0].Payload); err != nil {
		t.Errorf("Check: %v", err)
	}

	var cfg struct {
		Device     deviceInfo                `json:"device"`
		Origin     originInfo                `json:"origin"`
		Components map[string]map[string]any `json:"components"`
	}
	if err := json.Unmarshal(msgs[0].Payload, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Device.Name != "LOQED x-1" || cfg.Device.Model != DefaultModel || cfg.Device.ViaDevice != "loqed2mqtt_loqed" {
		t.Errorf("device = %+v; want name LOQED x-1, model %q, via_device loqed2mqtt_loqed", cfg.Device, DefaultModel)
	}
	if cfg.Origin.Name != "loqed2mqtt" {
		t.Errorf("origin.name = %q; want loqed2mqtt", cfg.Origin.Name)
	}
	// Default options allow no command: the state is a sensor and there is
	// no lock entity.
	if _, ok := cfg.Components["lock_state"]; !ok {
		t.Errorf("components %v lack lock_state", cfg.Components)
	}
	if got := cfg.Components["battery"]["default_entity_id"]; got != "sensor.loqed_x_1_battery" {
		t.Errorf("battery default_entity_id = %v; want sensor.loqed_x_1_battery", got)
	}
}

func TestLockMessages_UnsafeIDInDiscoveryTopic(t *testing.T) {
	msgs := LockMessages(testOptions(ModeComponent), Lock{ID: "a.b", Name: "Door"})
	for _, m := range msgs {
		if !strings.Contains(m.Topic, "/loqed_a_b/") {
			t.Errorf("topic %q; want node id loqed_a_b", m.Topic)
		}
		if err := Check(m.Topic, m.Payload); err != nil {
			t.Errorf("Check: %v", err)
		}
	}
}

func TestBridgeMessages(t *testing.T) {
	msgs := BridgeMessages(testOptions(ModeDevice))
	if len(msgs) != 1 || msgs[0].Topic != "homeassistant/device/loqed2mqtt_loqed/config" {
		t.Fatalf("topics = %v; want homeassistant/device/loqed2mqtt_loqed/config", topicsOf(msgs))
	}
	var cfg map[string]any
	if err := json.Unmarshal(msgs[0].Payload, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg["availability"]; ok {
		t.Error("bridge config has availability; its connectivity sensor could not show disconnected")
	}

	o := testOptions(ModeComponent)
	o.BridgeID = ""
	o.BaseTopic = "home/loqed"
	want := []string{
		"homeassistant/binary_sensor/loqed2mqtt_home_loqed/connectivity/config",
		"homeassistant/sensor/loqed2mqtt_home_loqed/version/config",
	}
	if got := topicsOf(BridgeMessages(o)); !slices.Equal(got, want) {
		t.Errorf("component topics = %v; want %v", got, want)
	}
}

func TestRemoveLock(t *testing.T) {
	l := fixtureLock(t)
	removals := RemoveLock(testOptions(ModeDevice), l)

	got := make(map[string]bool)
	for _, m := range removals {
		if len(m.Payload) != 0 {
			t.Errorf("%s: payload %q; want empty", m.Topic, m.Payload)
		}
		if got[m.Topic] {
			t.Errorf("%s is removed twice", m.Topic)
		}
		got[m.Topic] = true
	}

	// Every topic of every mode and permission combination is cleared.
	for _, mode := range []Mode{ModeDevice, ModeComponent} {
		for _, allow := range []bool{true, false} {
			o := testOptions(mode)
			o.AllowOpen, o.AllowLock, o.AllowSettings = allow, allow, allow
			for _, topic := range Topics(o, l) {
				if !got[topic] {
					t.Errorf("RemoveLock misses %s (mode %s, allowed %v)", topic, mode, allow)
				}
			}
		}
	}
	if !slices.Equal(topicsOf(RemoveLock(testOptions(ModeComponent), l)), topicsOf(removals)) {
		t.Error("RemoveLock depends on the mode; want the same removals in both")
	}
}

func TestMigrationMessages(t *testing.T) {
	l := fixtureLock(t)
	for _, tc := range []struct{ from, to Mode }{{ModeComponent, ModeDevice}, {ModeDevice, ModeComponent}} {
		t.Run(string(tc.from)+"_to_"+string(tc.to), func(t *testing.T) {
			o := testOptions("")
			oldOpts, newOpts := o, o
			oldOpts.Mode, newOpts.Mode = tc.from, tc.to
			oldTopics := Topics(oldOpts, l)
			configs := LockMessages(newOpts, l)

			got := MigrationMessages(tc.from, tc.to, o, l)
			if want := 2*len(oldTopics) + len(configs); len(got) != want {
				t.Fatalf("got %d messages; want %d", len(got), want)
			}

			n := len(oldTopics)
			for i, topic := range oldTopics {
				if m := got[i]; m.Topic != topic || string(m.Payload) != `{"migrate_discovery":true}` {
					t.Errorf("message %d = %s %s; want %s {\"migrate_discovery\":true}", i, m.Topic, m.Payload, topic)
				}
				if m := got[n+len(configs)+i]; m.Topic != topic || len(m.Payload) != 0 {
					t.Errorf("message %d = %s %q; want an empty payload on %s", n+len(configs)+i, m.Topic, m.Payload, topic)
				}
			}
			for i, want := range configs {
				if m := got[n+i]; m.Topic != want.Topic || !bytes.Equal(m.Payload, want.Payload) {
					t.Errorf("message %d = %s; want the new config on %s", n+i, m.Topic, want.Topic)
				}
			}
			for _, m := range got {
				if err := Check(m.Topic, m.Payload); err != nil {
					t.Errorf("Check: %v", err)
				}
			}
		})
	}

	same := MigrationMessages(ModeDevice, ModeDevice, testOptions(ModeComponent), l)
	if want := LockMessages(testOptions(ModeDevice), l); len(same) != 1 || same[0].Topic != want[0].Topic {
		t.Errorf("migration to the same mode = %v; want LockMessages %v", topicsOf(same), topicsOf(want))
	}
}

func TestBridgeMigrationMessages(t *testing.T) {
	got := BridgeMigrationMessages(ModeDevice, ModeComponent, testOptions(""))
	want := []string{
		"homeassistant/device/loqed2mqtt_loqed/config",
		"homeassistant/binary_sensor/loqed2mqtt_loqed/connectivity/config",
		"homeassistant/sensor/loqed2mqtt_loqed/version/config",
		"homeassistant/device/loqed2mqtt_loqed/config",
	}
	if !slices.Equal(topicsOf(got), want) {
		t.Errorf("topics = %v; want %v", topicsOf(got), want)
	}
	if len(got) == 4 && (string(got[0].Payload) != `{"migrate_discovery":true}` || len(got[3].Payload) != 0) {
		t.Errorf("first and last payloads = %q, %q; want the migration marker and empty", got[0].Payload, got[3].Payload)
	}
}

func TestRemovalForTopic(t *testing.T) {
	m := RemovalForTopic("homeassistant/device/x/config")
	if m.Topic != "homeassistant/device/x/config" || len(m.Payload) != 0 {
		t.Errorf("RemovalForTopic = %+v; want the topic with an empty payload", m)
	}
}

func TestIsOwnConfig(t *testing.T) {
	o := testOptions(ModeDevice)
	lock := LockMessages(o, fixtureLock(t))[0]
	bridge := BridgeMessages(o)[0]
	component := LockMessages(testOptions(ModeComponent), fixtureLock(t))[1]

	tests := []struct {
		name    string
		topic   string
		payload string
		want    bool
	}{
		{"lock device config", lock.Topic, string(lock.Payload), true},
		{"bridge device config", bridge.Topic, string(bridge.Payload), true},
		{"single-component config", component.Topic, string(component.Payload), true},
		{"config without node_id", "homeassistant/sensor/old_battery/config", `{"state_topic":"loqed/abc/battery"}`, true},
		{"command topic only", "homeassistant/button/n/o/config", `{"command_topic":"loqed/abc/refresh"}`, true},
		{"attributes topic only", "homeassistant/sensor/n/o/config", `{"json_attributes_topic":"loqed/abc/info"}`, true},
		{"availability_topic only", "homeassistant/sensor/n/o/config", `{"availability_topic":"loqed/bridge/state"}`, true},
		{"availability list in component", "homeassistant/device/d/config",
			`{"components":{"a":{"platform":"sensor","availability":[{"topic":"loqed/bridge/state"}]}}}`, true},
		{"abbreviated with topic base", "homeassistant/sensor/n/o/config", `{"~":"loqed/abc","stat_t":"~/battery"}`, true},
		{"foreign base topic", "homeassistant/sensor/n/o/config", `{"state_topic":"zigbee2mqtt/plug/state"}`, false},
		{"base topic as a longer word", "homeassistant/sensor/n/o/config", `{"state_topic":"loqedx/abc/battery"}`, false},
		{"topic only in a template", "homeassistant/sensor/n/o/config", `{"state_topic":"x/y","value_template":"loqed/abc"}`, false},
		{"other prefix", "ha2/device/loqed_Ab3dEf6hIj9kLm2nOp5q/config", string(lock.Payload), false},
		{"not a config topic", "homeassistant/device/loqed_x/state", string(lock.Payload), false},
		{"too deep", "homeassistant/sensor/a/b/c/config", `{"state_topic":"loqed/abc/battery"}`, false},
		{"illegal level", "homeassistant/sensor/a.b/config", `{"state_topic":"loqed/abc/battery"}`, false},
		{"empty payload", lock.Topic, "", false},
		{"not JSON", lock.Topic, "online", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsOwnConfig(o, tt.topic, []byte(tt.payload)); got != tt.want {
				t.Errorf("IsOwnConfig(%q, %q) = %v; want %v", tt.topic, tt.payload, got, tt.want)
			}
		})
	}
}

func TestTwoLocks_DisjointUniqueIDs(t *testing.T) {
	first := fixtureLock(t)
	second := first
	second.ID, second.Name = "Zz9yXw8vUt7sRq6pOn5m", "Back door"

	for _, mode := range []Mode{ModeDevice, ModeComponent} {
		t.Run(string(mode), func(t *testing.T) {
			o := testOptions(mode)
			payloads := make(map[string][]byte)
			for _, m := range slices.Concat(LockMessages(o, first), LockMessages(o, second), BridgeMessages(o)) {
				if _, dup := payloads[m.Topic]; dup {
					t.Errorf("topic %s is published twice", m.Topic)
				}
				payloads[m.Topic] = m.Payload
			}
			if err := CheckUniqueIDs(payloads); err != nil {
				t.Errorf("CheckUniqueIDs: %v", err)
			}
		})
	}
}

func TestEncode_Deterministic(t *testing.T) {
	o, l := testOptions(ModeDevice), fixtureLock(t)
	first := LockMessages(o, l)[0].Payload
	for range 20 {
		if again := LockMessages(o, l)[0].Payload; !bytes.Equal(first, again) {
			t.Fatalf("payload changed between calls:\n%s\n%s", first, again)
		}
	}
	if bytes.Contains(first, []byte(`\u003c`)) || bytes.Contains(first, []byte("\n")) {
		t.Errorf("payload is HTML-escaped or indented: %s", first)
	}
}

func TestHumanize(t *testing.T) {
	tests := map[string]string{
		"open_house_mode":  "Open house mode",
		"twist_assist":     "Twist assist",
		"touch_to_connect": "Touch to connect",
		"Auto-Lock":        "Auto lock",
		"ärger_mode":       "Ärger mode",
		"__":               "__",
	}
	for in, want := range tests {
		if got := humanize(in); got != want {
			t.Errorf("humanize(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestEntitySlug(t *testing.T) {
	tests := map[string]string{
		"loqed_Ab3dEf6hIj9kLm2nOp5q": "loqed_ab3def6hij9klm2nop5q",
		"loqed_a-b__c_":              "loqed_a_b_c",
		"_x":                         "x",
	}
	for in, want := range tests {
		if got := entitySlug(in); got != want {
			t.Errorf("entitySlug(%q) = %q; want %q", in, got, want)
		}
	}
}

func BenchmarkLockMessages(b *testing.B) {
	l := fixtureLock(b)
	for _, mode := range []Mode{ModeDevice, ModeComponent} {
		o := testOptions(mode)
		b.Run(string(mode), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				LockMessages(o, l)
			}
		})
	}
}
