package test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/discovery"
	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

var updateDiscoveryGolden = flag.Bool("update-discovery", false, "rewrite the golden discovery configs under testdata/")

const (
	// prefix is Home Assistant's default discovery prefix, which the
	// bridge uses unless HA_DISCOVERY_PREFIX is set.
	prefix = "homeassistant"

	// bridgeConfigTopic is the device config of the bridge itself for the
	// base topic "loqed".
	bridgeConfigTopic = prefix + "/device/loqed2mqtt_loqed/config"

	// birthWait bounds the republish after a birth message: the bridge
	// waits 1 to 5 s at random before it publishes.
	birthWait = 10 * time.Second
)

// lockConfigTopic is the device config topic of a lock.
func lockConfigTopic(id string) string {
	return prefix + "/device/loqed_" + id + "/config"
}

// isOwnConfig reports whether a retained config points into the base topic
// "loqed". It looks only at the payload text, so that it does not depend on
// the code under test.
func isOwnConfig(payload string) bool {
	return strings.Contains(payload, `"loqed/`)
}

// ownConfigs returns the retained discovery configs that point into the
// bridge's base topic.
func ownConfigs(t *testing.T, broker *harness.Broker) map[string]string {
	t.Helper()
	own := map[string]string{}
	for topic, payload := range harness.Retained(t, broker.URL(), prefix+"/#") {
		if isOwnConfig(payload) {
			own[topic] = payload
		}
	}
	return own
}

// checkConfigs runs the rule checker on every config and checks that no
// config lets Home Assistant retain a command, and that unique ids are
// unique over all configs.
func checkConfigs(t *testing.T, configs map[string]string) {
	t.Helper()
	payloads := make(map[string][]byte, len(configs))
	for _, topic := range slices.Sorted(maps.Keys(configs)) {
		payload := configs[topic]
		payloads[topic] = []byte(payload)
		if err := discovery.Check(topic, []byte(payload)); err != nil {
			t.Errorf("config %s breaks the discovery rules:\n%v", topic, err)
		}
		var root any
		if err := json.Unmarshal([]byte(payload), &root); err != nil {
			t.Errorf("config %s is not JSON: %v", topic, err)
			continue
		}
		if path := findRetainTrue("", root); path != "" {
			t.Errorf("config %s sets %s to true; Home Assistant would retain its commands", topic, path)
		}
	}
	if err := discovery.CheckUniqueIDs(payloads); err != nil {
		t.Errorf("unique ids repeat across configs:\n%v", err)
	}
}

// findRetainTrue returns the JSON path of the first "retain": true in v, or
// "".
func findRetainTrue(path string, v any) string {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if (k == "retain" || k == "ret") && v[k] == true {
				return path + "." + k
			}
			if p := findRetainTrue(path+"."+k, v[k]); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := findRetainTrue(fmt.Sprintf("%s[%d]", path, i), e); p != "" {
				return p
			}
		}
	}
	return ""
}

// waitConfigs waits until rec has received a non-empty payload on every
// topic, and returns the last ones.
func waitConfigs(t *testing.T, rec *harness.Recorder, topics ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, topic := range topics {
		m := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
			return m.Topic == topic && m.Payload != ""
		})
		got[topic] = m.Payload
	}
	return got
}

// waitLive waits for a message on topic that the broker forwarded as it was
// published, not as a retained message replayed on subscription.
func waitLive(t *testing.T, rec *harness.Recorder, timeout time.Duration, topic string, match func(payload string) bool) harness.Message {
	t.Helper()
	return rec.WaitFor(t, timeout, func(m harness.Message) bool {
		return !m.Retained && m.Topic == topic && match(m.Payload)
	})
}

func anyPayload(string) bool     { return true }
func emptyPayload(p string) bool { return p == "" }
func migration(p string) bool    { return p == `{"migrate_discovery":true}` }

// deviceConfig is the part of a device-based config the tests compare.
type deviceConfig struct {
	Device struct {
		Identifiers []string `json:"identifiers"`
		Name        string   `json:"name"`
	} `json:"device"`
	Components map[string]map[string]any `json:"components"`
}

func parseDeviceConfig(t *testing.T, topic, payload string) deviceConfig {
	t.Helper()
	var c deviceConfig
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		t.Fatalf("config %s is not a device-based config: %v\n%s", topic, err, payload)
	}
	return c
}

// entityIDs returns the unique ids of the components of a device-based
// config, leaving out removal stubs, which carry only a platform.
func (c deviceConfig) entityIDs() []string {
	var ids []string
	for _, comp := range c.Components {
		if id, ok := comp["unique_id"].(string); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// uniqueIDs returns the sorted unique ids of single-component configs.
func uniqueIDs(t *testing.T, configs map[string]string) []string {
	t.Helper()
	var ids []string
	for topic, payload := range configs {
		var c map[string]any
		if err := json.Unmarshal([]byte(payload), &c); err != nil {
			t.Fatalf("config %s is not JSON: %v", topic, err)
		}
		if id, ok := c["unique_id"].(string); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// topicOptions returns every option ending in _topic of every component,
// keyed by component and option.
func (c deviceConfig) topicOptions() map[string]any {
	out := map[string]any{}
	for key, comp := range c.Components {
		for opt, v := range comp {
			if strings.HasSuffix(opt, "_topic") || opt == "unique_id" || opt == "default_entity_id" {
				out[key+"."+opt] = v
			}
		}
	}
	return out
}

// compareGolden compares a config with testdata/<name>.golden.json. The
// software version, which changes with every build, is replaced by a
// placeholder first.
func compareGolden(t *testing.T, name, payload string) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(payload), &v); err != nil {
		t.Fatalf("%s: config is not JSON: %v", name, err)
	}
	for _, block := range []string{"origin", "device"} {
		if m, ok := v[block].(map[string]any); ok {
			if _, ok := m["sw_version"]; ok {
				m["sw_version"] = "<version>"
			}
		}
	}
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join("testdata", name+".golden.json")
	if *updateDiscoveryGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read the golden file: %v (run go test -run TestDiscovery -args -update-discovery to write it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("%s differs from %s:\ngot:\n%s\nwant:\n%s", name, path, got.String(), want)
	}
}

// TestDiscoveryTwoLocks checks the configs of a two-lock account on a real
// broker against the rules and the golden files, and that they come back
// after the broker restarts without its retained messages.
func TestDiscoveryTwoLocks(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	rec := harness.NewRecorder(t, broker.URL(), "#")

	startBridge(t, broker, acct, nil)
	topics := []string{bridgeConfigTopic, lockConfigTopic(locks[0].ID), lockConfigTopic(locks[1].ID)}
	waitConfigs(t, rec, topics...)
	for _, l := range locks {
		rec.WaitPayload(t, waitFor, "loqed/"+l.ID+"/state", "day_lock")
	}

	own := ownConfigs(t, broker)
	if got := slices.Sorted(maps.Keys(own)); !slices.Equal(got, slices.Sorted(slices.Values(topics))) {
		t.Fatalf("retained configs = %v; want %v", got, topics)
	}
	checkConfigs(t, own)
	for i, l := range locks {
		c := parseDeviceConfig(t, lockConfigTopic(l.ID), own[lockConfigTopic(l.ID)])
		if c.Device.Name != l.Name {
			t.Errorf("lock %s device name = %q; want %q", l.ID, c.Device.Name, l.Name)
		}
		compareGolden(t, fmt.Sprintf("discovery_lock%d_device", i+1), own[lockConfigTopic(l.ID)])
	}
	compareGolden(t, "discovery_bridge_device", own[bridgeConfigTopic])

	for topic := range harness.Retained(t, broker.URL(), "loqed/#") {
		if strings.HasSuffix(topic, "/set") || strings.HasSuffix(topic, "/refresh") {
			t.Errorf("command topic %s is retained", topic)
		}
	}

	// A broker without persistence loses every retained message when it
	// restarts. The bridge reconnects and publishes everything again.
	broker.Stop()
	broker.Start()
	rec.WaitSubscribed(t, waitFor, 2)
	rec.Reset()
	waitConfigs(t, rec, topics...)
	for _, l := range locks {
		rec.WaitPayload(t, waitFor, "loqed/"+l.ID+"/state", "day_lock")
	}
	rec.WaitPayload(t, waitFor, "loqed/bridge/state", "online")

	again := ownConfigs(t, broker)
	if !maps.Equal(again, own) {
		t.Errorf("configs after the broker restart differ from those before:\nafter:  %v\nbefore: %v", again, own)
	}
	checkConfigs(t, again)
}

// TestDiscoveryBirthRepublishes clears every retained message the bridge
// published, as a broker that lost them would, and sends Home Assistant's
// birth message: the bridge publishes the configs again after a delay of 1
// to 5 s, and then every state.
func TestDiscoveryBirthRepublishes(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	setup := harness.NewRecorder(t, broker.URL(), "#")

	startBridge(t, broker, acct, nil)
	topics := []string{bridgeConfigTopic, lockConfigTopic(locks[0].ID), lockConfigTopic(locks[1].ID)}
	waitConfigs(t, setup, topics...)
	for _, l := range locks {
		setup.WaitPayload(t, waitFor, "loqed/"+l.ID+"/state", "day_lock")
	}

	before := harness.Retained(t, broker.URL(), "#")
	for topic := range before {
		harness.Publish(t, broker.URL(), topic, "", true)
	}
	if left := harness.Retained(t, broker.URL(), "#"); len(left) != 0 {
		t.Fatalf("retained messages left after clearing: %v", slices.Sorted(maps.Keys(left)))
	}

	rec := harness.NewRecorder(t, broker.URL(), "#")
	birth := time.Now()
	harness.Publish(t, broker.URL(), prefix+"/status", "online", false)

	first := waitLive(t, rec, birthWait, bridgeConfigTopic, anyPayload)
	if delay := first.At.Sub(birth); delay < time.Second {
		t.Errorf("configs republished %v after the birth message; want a delay of at least 1s", delay)
	}
	waitConfigs(t, rec, topics...)
	rec.WaitPayload(t, waitFor, "loqed/bridge/state", "online")
	for _, l := range locks {
		rec.WaitPayload(t, waitFor, "loqed/"+l.ID+"/state", "day_lock")
		rec.WaitPayload(t, waitFor, "loqed/"+l.ID+"/availability", "online")
	}

	// Every config must arrive before every state, so that Home Assistant
	// has subscribed to a state topic when its state arrives.
	msgs := rec.Messages()
	lastConfig, firstState := -1, len(msgs)
	for i, m := range msgs {
		switch {
		case strings.HasPrefix(m.Topic, prefix+"/") && strings.HasSuffix(m.Topic, "/config"):
			lastConfig = i
		case strings.HasPrefix(m.Topic, "loqed/") && !strings.HasPrefix(m.Topic, "loqed/bridge/"):
			firstState = min(firstState, i)
		}
	}
	if lastConfig > firstState {
		t.Errorf("message %d (%s) is a config that follows the lock state %d (%s); want every config first",
			lastConfig, msgs[lastConfig].Topic, firstState, msgs[firstState].Topic)
	}

	// The bridge publishes asynchronously: wait until every value is back
	// before the snapshot.
	for topic, payload := range before {
		if topic == "loqed/bridge/budget" || strings.HasSuffix(topic, "/info") || strings.HasSuffix(topic, "/config") {
			continue
		}
		rec.WaitPayload(t, waitFor, topic, payload)
	}
	after := harness.Retained(t, broker.URL(), "#")
	for topic, payload := range before {
		if topic == "loqed/bridge/budget" || strings.HasSuffix(topic, "/info") {
			continue // they carry times and are published again only with a new list read
		}
		if after[topic] != payload {
			t.Errorf("retained %s after the birth = %q; want %q", topic, after[topic], payload)
		}
	}
	checkConfigs(t, ownConfigs(t, broker))
}

// TestDiscoveryRemovedLock removes a lock from the account while the bridge
// runs and refreshes the lock list: the lock's configs and retained topics
// are cleared, and the other lock keeps its own.
func TestDiscoveryRemovedLock(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	kept, removed := locks[0].ID, locks[1].ID
	rec := harness.NewRecorder(t, broker.URL(), "#")

	startBridge(t, broker, acct, nil)
	waitConfigs(t, rec, bridgeConfigTopic, lockConfigTopic(kept), lockConfigTopic(removed))
	rec.WaitPayload(t, waitFor, "loqed/"+removed+"/state", "day_lock")

	acct.RemoveLock(removed)
	harness.Publish(t, broker.URL(), "loqed/"+kept+"/refresh", "refresh", false)
	result := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == "loqed/"+kept+"/command_result"
	})
	if !strings.Contains(result.Payload, `"ok":true`) {
		t.Fatalf("refresh result = %s; want ok", result.Payload)
	}

	checkRemoved(t, broker, removed)
	own := ownConfigs(t, broker)
	if _, ok := own[lockConfigTopic(kept)]; !ok {
		t.Errorf("config of the lock still in the account was cleared; retained configs: %v", slices.Sorted(maps.Keys(own)))
	}
	if got := harness.Retained(t, broker.URL(), "loqed/"+kept+"/state"); got["loqed/"+kept+"/state"] != "day_lock" {
		t.Errorf("state of the lock still in the account = %q; want day_lock", got["loqed/"+kept+"/state"])
	}
	checkConfigs(t, own)
}

// TestDiscoveryAddedLock adds a lock to the account while the bridge runs:
// after a refresh its config arrives before any of its states.
func TestDiscoveryAddedLock(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 1})
	first := acct.Locks()[0].ID
	rec := harness.NewRecorder(t, broker.URL(), "#")

	startBridge(t, broker, acct, nil)
	waitConfigs(t, rec, bridgeConfigTopic, lockConfigTopic(first))

	acct.AddLock(loqed.Lock{Name: "Shed"})
	added := loqedtest.LockID(1)
	harness.Publish(t, broker.URL(), "loqed/"+first+"/refresh", "refresh", false)
	waitConfigs(t, rec, lockConfigTopic(added))
	rec.WaitPayload(t, waitFor, "loqed/"+added+"/state", "day_lock")

	config, firstState := -1, -1
	for i, m := range rec.Messages() {
		switch {
		case m.Topic == lockConfigTopic(added) && config < 0:
			config = i
		case strings.HasPrefix(m.Topic, "loqed/"+added+"/") && firstState < 0:
			firstState = i
		}
	}
	if firstState < config {
		t.Errorf("the added lock's topic %s (message %d) precedes its config (message %d)", rec.Messages()[firstState].Topic, firstState, config)
	}
	checkConfigs(t, ownConfigs(t, broker))
}

// checkRemoved checks that nothing of the lock id is retained: no config
// names it and no topic below loqed/<id>/ is left.
func checkRemoved(t *testing.T, broker *harness.Broker, id string) {
	t.Helper()
	for topic, payload := range harness.Retained(t, broker.URL(), prefix+"/#") {
		if strings.Contains(topic, id) || strings.Contains(payload, id) {
			t.Errorf("retained config %s of the removed lock %s is left: %s", topic, id, payload)
		}
	}
	if left := harness.Retained(t, broker.URL(), "loqed/"+id+"/#"); len(left) != 0 {
		t.Errorf("retained topics of the removed lock %s are left: %v", id, slices.Sorted(maps.Keys(left)))
	}
}

// makeInfoStale rewrites the retained info topic of every lock with an
// updated_at two days back, older than the default LOQED_REFRESH_INTERVAL
// of 12h, so that the next start reads the lock list.
func makeInfoStale(t *testing.T, broker *harness.Broker) {
	t.Helper()
	for topic, payload := range harness.Retained(t, broker.URL(), "loqed/+/info") {
		var info map[string]any
		if err := json.Unmarshal([]byte(payload), &info); err != nil {
			t.Fatalf("retained %s is not JSON: %v", topic, err)
		}
		info["updated_at"] = time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
		stale, _ := json.Marshal(info)
		harness.Publish(t, broker.URL(), topic, string(stale), true)
	}
}

// TestDiscoveryCleanupAtStart removes a lock while the bridge is down and
// leaves a stale config of an earlier run on the broker: the next start
// clears both and keeps the configs of other applications.
func TestDiscoveryCleanupAtStart(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	kept, removed := locks[0].ID, locks[1].ID
	setup := harness.NewRecorder(t, broker.URL(), "#")

	p := startBridge(t, broker, acct, nil)
	waitConfigs(t, setup, bridgeConfigTopic, lockConfigTopic(kept), lockConfigTopic(removed))
	setup.WaitPayload(t, waitFor, "loqed/"+removed+"/state", "day_lock")
	p.stop()

	acct.RemoveLock(removed)
	makeInfoStale(t, broker)
	const (
		ghostTopic   = prefix + "/sensor/loqed_gone/battery/config"
		ghostConfig  = `{"unique_id":"loqed_gone_battery","state_topic":"loqed/gone/battery","device":{"identifiers":["loqed_gone"]}}`
		foreignTopic = prefix + "/sensor/other_bridge/temperature/config"
		// The base topic of this foreign config starts with "loqed" but
		// is another topic level, so it is not the bridge's.
		foreignConfig = `{"unique_id":"other_temperature","state_topic":"loqedx/temperature","device":{"identifiers":["other"]}}`
	)
	harness.Publish(t, broker.URL(), ghostTopic, ghostConfig, true)
	harness.Publish(t, broker.URL(), foreignTopic, foreignConfig, true)

	rec := harness.NewRecorder(t, broker.URL(), "#")
	startBridge(t, broker, acct, nil)
	waitLive(t, rec, waitFor, ghostTopic, emptyPayload)
	waitLive(t, rec, waitFor, lockConfigTopic(removed), emptyPayload)
	// The start-up publishes the states of the remaining lock last.
	waitLive(t, rec, waitFor, "loqed/"+kept+"/state", anyPayload)

	checkRemoved(t, broker, removed)
	all := harness.Retained(t, broker.URL(), prefix+"/#")
	if _, ok := all[ghostTopic]; ok {
		t.Errorf("stale config %s was not cleared", ghostTopic)
	}
	if all[foreignTopic] != foreignConfig {
		t.Errorf("config of another application %s = %q; want it untouched", foreignTopic, all[foreignTopic])
	}
	own := ownConfigs(t, broker)
	want := []string{bridgeConfigTopic, lockConfigTopic(kept)}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(own)); !slices.Equal(got, want) {
		t.Errorf("retained configs = %v; want %v", got, want)
	}
	checkConfigs(t, own)
}

// TestDiscoveryFailedListClearsNothing starts the bridge with no retained
// lock list while the API fails. Configs of an earlier run stay, because a
// failed call does not tell which locks left the account.
func TestDiscoveryFailedListClearsNothing(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	lockID := acct.Locks()[0].ID

	planted := map[string]string{}
	for _, m := range discovery.LockMessages(discovery.Options{}, discovery.Lock{ID: lockID, Name: "Front door"}) {
		planted[m.Topic] = string(m.Payload)
	}
	planted[prefix+"/sensor/loqed_gone/battery/config"] = `{"unique_id":"loqed_gone_battery","state_topic":"loqed/gone/battery","device":{"identifiers":["loqed_gone"]}}`
	for topic, payload := range planted {
		harness.Publish(t, broker.URL(), topic, payload, true)
	}

	acct.FailNext(1000, 500, 0)
	rec := harness.NewRecorder(t, broker.URL(), "#")
	p := startBridge(t, broker, acct, nil)
	// Start publishes the bridge's configs after the clean-up.
	waitLive(t, rec, waitFor, bridgeConfigTopic, anyPayload)
	if !strings.Contains(p.log(), "skipping the clean-up of stale discovery configs") {
		t.Errorf("the bridge did not log that it skipped the clean-up; log:\n%s", p.log())
	}

	if n := acct.CountRequests("GET", "/api/locks"); n == 0 {
		t.Fatalf("the bridge did not call the lock list; the test would prove nothing")
	}
	retained := harness.Retained(t, broker.URL(), prefix+"/#")
	for topic, payload := range planted {
		if retained[topic] != payload {
			t.Errorf("config %s = %q after a failed list call; want it kept", topic, retained[topic])
		}
	}
	for _, m := range rec.Messages() {
		if !m.Retained && m.Payload == "" && strings.HasPrefix(m.Topic, prefix+"/") {
			t.Errorf("config %s was cleared after a failed list call", m.Topic)
		}
	}
}

// TestDiscoveryRename renames a lock in the account: after a refresh the
// device name changes, and the config topic, unique ids, entity ids and
// topics stay.
func TestDiscoveryRename(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	lock := acct.Locks()[0]
	topic := lockConfigTopic(lock.ID)
	rec := harness.NewRecorder(t, broker.URL(), "#")

	startBridge(t, broker, acct, nil)
	before := parseDeviceConfig(t, topic, waitConfigs(t, rec, topic)[topic])

	acct.RenameLock(lock.ID, "Garden gate")
	harness.Publish(t, broker.URL(), "loqed/"+lock.ID+"/refresh", "refresh", false)
	m := rec.WaitFor(t, waitFor, func(m harness.Message) bool {
		return m.Topic == topic && strings.Contains(m.Payload, `"name":"Garden gate"`)
	})
	after := parseDeviceConfig(t, topic, m.Payload)

	if !slices.Equal(after.Device.Identifiers, before.Device.Identifiers) {
		t.Errorf("device identifiers after the rename = %v; want %v", after.Device.Identifiers, before.Device.Identifiers)
	}
	if !slices.Equal(after.entityIDs(), before.entityIDs()) {
		t.Errorf("unique ids after the rename = %v; want %v", after.entityIDs(), before.entityIDs())
	}
	if a, b := after.topicOptions(), before.topicOptions(); !maps.EqualFunc(a, b, func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
		t.Errorf("topics and ids after the rename = %v; want %v", a, b)
	}
	for topic := range ownConfigs(t, broker) {
		if strings.Contains(topic, "garden") || strings.Contains(topic, "Garden") {
			t.Errorf("the rename created a new config topic %s", topic)
		}
	}
	checkConfigs(t, ownConfigs(t, broker))
}

// TestDiscoveryDisabled turns discovery off after a run with it on: every
// config the bridge published is cleared, other applications' configs stay,
// and no config is published.
func TestDiscoveryDisabled(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	setup := harness.NewRecorder(t, broker.URL(), "#")

	p := startBridge(t, broker, acct, nil)
	topics := []string{bridgeConfigTopic, lockConfigTopic(locks[0].ID), lockConfigTopic(locks[1].ID)}
	waitConfigs(t, setup, topics...)
	p.stop()

	const foreignTopic = prefix + "/sensor/other_bridge/temperature/config"
	const foreignConfig = `{"unique_id":"other_temperature","state_topic":"other/temperature"}`
	harness.Publish(t, broker.URL(), foreignTopic, foreignConfig, true)

	rec := harness.NewRecorder(t, broker.URL(), "#")
	startBridge(t, broker, acct, map[string]string{"HA_DISCOVERY": "false"})
	for _, topic := range topics {
		waitLive(t, rec, waitFor, topic, emptyPayload)
	}
	// The start-up publishes the lock states after any config.
	for _, l := range locks {
		waitLive(t, rec, waitFor, "loqed/"+l.ID+"/state", anyPayload)
	}

	for _, m := range rec.Messages() {
		if !m.Retained && strings.HasSuffix(m.Topic, "/config") && m.Payload != "" {
			t.Errorf("config %s published with HA_DISCOVERY=false: %s", m.Topic, m.Payload)
		}
	}
	retained := harness.Retained(t, broker.URL(), prefix+"/#")
	want := map[string]string{foreignTopic: foreignConfig}
	if !maps.Equal(retained, want) {
		t.Errorf("retained configs = %v; want only %v", retained, want)
	}
}

// TestDiscoveryComponentMode switches a running setup from device-based to
// single-component discovery and back. Each switch follows Home Assistant's
// migration: {"migrate_discovery": true} on the old topic, then the new
// configs, then the old topic cleared. The entities keep their unique ids.
func TestDiscoveryComponentMode(t *testing.T) {
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: 2})
	locks := acct.Locks()
	setup := harness.NewRecorder(t, broker.URL(), "#")

	p := startBridge(t, broker, acct, nil)
	deviceTopics := []string{bridgeConfigTopic, lockConfigTopic(locks[0].ID), lockConfigTopic(locks[1].ID)}
	var deviceIDs []string
	for topic, payload := range waitConfigs(t, setup, deviceTopics...) {
		deviceIDs = append(deviceIDs, parseDeviceConfig(t, topic, payload).entityIDs()...)
	}
	slices.Sort(deviceIDs)
	p.stop()

	// The lock is renamed while the bridge is down, and the stale lock
	// list makes the next start read it again: the changed config must
	// still wait for the migration.
	acct.RenameLock(locks[0].ID, "Side door")
	makeInfoStale(t, broker)

	// Device-based to single-component.
	rec := harness.NewRecorder(t, broker.URL(), "#")
	p = startBridge(t, broker, acct, map[string]string{"HA_DISCOVERY_MODE": "component"})
	nodes := map[string]string{ // device topic -> node id of its component topics
		bridgeConfigTopic:            "loqed2mqtt_loqed",
		lockConfigTopic(locks[0].ID): "loqed_" + locks[0].ID,
		lockConfigTopic(locks[1].ID): "loqed_" + locks[1].ID,
	}
	for _, topic := range deviceTopics {
		waitLive(t, rec, waitFor, topic, emptyPayload)
	}
	waitLive(t, rec, waitFor, "loqed/"+locks[1].ID+"/state", anyPayload)
	for device, node := range nodes {
		checkMigrationOrder(t, rec.Messages(), []string{device}, func(topic string) bool {
			return strings.Contains(topic, "/"+node+"/") && topic != device
		})
	}

	component := ownConfigs(t, broker)
	for _, topic := range deviceTopics {
		if _, ok := component[topic]; ok {
			t.Errorf("device config %s is still retained in component mode", topic)
		}
	}
	for topic := range component {
		if strings.HasPrefix(topic, prefix+"/device/") {
			t.Errorf("device config %s is retained in component mode", topic)
		}
	}
	checkConfigs(t, component)
	if got := uniqueIDs(t, component); !slices.Equal(got, deviceIDs) {
		t.Errorf("unique ids in component mode = %v; want those of device mode %v", got, deviceIDs)
	}
	for topic, payload := range component {
		if strings.Contains(topic, "/loqed_"+locks[0].ID+"/") && !strings.Contains(payload, `"name":"Side door"`) {
			t.Errorf("config %s lacks the new device name Side door: %s", topic, payload)
		}
	}
	p.stop()

	// And back to device-based.
	rec = harness.NewRecorder(t, broker.URL(), "#")
	startBridge(t, broker, acct, nil)
	componentTopics := slices.Sorted(maps.Keys(component))
	for _, topic := range componentTopics {
		waitLive(t, rec, waitFor, topic, emptyPayload)
	}
	waitLive(t, rec, waitFor, "loqed/"+locks[1].ID+"/state", anyPayload)
	for device, node := range nodes {
		var old []string
		for _, topic := range componentTopics {
			if strings.Contains(topic, "/"+node+"/") {
				old = append(old, topic)
			}
		}
		checkMigrationOrder(t, rec.Messages(), old, func(topic string) bool { return topic == device })
	}

	back := ownConfigs(t, broker)
	if got, want := slices.Sorted(maps.Keys(back)), slices.Sorted(slices.Values(deviceTopics)); !slices.Equal(got, want) {
		t.Errorf("retained configs after switching back = %v; want %v", got, want)
	}
	checkConfigs(t, back)
	var backIDs []string
	for topic, payload := range back {
		backIDs = append(backIDs, parseDeviceConfig(t, topic, payload).entityIDs()...)
	}
	slices.Sort(backIDs)
	if !slices.Equal(backIDs, deviceIDs) {
		t.Errorf("unique ids after switching back = %v; want %v", backIDs, deviceIDs)
	}
}

// checkMigrationOrder checks Home Assistant's migration order in the live
// messages: every old topic gets {"migrate_discovery": true} before the
// first new config, and is cleared once every new config was published.
func checkMigrationOrder(t *testing.T, msgs []harness.Message, oldTopics []string, isNew func(topic string) bool) {
	t.Helper()
	if len(oldTopics) == 0 {
		t.Errorf("no old topics to migrate")
		return
	}
	firstOf := map[string]int{} // new config topic -> index of its first message
	for i, m := range msgs {
		if m.Retained || m.Payload == "" || !strings.HasSuffix(m.Topic, "/config") || !isNew(m.Topic) {
			continue
		}
		if _, seen := firstOf[m.Topic]; !seen {
			firstOf[m.Topic] = i
		}
	}
	if len(firstOf) == 0 {
		t.Errorf("no new config follows the migration of %v", oldTopics)
		return
	}
	firstNew := slices.Min(slices.Collect(maps.Values(firstOf)))
	lastNew := slices.Max(slices.Collect(maps.Values(firstOf)))

	for _, old := range oldTopics {
		migrated, cleared := -1, -1
		for i, m := range msgs {
			switch {
			case m.Retained || m.Topic != old:
			case migration(m.Payload) && migrated < 0:
				migrated = i
			case m.Payload == "" && cleared < 0:
				cleared = i
			}
		}
		switch {
		case migrated < 0:
			t.Errorf("%s: no migrate_discovery message", old)
		case migrated > firstNew:
			t.Errorf("%s: migrate_discovery (message %d) follows the new config %s (message %d)", old, migrated, msgs[firstNew].Topic, firstNew)
		}
		switch {
		case cleared < 0:
			t.Errorf("%s: not cleared", old)
		case cleared < lastNew:
			t.Errorf("%s: cleared (message %d) before the new config %s (message %d)", old, cleared, msgs[lastNew].Topic, lastNew)
		}
	}
}
