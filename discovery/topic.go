package discovery

import (
	"encoding/json"
	"slices"
	"strings"
)

// supportedComponents are the component levels Home Assistant accepts in a
// discovery topic (SUPPORTED_COMPONENTS of its MQTT integration, 2025
// releases), plus "device" for device-based discovery.
var supportedComponents = []string{
	"alarm_control_panel", "binary_sensor", "button", "camera", "climate", "cover",
	"device", "device_automation", "device_tracker", "event", "fan", "humidifier",
	"image", "lawn_mower", "light", "lock", "notify", "number", "scene", "select",
	"sensor", "siren", "switch", "tag", "text", "update", "vacuum", "valve",
	"water_heater",
}

// configTopic is a discovery topic split into the levels Home Assistant's
// topic pattern names:
// <prefix>/<component>/[<node_id>/]<object_id>/config.
type configTopic struct {
	prefix    string
	component string
	nodeID    string // empty when the topic has no node_id level
	objectID  string
}

// parseConfigTopic splits topic, which must lie under prefix. It reports
// false for any topic Home Assistant would not treat as a discovery config:
// a different prefix, a level count other than three or four below it, or a
// level with characters outside the pattern.
func parseConfigTopic(prefix, topic string) (configTopic, bool) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return configTopic{}, false
	}

	levels := strings.Split(rest, "/")
	t := configTopic{prefix: prefix}
	switch {
	case len(levels) == 3 && levels[2] == "config":
		t.component, t.objectID = levels[0], levels[1]
	case len(levels) == 4 && levels[3] == "config":
		t.component, t.nodeID, t.objectID = levels[0], levels[1], levels[2]
		if !validIDLevel(t.nodeID) {
			return configTopic{}, false
		}
	default:
		return configTopic{}, false
	}

	if !validComponentLevel(t.component) || !validIDLevel(t.objectID) {
		return configTopic{}, false
	}
	return t, true
}

// guessConfigTopic splits a discovery topic whose prefix is not known. The
// prefix may itself contain slashes, so the component is taken to be the
// level that names a supported component: four levels from the end when
// possible (a topic with node_id), otherwise three.
func guessConfigTopic(topic string) (configTopic, bool) {
	levels := strings.Split(topic, "/")
	n := len(levels)
	for _, depth := range []int{4, 3} {
		if n <= depth || !slices.Contains(supportedComponents, levels[n-depth]) {
			continue
		}
		prefix := strings.Join(levels[:n-depth], "/")
		if t, ok := parseConfigTopic(prefix, topic); ok {
			return t, true
		}
	}
	return configTopic{}, false
}

// validComponentLevel matches the component group `\w+` of Home Assistant's
// topic pattern, restricted to ASCII.
func validComponentLevel(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// validIDLevel matches the node_id and object_id group [a-zA-Z0-9_-]+ of Home
// Assistant's topic pattern.
func validIDLevel(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !isTopicLevelRune(r) {
			return false
		}
	}
	return true
}

// IsOwnConfig reports whether a retained message is a discovery config this
// bridge published. Its topic must be a config topic under o.Prefix, in
// device or single-component form. Its payload must have a state, command,
// attributes or availability topic under "<BaseTopic>/", at its root or
// inside a component. The bridge uses it at start-up to find stale configs to
// clear.
//
// NOTE: a second bridge whose base topic starts with "<BaseTopic>/" (e.g.
// "loqed/second" next to "loqed") is taken for this bridge; give bridges
// sibling base topics.
func IsOwnConfig(o Options, topic string, payload []byte) bool {
	o = o.withDefaults()
	if _, ok := parseConfigTopic(o.Prefix, topic); !ok || len(payload) == 0 {
		return false
	}

	var root map[string]any
	if err := json.Unmarshal(payload, &root); err != nil {
		return false
	}

	own := o.BaseTopic + "/"
	if scopeUsesTopicUnder(root, own) {
		return true
	}
	for _, key := range []string{"components", "cmps"} {
		components, _ := root[key].(map[string]any)
		for _, c := range components {
			if scope, ok := c.(map[string]any); ok && scopeUsesTopicUnder(scope, own) {
				return true
			}
		}
	}
	return false
}

// scopeUsesTopicUnder reports whether one config scope (the root or a
// component) has a topic option under prefix. Topic options are the keys
// ending in _topic, their abbreviations ending in _t, and the topics of the
// availability list. A "~" at the start or end of a topic is expanded with the
// scope's "~" value, as Home Assistant does.
func scopeUsesTopicUnder(scope map[string]any, prefix string) bool {
	base, _ := scope["~"].(string)
	under := func(v any) bool {
		s, ok := v.(string)
		if !ok || s == "" {
			return false
		}
		if base != "" {
			if strings.HasPrefix(s, "~") {
				s = base + s[1:]
			} else if strings.HasSuffix(s, "~") {
				s = s[:len(s)-1] + base
			}
		}
		return strings.HasPrefix(s, prefix)
	}

	for key, v := range scope {
		if (strings.HasSuffix(key, "_topic") || strings.HasSuffix(key, "_t")) && under(v) {
			return true
		}
	}
	for _, key := range []string{"availability", "avty"} {
		list, _ := scope[key].([]any)
		for _, entry := range list {
			a, _ := entry.(map[string]any)
			if under(a["topic"]) || under(a["t"]) {
				return true
			}
		}
	}
	return false
}
