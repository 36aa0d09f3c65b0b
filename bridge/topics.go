package bridge

import (
	"strings"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// Topic suffixes below <base>/<id>/.
const (
	suffixState         = "state"
	suffixAvailability  = "availability"
	suffixBattery       = "battery"
	suffixBatteryType   = "battery_type"
	suffixWiFiStrength  = "wifi_strength"
	suffixBLEStrength   = "ble_strength"
	suffixLastChangedBy = "last_changed_by"
	suffixEvent         = "event"
	suffixInfo          = "info"
	suffixSettings      = "settings"
	suffixSet           = "set"
	suffixRefresh       = "refresh"
	suffixResult        = "command_result"
)

// bridgeLevel is the topic level of the bridge's own topics, <base>/bridge/...
// It can never be a lock id because the bridge rejects that id.
const bridgeLevel = "bridge"

// topics builds topic names below the base topic.
type topics struct {
	base string
}

func (t topics) lock(id, suffix string) string {
	return t.base + "/" + id + "/" + suffix
}

func (t topics) setting(id, name string) string {
	return t.base + "/" + id + "/" + suffixSettings + "/" + name
}

func (t topics) bridgeState() string   { return t.base + "/" + bridgeLevel + "/state" }
func (t topics) bridgeVersion() string { return t.base + "/" + bridgeLevel + "/version" }
func (t topics) bridgeBudget() string  { return t.base + "/" + bridgeLevel + "/budget" }

// command is a parsed command topic.
type commandTopic struct {
	lockID  string
	kind    string // suffixSet, suffixRefresh or suffixSettings
	setting string // with suffixSettings
}

// parseCommandTopic splits <base>/<id>/set, <base>/<id>/refresh and
// <base>/<id>/settings/<name>/set. It reports false for any other topic and
// for a lock id or setting name that is not a valid topic level (with '+',
// '#', a control character, or not UTF-8), because results for such an id
// could not be published.
func (t topics) parseCommandTopic(topic string) (commandTopic, bool) {
	rest, ok := strings.CutPrefix(topic, t.base+"/")
	if !ok {
		return commandTopic{}, false
	}
	parts := strings.Split(rest, "/")
	if parts[0] == bridgeLevel || loqed.CheckLockID(parts[0]) != nil {
		return commandTopic{}, false
	}
	switch {
	case len(parts) == 2 && parts[1] == suffixSet:
		return commandTopic{lockID: parts[0], kind: suffixSet}, true
	case len(parts) == 2 && parts[1] == suffixRefresh:
		return commandTopic{lockID: parts[0], kind: suffixRefresh}, true
	case len(parts) == 4 && parts[1] == suffixSettings && loqed.CheckLockID(parts[2]) == nil && parts[3] == suffixSet:
		return commandTopic{lockID: parts[0], kind: suffixSettings, setting: parts[2]}, true
	}
	return commandTopic{}, false
}
