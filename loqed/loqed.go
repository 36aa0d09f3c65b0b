// Package loqed contains the LOQED domain: bolt states, webhook events and
// lock descriptions, the tolerant decoder for the webhooks the LOQED cloud
// sends, and a client for the LOQED Integrations API.
//
// The package imports only the standard library, so the bridge, the fake
// account in loqedtest and the tests share one definition of every payload.
package loqed

// BoltState is the position of a lock's bolt, spelled as the Integrations API
// spells it in bolt_state and in the bolt_state endpoint path.
type BoltState string

// Bolt states. StateUnknown is reported by the lock when it cannot tell, and
// by the decoder when a payload names no state.
const (
	StateUnknown   BoltState = "unknown"
	StateOpen      BoltState = "open"
	StateDayLock   BoltState = "day_lock"
	StateNightLock BoltState = "night_lock"
)

// Valid reports whether s is one of the three states a command can request.
func (s BoltState) Valid() bool {
	return s == StateOpen || s == StateDayLock || s == StateNightLock
}

// EventKind classifies a webhook by what it reports.
type EventKind int

// Event kinds. A webhook without event_type carries readings only
// (KindReadings); an event_type the decoder does not know by name is mapped by
// its prefix and suffix, and KindOther is left for types that match nothing.
const (
	KindReadings     EventKind = iota // signal, battery and online readings
	KindStateChanged                  // STATE_CHANGED_*: the bolt reached a position
	KindGoToState                     // GO_TO_STATE_*: the bolt started moving
	KindMotorStall                    // MOTOR_STALL: the motor could not finish
	KindOther                         // an event_type of unknown form
)

// String returns the kind's name as used in logs.
func (k EventKind) String() string {
	switch k {
	case KindReadings:
		return "readings"
	case KindStateChanged:
		return "state_changed"
	case KindGoToState:
		return "go_to_state"
	case KindMotorStall:
		return "motor_stall"
	default:
		return "other"
	}
}

// Event is one decoded webhook. Optional readings are pointers: nil means the
// payload did not carry the field or carried -1, which LOQED uses for unknown.
type Event struct {
	// LockID is the lock_id of the body as text: the Integrations API id
	// ("Ab3dEf6hIj9kLm2nOp5q") or the numeric internal id ("6148"). Bodies
	// sent by a local bridge carry none, so it may be empty.
	LockID string

	// Type is event_type as received, upper case; empty for readings.
	Type string
	Kind EventKind

	// State is the position the event reports: for KindStateChanged the
	// reached state, for KindGoToState the target. Derived from Type first,
	// then from requested_state or go_to_state. StateUnknown when neither
	// names one, and always StateUnknown for KindReadings and KindMotorStall.
	State BoltState

	RequestedState BoltState // requested_state as received, lower case, or ""
	GoToState      BoltState // go_to_state as received, lower case, or ""

	// KeyLocalID is key_local_id; nil when absent, null, "" or 255 (no key).
	KeyLocalID      *int
	KeyNameUser     string
	KeyNameAdmin    string
	KeyAccountEmail string // key_account_email or key_account_e-mail
	KeyAccountName  string

	Value1, Value2, Value3 string

	BatteryPercentage *int
	BatteryType       string // "alkaline", "nimh", "lithium", "unknown" or ""
	WiFiStrength      *int
	BLEStrength       *int
	Online            *bool

	MACWiFi string
	MACBLE  string
}

// HasReadings reports whether the event carries any signal, battery or
// online reading.
func (e *Event) HasReadings() bool {
	return e.BatteryPercentage != nil || e.BatteryType != "" || e.WiFiStrength != nil ||
		e.BLEStrength != nil || e.Online != nil
}

// Lock is one lock of the account as GET /api/locks/ describes it.
//
// The list also returns the lock's local credentials (bridge_key,
// key_secret, backend_key, local_id). They are decoded into Secrets so that
// nothing that marshals a Lock can leak them.
type Lock struct {
	ID                  string      `json:"id"`
	Name                string      `json:"name"`
	ModelName           string      `json:"model_name,omitempty"`
	BatteryPercentage   *int        `json:"battery_percentage,omitempty"`
	BatteryType         string      `json:"battery_type,omitempty"`
	BoltState           BoltState   `json:"bolt_state,omitempty"`
	PartyMode           *bool       `json:"party_mode,omitempty"`
	GuestAccessMode     *bool       `json:"guest_access_mode,omitempty"`
	TwistAssist         *bool       `json:"twist_assist,omitempty"`
	TouchToConnect      *bool       `json:"touch_to_connect,omitempty"`
	LockDirection       string      `json:"lock_direction,omitempty"`
	MortiseLockType     string      `json:"mortise_lock_type,omitempty"`
	SupportedLockStates []BoltState `json:"supported_lock_states,omitempty"`
	Online              *bool       `json:"online,omitempty"`

	// Settings holds every boolean or 0/1 field of the record by its API
	// name, so that settings added by configuration can be read back too.
	// DecodeLockList adds open_house_mode, read from OpenHouseModeField
	// unless the record has an open_house_mode field of its own.
	Settings map[string]bool `json:"settings,omitempty"`

	Secrets LockSecrets `json:"-"`
}

// Supports reports whether the lock lists s in supported_lock_states. A lock
// whose record lists no states is taken to support all three.
func (l *Lock) Supports(s BoltState) bool {
	if len(l.SupportedLockStates) == 0 {
		return s.Valid()
	}
	for _, x := range l.SupportedLockStates {
		if x == s {
			return true
		}
	}
	return false
}

// LockSecrets are the local credentials the lock list returns. They are never
// published or logged; String hides them.
type LockSecrets struct {
	LocalID    *int
	KeySecret  string
	BridgeKey  string
	BackendKey string
}

// String returns a placeholder, so that formatting a Lock never prints a key.
func (LockSecrets) String() string { return "[redacted]" }

// GoString returns a placeholder for %#v.
func (LockSecrets) GoString() string { return "[redacted]" }

// Setting names of the Integrations API setting endpoint.
const (
	SettingOpenHouseMode  = "open_house_mode"
	SettingTwistAssist    = "twist_assist"
	SettingTouchToConnect = "touch_to_connect"
)
