package mqtt

import "strings"

// sharePrefix starts a shared subscription filter: $share/<group>/<filter>.
const sharePrefix = "$share/"

// TopicMatches reports whether topic matches filter under the MQTT 3.1.1 rules. '+'
// matches exactly one level, and '#' as the last level matches its parent and every
// level below [MQTT-4.7.1-2]. A filter starting with a wildcard does not match a topic
// starting with '$' [MQTT-4.7.2-1]. The $share/<group>/ prefix of a shared subscription
// is ignored, and an invalid filter or topic matches nothing.
func TopicMatches(filter, topic string) bool {
	filter, ok := stripShare(filter)
	if !ok || !validFilter(filter) || !validTopic(topic) {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}

	for {
		fLevel, fRest, fMore := strings.Cut(filter, "/")
		if fLevel == "#" {
			return true
		}

		tLevel, tRest, tMore := strings.Cut(topic, "/")
		if fLevel != "+" && fLevel != tLevel {
			return false
		}

		switch {
		case !fMore && !tMore:
			return true
		case !fMore:
			return false
		case !tMore:
			// "a/#" also matches "a".
			return fRest == "#"
		}
		filter, topic = fRest, tRest
	}
}

// stripShare removes the $share/<group>/ prefix of a shared subscription. It reports
// false for a malformed shared subscription: an empty group, a group with a wildcard
// or no filter after the group [MQTT-4.8.2].
func stripShare(filter string) (string, bool) {
	rest, shared := strings.CutPrefix(filter, sharePrefix)
	if !shared {
		return filter, true
	}
	group, inner, ok := strings.Cut(rest, "/")
	if !ok || group == "" || strings.ContainsAny(group, "+#") || inner == "" {
		return "", false
	}
	return inner, true
}

// validFilter reports whether filter is a well-formed topic filter: not empty, without
// U+0000, '+' and '#' only as whole levels and '#' only as the last level [MQTT-4.7.1].
// A $share/<group>/ prefix is accepted.
func validFilter(filter string) bool {
	filter, ok := stripShare(filter)
	if !ok || filter == "" || strings.ContainsRune(filter, 0) {
		return false
	}

	for {
		level, rest, more := strings.Cut(filter, "/")
		switch {
		case level == "#":
			return !more
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return false
		}
		if !more {
			return true
		}
		filter = rest
	}
}

// validTopic reports whether topic is a valid topic name: not empty, without wildcards
// and without U+0000 [MQTT-4.7.3-1], [MQTT-4.7.3-2].
func validTopic(topic string) bool {
	return topic != "" && !strings.ContainsAny(topic, "+#\x00")
}
