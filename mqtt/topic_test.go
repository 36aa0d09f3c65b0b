package mqtt

import (
	"strings"
	"testing"
)

var topicMatchTests = []struct {
	filter, topic string
	want          bool
}{
	{"a/b", "a/b", true},
	{"a/b", "a/c", false},
	{"a/b", "a/b/c", false},
	{"a/b/c", "a/b", false},
	{"A/b", "a/b", false},

	{"+", "a", true},
	{"+", "a/b", false},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/d", false},

	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"+/#", "a", true},
	{"+/b/#", "a/b", true},

	// [MQTT-4.7.2-1]: wildcards at the first level do not match $ topics.
	{"#", "$SYS/broker/load", false},
	{"+/broker/load", "$SYS/broker/load", false},
	{"$SYS/#", "$SYS/broker/load", true},
	{"$SYS/+/load", "$SYS/broker/load", true},
	{"a/+", "a/$b", true},

	{"$share/group/a/+", "a/b", true},
	{"$share/group/#", "a/b", true},
	{"$share/group/#", "$SYS/x", false},
	{"$share//a", "a", false},
	{"$share/group", "group", false},
	{"$share/group/", "x", false},
	{"$share/gr+up/a", "a", false},

	// Invalid filters and topics match nothing.
	{"", "", false},
	{"", "a", false},
	{"a", "", false},
	{"a/#/b", "a/x/b", false},
	{"a/b#", "a/b#", false},
	{"a#", "a", false},
	{"a/+b", "a/+b", false},
	{"a/b", "a/+", false},
	{"#", "a/#", false},
	{"a\x00", "a\x00", false},
}

func TestTopicMatches(t *testing.T) {
	for _, tt := range topicMatchTests {
		if got := TopicMatches(tt.filter, tt.topic); got != tt.want {
			t.Errorf("TopicMatches(%q, %q) = %t; want %t", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"+", true},
		{"#", true},
		{"a/+/b/#", true},
		{"$share/g/a/#", true},
		{"", false},
		{"a/#/b", false},
		{"a+", false},
		{"a/b#", false},
		{"$share/g", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := validFilter(tt.filter); got != tt.want {
			t.Errorf("validFilter(%q) = %t; want %t", tt.filter, got, tt.want)
		}
	}
}

func FuzzTopicMatches(f *testing.F) {
	for _, tt := range topicMatchTests {
		f.Add(tt.filter, tt.topic)
	}

	f.Fuzz(func(t *testing.T, filter, topic string) {
		// Must not panic on any input.
		TopicMatches(filter, topic)

		if !validTopic(topic) || strings.HasPrefix(topic, sharePrefix) {
			return
		}

		if !TopicMatches(topic, topic) {
			t.Errorf("TopicMatches(%q, %q) = false; a topic must match itself as a filter", topic, topic)
		}

		// Replacing any one level with '+' still matches, unless it turns a leading
		// '$' level into a wildcard.
		levels := strings.Split(topic, "/")
		for i := range levels {
			if i == 0 && strings.HasPrefix(topic, "$") {
				continue
			}
			wild := append([]string(nil), levels...)
			wild[i] = "+"
			if f := strings.Join(wild, "/"); !TopicMatches(f, topic) {
				t.Errorf("TopicMatches(%q, %q) = false; want true", f, topic)
			}
		}

		if !strings.HasPrefix(topic, "$") && !TopicMatches("#", topic) {
			t.Errorf("TopicMatches(\"#\", %q) = false; want true", topic)
		}
	})
}
