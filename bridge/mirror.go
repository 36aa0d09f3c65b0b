package bridge

import "strings"

// Instances that share a broker (MQTT_SHARED_GROUP) split the commands
// between them but may each take any webhook, so the webhook that confirms a
// command can reach another instance than the one running it. Each instance
// therefore follows the lock topics on the broker and takes every value into
// its shadow, its own echoes included. The broker delivers one topic's
// messages in the order it stored them, so the last message seen is the
// retained value and the shadow converges to what the broker holds.

// mirrorFilters returns the filters of the lock topics an instance follows.
// They name each topic, because a wildcard over <base>/+/+ would also match
// the command topics and hand every command to every instance.
func (b *Bridge) mirrorFilters() []string {
	base := b.opts.BaseTopic
	filters := make([]string, 0, 8)
	for _, suffix := range []string{suffixState, suffixAvailability, suffixBattery, suffixBatteryType,
		suffixWiFiStrength, suffixBLEStrength, suffixLastChangedBy} {
		filters = append(filters, base+"/+/"+suffix)
	}
	return append(filters, base+"/+/"+suffixSettings+"/+")
}

// handleMirror takes a lock topic published by any instance into the shadow.
func (b *Bridge) handleMirror(m Message) {
	rest, ok := strings.CutPrefix(m.Topic, b.topics.base+"/")
	if !ok || len(m.Payload) == 0 {
		return
	}
	id, suffix, ok := strings.Cut(rest, "/")
	if !ok || id == bridgeLevel || suffix == suffixInfo || !knownSuffix(suffix) {
		return
	}
	l := b.lock(id)
	if l == nil {
		return
	}
	l.mirror(suffix, string(m.Payload))
}

// mirror takes one value from the broker into the shadow and, for a final
// state, wakes the commands that wait for one.
func (l *lockState) mirror(suffix, value string) {
	topic := l.b.topics.lock(l.id, suffix)

	l.mu.Lock()
	if l.sent[topic] == value {
		l.mu.Unlock()
		return
	}
	delete(l.sent, topic)
	l.mu.Unlock()

	l.restoreTopic(suffix, []byte(value))

	if suffix == suffixState && isFinal(value) {
		l.mu.Lock()
		l.settle(value)
		l.mu.Unlock()
	}
}
