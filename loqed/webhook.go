package loqed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidWebhook is wrapped by every error DecodeWebhook returns.
var ErrInvalidWebhook = errors.New("invalid webhook")

// ErrInvalidLockID is wrapped by the errors of CheckLockID.
var ErrInvalidLockID = errors.New("invalid lock id")

// DecodeError describes why a webhook body was rejected. It names the field
// and the rule the field broke, never the field's value, so that it can be
// logged and returned to the sender without leaking payload contents.
type DecodeError struct {
	Field  string // JSON field name; "" when the error concerns the whole body
	Reason string // the rule that was broken
}

// Error returns one line: "invalid webhook: <field>: <reason>".
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return ErrInvalidWebhook.Error() + ": " + e.Reason
	}
	return ErrInvalidWebhook.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidWebhook.
func (e *DecodeError) Unwrap() error { return ErrInvalidWebhook }

// maxLockIDLen is the longest lock id accepted. API ids are 20 characters
// and internal ids a few digits; the bound keeps topic names short.
const maxLockIDLen = 128

// CheckLockID reports whether id can be used as one MQTT topic level. It
// returns nil for a usable id and otherwise an error wrapping
// ErrInvalidLockID that names the rule id breaks, without quoting id.
func CheckLockID(id string) error {
	if reason := lockIDProblem(id); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidLockID, reason)
	}
	return nil
}

// lockIDProblem returns why id is not usable as a topic level, or "".
// MQTT reserves '/' as the level separator and '+' and '#' as wildcards,
// and forbids NUL in topic names.
func lockIDProblem(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > maxLockIDLen:
		return fmt.Sprintf("must be at most %d bytes", maxLockIDLen)
	case !utf8.ValidString(id):
		return "must be valid UTF-8"
	case strings.ContainsAny(id, "/+#"):
		return "must not contain '/', '+' or '#'"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "must not contain control characters"
	case strings.TrimFunc(id, unicode.IsSpace) == "":
		return "must not be only whitespace"
	}
	return ""
}

// maxEventTypeLen is the maximum length of event_type. The longest type LOQED documents,
// GO_TO_STATE_MANUAL_UNLOCK_VIA_OUTSIDE_MODULE_BUTTON, has 50 characters.
const maxEventTypeLen = 64

// MapEventType classifies a LOQED event_type and returns the bolt state it
// names: the reached state for STATE_CHANGED_*, the target for
// GO_TO_STATE_*. The type is matched case-insensitively. The boolean is
// false when the type alone does not name a state, and the caller then
// takes the state from requested_state or go_to_state.
//
// Types that LOQED adds later are classified by their prefix and suffix,
// because new GO_TO_STATE_* variants keep appearing in firmware updates.
func MapEventType(eventType string) (EventKind, BoltState, bool) {
	t := strings.ToUpper(eventType)

	switch {
	case t == "MOTOR_STALL":
		return KindMotorStall, StateUnknown, true

	case strings.HasPrefix(t, "STATE_CHANGED_"):
		rest := strings.TrimPrefix(t, "STATE_CHANGED_")
		if s, ok := stateByPrefix(rest); ok {
			return KindStateChanged, s, true
		}
		if s, ok := stateBySuffix(t); ok {
			return KindStateChanged, s, true
		}
		return KindStateChanged, StateUnknown, false

	case strings.HasPrefix(t, "GO_TO_STATE_"):
		if s, ok := stateBySuffix(t); ok {
			return KindGoToState, s, true
		}
		return KindGoToState, StateUnknown, false
	}
	return KindOther, StateUnknown, false
}

// stateByPrefix maps the part after STATE_CHANGED_, such as "LATCH" or
// "NIGHT_LOCK_REMOTE", by the state word it starts with.
func stateByPrefix(rest string) (BoltState, bool) {
	words := []struct {
		word  string
		state BoltState
	}{
		{"NIGHT_LOCK", StateNightLock},
		{"DAY_LOCK", StateDayLock},
		{"LATCH", StateDayLock},
		{"LOCK", StateNightLock},
		{"OPEN", StateOpen},
		{"UNKNOWN", StateUnknown},
	}
	for _, w := range words {
		if rest == w.word || strings.HasPrefix(rest, w.word+"_") {
			return w.state, true
		}
	}
	return "", false
}

// stateBySuffix maps an event type by its last words. LOQED names the
// target last: GO_TO_STATE_TWIST_ASSIST_LOCK goes to night_lock,
// GO_TO_STATE_MANUAL_UNLOCK_VIA_OUTSIDE_LATCH to day_lock, and the outside
// module's PIN and BUTTON unlocks open the door.
func stateBySuffix(t string) (BoltState, bool) {
	suffixes := []struct {
		suffix string
		state  BoltState
	}{
		{"_NIGHT_LOCK", StateNightLock},
		{"_DAY_LOCK", StateDayLock},
		{"_LOCK", StateNightLock},
		{"_LATCH", StateDayLock},
		{"_OPEN", StateOpen},
		{"_PIN", StateOpen},
		{"_BUTTON", StateOpen},
		{"_UNKNOWN", StateUnknown},
	}
	for _, s := range suffixes {
		if strings.HasSuffix(t, s.suffix) {
			return s.state, true
		}
	}
	return "", false
}

// DecodeWebhook decodes the body of a webhook sent by the LOQED cloud or a
// LOQED bridge. It accepts every shape LOQED is known to send. lock_id may
// be a string or a number, numbers may be numeric strings, and
// key_local_id is "" or null when no key was used. Both spellings of the
// account e-mail field are read, and signal, battery and online readings
// may come alone or combined with an event. Unknown fields are ignored.
// Known fields with a wrong type or range are rejected with a *DecodeError.
func DecodeWebhook(body []byte) (Event, error) {
	fields, err := decodeObject(body)
	if err != nil {
		return Event{}, err
	}

	d := fieldDecoder{fields: fields}
	ev := Event{}

	ev.LockID = d.lockID("lock_id")
	ev.Type = d.eventType("event_type")
	ev.RequestedState = d.state("requested_state", "requested_state_numeric")
	ev.GoToState = d.state("go_to_state", "go_to_state_numeric")

	ev.KeyLocalID = d.keyLocalID("key_local_id")
	ev.KeyNameUser = d.str("key_name_user")
	ev.KeyNameAdmin = d.str("key_name_admin")
	ev.KeyAccountEmail = d.str("key_account_email")
	if ev.KeyAccountEmail == "" {
		ev.KeyAccountEmail = d.str("key_account_e-mail")
	}
	ev.KeyAccountName = d.str("key_account_name")
	ev.Value1 = d.text("value1")
	ev.Value2 = d.text("value2")
	ev.Value3 = d.text("value3")

	ev.BatteryPercentage = d.percentage("battery_percentage")
	ev.BatteryType = d.batteryType("battery_type", "battery_type_numeric")
	ev.WiFiStrength = d.percentage("wifi_strength")
	ev.BLEStrength = d.percentage("ble_strength")
	ev.Online = d.online("online")
	ev.MACWiFi = d.str("mac_wifi")
	ev.MACBLE = d.str("mac_ble")

	if d.err != nil {
		return Event{}, d.err
	}

	if ev.Type == "" {
		if !ev.HasReadings() {
			return Event{}, &DecodeError{Reason: "no event_type and no readings"}
		}
		ev.Kind = KindReadings
		ev.State = StateUnknown
		return ev, nil
	}

	kind, state, named := MapEventType(ev.Type)
	ev.Kind = kind
	ev.State = state
	if !named {
		ev.State = fallbackState(kind, ev.RequestedState, ev.GoToState)
	}
	return ev, nil
}

// fallbackState picks the state for an event whose type names none. A
// movement prefers its go_to_state, anything else its requested_state.
func fallbackState(kind EventKind, requested, goTo BoltState) BoltState {
	first, second := requested, goTo
	if kind == KindGoToState {
		first, second = goTo, requested
	}
	switch {
	case first != "":
		return first
	case second != "":
		return second
	}
	return StateUnknown
}

// decodeObject parses body as exactly one JSON object and returns its
// members undecoded.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &DecodeError{Reason: "body is empty"}
	}
	if trimmed[0] != '{' {
		return nil, &DecodeError{Reason: "body must be a JSON object"}
	}

	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, &DecodeError{Reason: "body is not valid JSON"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &DecodeError{Reason: "unexpected data after the JSON object"}
	}
	return fields, nil
}

// fieldDecoder reads typed values out of a decoded object and keeps the
// first error, so that DecodeWebhook reads as a list of fields.
type fieldDecoder struct {
	fields map[string]json.RawMessage
	err    error
}

func (d *fieldDecoder) fail(field, reason string) {
	if d.err == nil {
		d.err = &DecodeError{Field: field, Reason: reason}
	}
}

// raw returns the field's JSON text, or nil when it is absent or null.
func (d *fieldDecoder) raw(field string) json.RawMessage {
	r, ok := d.fields[field]
	if !ok || string(r) == "null" {
		return nil
	}
	return r
}

func (d *fieldDecoder) str(field string) string {
	r := d.raw(field)
	if r == nil {
		return ""
	}
	var s string
	if r[0] != '"' || json.Unmarshal(r, &s) != nil {
		d.fail(field, "must be a string")
		return ""
	}
	return s
}

// text reads a free-form value field. The IFTTT-style value1..value3 carry
// text, but any scalar is accepted and kept as its JSON text.
func (d *fieldDecoder) text(field string) string {
	r := d.raw(field)
	switch {
	case r == nil:
		return ""
	case r[0] == '"':
		return d.str(field)
	case r[0] == '{' || r[0] == '[':
		d.fail(field, "must be a string")
		return ""
	}
	return string(r)
}

// number reads a JSON number or a numeric string as an integer. It
// returns ok false, with no error recorded, for null and "".
func (d *fieldDecoder) number(field string) (n int64, ok bool) {
	r := d.raw(field)
	if r == nil {
		return 0, false
	}

	text := string(r)
	if r[0] == '"' {
		if json.Unmarshal(r, &text) != nil {
			d.fail(field, "must be a number")
			return 0, false
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return 0, false
		}
	} else if r[0] != '-' && (r[0] < '0' || r[0] > '9') {
		d.fail(field, "must be a number")
		return 0, false
	}

	n, err := strconv.ParseInt(text, 10, 64)
	if err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		d.fail(field, "must be a number")
		return 0, false
	}
	if math.Abs(f) > 1<<53 {
		d.fail(field, "is out of range")
		return 0, false
	}
	if f != math.Trunc(f) {
		d.fail(field, "must be an integer")
		return 0, false
	}
	return int64(f), true
}

// percentage reads a 0..100 reading. LOQED sends -1 for unknown, for
// example battery_percentage while the lock is offline, and that becomes
// nil so that it is never published.
func (d *fieldDecoder) percentage(field string) *int {
	n, ok := d.number(field)
	if !ok || n == -1 {
		return nil
	}
	if n < 0 || n > 100 {
		d.fail(field, "must be between 0 and 100, or -1 for unknown")
		return nil
	}
	v := int(n)
	return &v
}

// noKeyLocalID is the key_local_id a bridge sends when no key was involved
// (knob, button, automatic latch).
const noKeyLocalID = 255

func (d *fieldDecoder) keyLocalID(field string) *int {
	n, ok := d.number(field)
	if !ok || n == noKeyLocalID {
		return nil
	}
	if n < 0 || n > noKeyLocalID {
		d.fail(field, "must be between 0 and 255")
		return nil
	}
	v := int(n)
	return &v
}

func (d *fieldDecoder) lockID(field string) string {
	r := d.raw(field)
	if r == nil {
		return ""
	}

	var id string
	switch {
	case r[0] == '"':
		id = d.str(field)
	case r[0] >= '0' && r[0] <= '9':
		// The internal numeric id (for example 6148) arrives as a JSON
		// number. Only plain decimal integers are kept, because the text
		// becomes a topic level and must be the same for every delivery.
		if strings.Trim(string(r), "0123456789") != "" {
			d.fail(field, "must be a string or a non-negative integer")
			return ""
		}
		id = string(r)
	default:
		d.fail(field, "must be a string or a non-negative integer")
		return ""
	}

	if d.err != nil {
		return ""
	}
	if reason := lockIDProblem(id); reason != "" {
		d.fail(field, reason)
		return ""
	}
	return id
}

func (d *fieldDecoder) eventType(field string) string {
	t := d.str(field)
	if t == "" {
		return ""
	}
	if len(t) > maxEventTypeLen {
		d.fail(field, fmt.Sprintf("must be at most %d characters", maxEventTypeLen))
		return ""
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			d.fail(field, "must contain only letters, digits and '_'")
			return ""
		}
	}
	return strings.ToUpper(t)
}

// state reads requested_state or go_to_state. When the text field is
// absent, the numeric variant of the bridge (0 unknown, 1 open, 2 day_lock,
// 3 night_lock) fills in. A numeric variant that is malformed or disagrees
// with the text is ignored, because the text is what LOQED documents.
func (d *fieldDecoder) state(field, numericField string) BoltState {
	s := d.str(field)
	if s != "" {
		st, ok := parseWebhookState(s)
		if !ok {
			d.fail(field, "must be OPEN, DAY_LOCK, NIGHT_LOCK or UNKNOWN")
			return ""
		}
		return st
	}

	r := d.raw(numericField)
	if r == nil {
		return ""
	}
	var n int
	if json.Unmarshal(r, &n) != nil {
		return ""
	}
	switch n {
	case 0:
		return StateUnknown
	case 1:
		return StateOpen
	case 2:
		return StateDayLock
	case 3:
		return StateNightLock
	}
	return ""
}

// parseWebhookState maps OPEN, DAY_LOCK, NIGHT_LOCK and UNKNOWN in any
// case to a BoltState.
func parseWebhookState(s string) (BoltState, bool) {
	switch strings.ToUpper(s) {
	case "OPEN":
		return StateOpen, true
	case "DAY_LOCK":
		return StateDayLock, true
	case "NIGHT_LOCK":
		return StateNightLock, true
	case "UNKNOWN":
		return StateUnknown, true
	}
	return "", false
}

// Battery types after normalisation.
const (
	BatteryAlkaline = "alkaline"
	BatteryNiMH     = "nimh"
	BatteryLithium  = "lithium"
	BatteryUnknown  = "unknown"
)

// NormalizeBatteryType maps the battery type spellings of the bridge
// (NICKEL_METAL_HYDRIDE), the cloud (nickel_metal_hydride) and the legacy
// numeric code (0 alkaline, 1 NiMH, 2 lithium, 3 unknown) to one of the
// Battery* constants. Unrecognised names give BatteryUnknown, because new
// battery types must not make a whole webhook invalid.
func NormalizeBatteryType(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "alkaline", "0":
		return BatteryAlkaline
	case "nickel_metal_hydride", "nimh", "1":
		return BatteryNiMH
	case "lithium", "2":
		return BatteryLithium
	}
	return BatteryUnknown
}

func (d *fieldDecoder) batteryType(field, numericField string) string {
	r := d.raw(field)
	if r == nil {
		r = d.raw(numericField)
		field = numericField
	}
	switch {
	case r == nil:
		return ""
	case r[0] == '"':
		s := d.str(field)
		if s == "" {
			return ""
		}
		return NormalizeBatteryType(s)
	}

	n, ok := d.number(field)
	if !ok {
		return ""
	}
	return NormalizeBatteryType(strconv.FormatInt(n, 10))
}

// online reads online as sent by the cloud (0 or 1) or as a boolean.
func (d *fieldDecoder) online(field string) *bool {
	r := d.raw(field)
	if r == nil {
		return nil
	}

	var v bool
	switch strings.ToLower(strings.Trim(string(r), `"`)) {
	case "1", "true":
		v = true
	case "0", "false":
		v = false
	default:
		d.fail(field, "must be 0, 1, true or false")
		return nil
	}
	return &v
}

// webhookBody is the canonical form EncodeWebhook writes, in the cloud's
// field order.
type webhookBody struct {
	EventType         string `json:"event_type,omitempty"`
	RequestedState    string `json:"requested_state,omitempty"`
	GoToState         string `json:"go_to_state,omitempty"`
	LockID            string `json:"lock_id,omitempty"`
	KeyLocalID        *int   `json:"key_local_id,omitempty"`
	KeyNameUser       string `json:"key_name_user,omitempty"`
	KeyNameAdmin      string `json:"key_name_admin,omitempty"`
	KeyAccountEmail   string `json:"key_account_email,omitempty"`
	KeyAccountName    string `json:"key_account_name,omitempty"`
	Value1            string `json:"value1,omitempty"`
	Value2            string `json:"value2,omitempty"`
	Value3            string `json:"value3,omitempty"`
	BatteryPercentage *int   `json:"battery_percentage,omitempty"`
	BatteryType       string `json:"battery_type,omitempty"`
	WiFiStrength      *int   `json:"wifi_strength,omitempty"`
	BLEStrength       *int   `json:"ble_strength,omitempty"`
	Online            *bool  `json:"online,omitempty"`
	MACWiFi           string `json:"mac_wifi,omitempty"`
	MACBLE            string `json:"mac_ble,omitempty"`
}

// EncodeWebhook returns a webhook body that DecodeWebhook decodes back to
// e. Fakes and tests use it to build webhooks from events.
func EncodeWebhook(e Event) []byte {
	b := webhookBody{
		EventType:         e.Type,
		RequestedState:    strings.ToUpper(string(e.RequestedState)),
		GoToState:         strings.ToUpper(string(e.GoToState)),
		LockID:            e.LockID,
		KeyLocalID:        e.KeyLocalID,
		KeyNameUser:       e.KeyNameUser,
		KeyNameAdmin:      e.KeyNameAdmin,
		KeyAccountEmail:   e.KeyAccountEmail,
		KeyAccountName:    e.KeyAccountName,
		Value1:            e.Value1,
		Value2:            e.Value2,
		Value3:            e.Value3,
		BatteryPercentage: e.BatteryPercentage,
		BatteryType:       e.BatteryType,
		WiFiStrength:      e.WiFiStrength,
		BLEStrength:       e.BLEStrength,
		Online:            e.Online,
		MACWiFi:           e.MACWiFi,
		MACBLE:            e.MACBLE,
	}

	out, err := json.Marshal(b)
	if err != nil {
		// webhookBody has only string, integer and boolean fields, and
		// json.Marshal does not fail for those.
		panic("loqed: cannot encode webhook: " + err.Error())
	}
	return out
}
