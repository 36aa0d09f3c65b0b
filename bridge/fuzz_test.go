package bridge

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// The seeds of these fuzz targets are the cases of the table tests in
// parse_test.go plus inputs near the edges of each parser. `go test` runs the
// seeds on every run; `go test -fuzz` explores from them (see docs/FUZZING.md).

func FuzzParseLockCommand(f *testing.F) {
	for _, seed := range []string{
		"night_lock", "DAY_LOCK", " open\n", "LOCK", "unlock", "OPEN",
		`{"state":"night_lock","id":"abc"}`,
		`{"action":"open","code":"1234"}`,
		`{"action":"LOCK","code":""}`,
		`{"action":"night_lock","code":"4321"}`,
		"sideways", "", `{"state":"open","action":"open"}`, `{"id":"x"}`,
		`{"state":"open","extra":1}`, `{"state":"open"} {}`, `{"state":5}`, "\xff\xfe",
		`{"state":null}`, `{"state":"open","id":null}`, `  {"state":"open"}  `,
		`{"state":"open","id":"` + strings.Repeat("i", 129) + `"}`,
		strings.Repeat("x", MaxCommandPayload+1),
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := parseLockCommand(payload)
		if err != nil {
			if !errors.Is(err, errInvalidCommand) {
				t.Fatalf("parseLockCommand(%q) error %v does not wrap errInvalidCommand", payload, err)
			}
			if c != (lockCommand{}) {
				t.Fatalf("parseLockCommand(%q) returned %+v with error %v", payload, c, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("parseLockCommand(%q) error %q has more than one line", payload, err)
			}
			return
		}

		if !c.state.Valid() {
			t.Fatalf("parseLockCommand(%q) accepted invalid state %q", payload, c.state)
		}
		if len(payload) > MaxCommandPayload {
			t.Fatalf("parseLockCommand accepted a payload of %d bytes; the limit is %d", len(payload), MaxCommandPayload)
		}
		if !utf8.Valid(payload) {
			t.Fatalf("parseLockCommand(%q) accepted a payload that is not UTF-8", payload)
		}
		if len(c.id) > 128 {
			t.Fatalf("parseLockCommand(%q) accepted an id of %d bytes", payload, len(c.id))
		}

		// The state word of an accepted command parses to the same state.
		again, err := parseLockCommand([]byte(c.state))
		if err != nil || again.state != c.state {
			t.Fatalf("parseLockCommand(%q) = %q, %v; want %q", c.state, again.state, err, c.state)
		}
	})
}

func FuzzParseSettingValue(f *testing.F) {
	for _, seed := range []string{"ON", "on", "1", "true", "OFF", "0", "False", "", "yes", "2", "ONN", " on\n", "\xff", strings.Repeat("o", 40)} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, payload []byte) {
		value, err := ParseSettingValue(payload)
		word := strings.ToLower(strings.TrimSpace(string(payload)))
		if err != nil {
			if !errors.Is(err, errInvalidCommand) {
				t.Fatalf("ParseSettingValue(%q) error %v does not wrap errInvalidCommand", payload, err)
			}
			switch word {
			case "on", "1", "true", "off", "0", "false":
				t.Fatalf("ParseSettingValue(%q) rejected a valid value: %v", payload, err)
			}
			if len(payload) > 32 && strings.Contains(err.Error(), string(payload)) {
				t.Fatalf("ParseSettingValue error repeats a payload of %d bytes", len(payload))
			}
			return
		}

		switch word {
		case "on", "1", "true":
			if !value {
				t.Fatalf("ParseSettingValue(%q) = false; want true", payload)
			}
		case "off", "0", "false":
			if value {
				t.Fatalf("ParseSettingValue(%q) = true; want false", payload)
			}
		default:
			t.Fatalf("ParseSettingValue(%q) = %v; want an error", payload, value)
		}
	})
}

func FuzzParseCommandTopic(f *testing.F) {
	for _, seed := range []string{
		"loqed/abc/set", "loqed/abc/refresh", "loqed/abc/settings/twist_assist/set",
		"loqed/bridge/set", "loqed//set", "loqed/abc/state", "loqed/abc/settings//set",
		"other/abc/set", "loqed/abc/set/extra", "loqed/a+b/set", "loqed/#/set",
		"loqed/abc/settings/+/set", "loqed/abc/settings/#/set", "loqed/a\x00b/set",
		"loqed/ /set", "loqed/\xff/refresh", "loqedabc/set", "loqed/abc/settings/x/y/set",
	} {
		f.Add("loqed", seed)
	}
	f.Add("home", "home/abc/set")

	f.Fuzz(func(t *testing.T, base, topic string) {
		// New rejects base topics that are not one valid topic level.
		if loqed.CheckLockID(base) != nil {
			return
		}
		tp := topics{base: base}

		ct, ok := tp.parseCommandTopic(topic)
		if !ok {
			if ct != (commandTopic{}) {
				t.Fatalf("parseCommandTopic(%q) rejected the topic but returned %+v", topic, ct)
			}
			return
		}

		if err := loqed.CheckLockID(ct.lockID); err != nil {
			t.Fatalf("parseCommandTopic(%q) accepted lock id %q: %v", topic, ct.lockID, err)
		}
		if strings.ContainsAny(ct.lockID, "/+#") {
			t.Fatalf("parseCommandTopic(%q) accepted lock id %q with '/', '+' or '#'", topic, ct.lockID)
		}
		if ct.lockID == bridgeLevel {
			t.Fatalf("parseCommandTopic(%q) accepted the reserved level %q as a lock id", topic, bridgeLevel)
		}

		var rebuilt string
		switch ct.kind {
		case suffixSet:
			rebuilt = tp.lock(ct.lockID, suffixSet)
		case suffixRefresh:
			rebuilt = tp.lock(ct.lockID, suffixRefresh)
		case suffixSettings:
			if err := loqed.CheckLockID(ct.setting); err != nil {
				t.Fatalf("parseCommandTopic(%q) accepted setting name %q: %v", topic, ct.setting, err)
			}
			rebuilt = tp.setting(ct.lockID, ct.setting) + "/" + suffixSet
		default:
			t.Fatalf("parseCommandTopic(%q) returned unknown kind %q", topic, ct.kind)
		}
		if rebuilt != topic {
			t.Fatalf("parseCommandTopic(%q) = %+v, which rebuilds to %q", topic, ct, rebuilt)
		}
	})
}
