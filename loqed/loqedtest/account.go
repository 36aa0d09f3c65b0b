// Package loqedtest provides a fake LOQED account for tests and dry runs:
// the Integrations API endpoints the bridge calls, and a webhook emitter
// that POSTs the events the LOQED cloud would send when a lock moves.
//
// The fake follows the behaviour of the real service where it is known:
//
//   - Requests without the right bearer token are redirected (302) to an
//     HTML login page instead of getting 401.
//   - GET /api/locks/ returns {"data": [...]} including each lock's local
//     credentials (local_id, key_secret, bridge_key, backend_key).
//   - GET /api/locks/{id}/bolt_state/{state} returns 204 and then sends a
//     GO_TO_STATE_MANUAL_*_REMOTE_* webhook, and after Options.MoveDelay
//     the STATE_CHANGED_* webhook. A command for the state the lock is
//     already in sends only GO_TO_STATE, as the real lock does. After
//     STATE_CHANGED_OPEN the lock falls back to the latch one MoveDelay
//     later, with a STATE_CHANGED_LATCH webhook that names no key.
//   - Webhooks of one lock are sent in order, one at a time.
//   - POST /api/locks/{id}/setting changes a setting and returns 204.
//
// Faults are injected with Account methods or, without authentication,
// through the control endpoints:
//
//	GET  /sim/requests            request log as JSON
//	GET  /sim/locks               the locks, without credentials
//	POST /sim/faults              JSON Faults, see Faults
//	POST /sim/webhook             POST the request body to the webhook URL
//	POST /sim/locks/{id}/operate  {"state": "night_lock"}: a manual operation
package loqedtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// Options configures an Account.
type Options struct {
	// Token is the bearer token the API accepts.
	Token string

	// WebhookURL is the URL webhooks are POSTed to. When it is empty, no
	// webhooks are sent.
	WebhookURL string

	// Locks is the number of locks the account starts with; 0 means 1.
	// The ids depend only on the position, so every run with the same
	// number has the same ids.
	Locks int

	// MoveDelay is the time between the GO_TO_STATE and the STATE_CHANGED
	// webhook of a command; zero sends them back to back.
	MoveDelay time.Duration

	// AckDelay is the time between a command and its GO_TO_STATE webhook.
	AckDelay time.Duration

	// NumericWebhookIDs makes webhooks carry the lock's numeric internal
	// id (6148 for the first lock) as a JSON number, as webhooks set up in
	// the LOQED web app do, instead of the API id.
	NumericWebhookIDs bool

	// Logf, when set, receives one line per request and webhook. It never
	// receives the token.
	Logf func(format string, args ...any)
}

// Request is one entry of the request log. It never contains the token.
type Request struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Time   time.Time `json:"time"`
}

// maxRequestLog bounds the request log of a long-running simulator.
const maxRequestLog = 10000

// firstNumericID is the internal id of the first lock, taken from the
// shape of real webhooks.
const firstNumericID = 6148

// keyRevokedMessage is the 404 message of a command whose lock key was
// deleted in the LOQED app.
const keyRevokedMessage = `No query results for model [App\Models\ApiKey].`

// Account is a fake LOQED account. It is safe for concurrent use.
type Account struct {
	opts  Options
	logf  func(format string, args ...any)
	hook  *http.Client
	ctx   context.Context // canceled by Close, ends webhook deliveries
	stop  context.CancelFunc
	wg    sync.WaitGroup
	close sync.Once

	mu         sync.Mutex
	webhookURL string
	locks      []*simLock
	nextIndex  int
	requests   []Request
	faults     faultState
	revoked    map[string]bool
	pending    int           // queued or running webhook jobs
	changed    chan struct{} // closed and replaced when pending decreases
	closed     bool
}

// faultState holds the faults that are still to be consumed.
type faultState struct {
	failNext   int
	failStatus int
	retryAfter time.Duration
	delayNext  int
	delay      time.Duration
	dropFinal  int
}

// simLock is one lock of the account and its webhook queue.
type simLock struct {
	index int
	lock  loqed.Lock // Settings holds only settings without a Lock field

	queue   []job
	running bool
}

// job is one entry of a lock's webhook queue.
type job struct {
	target    loqed.BoltState
	dropFinal bool // send GO_TO_STATE but no STATE_CHANGED
	manual    bool // a hand on the knob: no GO_TO_STATE, no key
}

// New returns an Account with opts.Locks locks.
func New(opts Options) *Account {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctx, stop := context.WithCancel(context.Background())

	a := &Account{
		opts:       opts,
		logf:       logf,
		hook:       &http.Client{Timeout: 10 * time.Second},
		ctx:        ctx,
		stop:       stop,
		webhookURL: opts.WebhookURL,
		revoked:    make(map[string]bool),
		changed:    make(chan struct{}),
	}

	n := opts.Locks
	if n <= 0 {
		n = 1
	}
	for i := 0; i < n; i++ {
		a.AddLock(defaultLock(i))
	}
	return a
}

// defaultLock returns the i-th lock of a new account, shaped like the
// first record of a real lock list.
func defaultLock(i int) loqed.Lock {
	names := []string{"Front door", "Back door"}
	name := fmt.Sprintf("Lock %d", i+1)
	if i < len(names) {
		name = names[i]
	}

	battery := 90 - (i*7)%60
	return loqed.Lock{
		ID:                  LockID(i),
		Name:                name,
		ModelName:           "LOQED Touch",
		BatteryPercentage:   &battery,
		BatteryType:         loqed.BatteryNiMH,
		BoltState:           loqed.StateDayLock,
		PartyMode:           ptr(false),
		GuestAccessMode:     ptr(false),
		TwistAssist:         ptr(false),
		TouchToConnect:      ptr(true),
		LockDirection:       "clockwise",
		MortiseLockType:     "cylinder_operated_no_handle_on_the_outside",
		SupportedLockStates: []loqed.BoltState{loqed.StateOpen, loqed.StateDayLock, loqed.StateNightLock},
		Online:              ptr(true),
	}
}

func ptr[T any](v T) *T { return &v }

// LockID returns the API id of the lock at position i (0-based) of a new
// account: 20 letters and digits derived from a hash of i.
func LockID(i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte(fmt.Sprintf("loqedtest lock %d", i)))
	id := make([]byte, 20)
	for j := range id {
		id[j] = alphabet[int(sum[j])%len(alphabet)]
	}
	return string(id)
}

// inventedKey returns a stable base64 key for a lock, so that the lock
// list carries credentials of the real shape.
func inventedKey(kind, lockID string) string {
	sum := sha256.Sum256([]byte("loqedtest " + kind + " " + lockID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Handler returns the HTTP handler of the Integrations API and the /sim/
// control endpoints.
func (a *Account) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/locks/{$}", a.handleListLocks)
	api.HandleFunc("GET /api/locks", a.handleListLocks)
	api.HandleFunc("GET /api/locks/{id}/bolt_state/{state}", a.handleBoltState)
	api.HandleFunc("POST /api/locks/{id}/setting", a.handleSetting)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, message("Not Found"))
	})

	mux := http.NewServeMux()
	mux.Handle("/api/", a.authenticate(api))
	mux.HandleFunc("GET /login", handleLogin)
	mux.HandleFunc("GET /sim/requests", a.handleSimRequests)
	mux.HandleFunc("GET /sim/locks", a.handleSimLocks)
	mux.HandleFunc("POST /sim/faults", a.handleSimFaults)
	mux.HandleFunc("POST /sim/webhook", a.handleSimWebhook)
	mux.HandleFunc("POST /sim/locks/{id}/operate", a.handleSimOperate)
	return a.logRequests(mux)
}

// Close stops webhook delivery and waits for the senders to return.
// Queued webhooks are dropped. The handler keeps serving requests.
func (a *Account) Close() {
	a.close.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()

		a.stop()
		a.wg.Wait()
	})
}

// SetWebhookURL changes where webhooks are POSTed; empty means nowhere.
func (a *Account) SetWebhookURL(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.webhookURL = u
}

// Locks returns copies of all locks, in the order of the lock list,
// with Secrets filled.
func (a *Account) Locks() []loqed.Lock {
	a.mu.Lock()
	defer a.mu.Unlock()

	out := make([]loqed.Lock, 0, len(a.locks))
	for _, l := range a.locks {
		out = append(out, a.snapshot(l))
	}
	return out
}

// Lock returns a copy of the lock with the API id id.
func (a *Account) Lock(id string) (loqed.Lock, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()

	l := a.find(id)
	if l == nil {
		return loqed.Lock{}, false
	}
	return a.snapshot(l), true
}

// snapshot returns l as a client decodes it from the lock list, so that
// tests compare against exactly what the API returns. a.mu must be held.
func (a *Account) snapshot(l *simLock) loqed.Lock {
	body, err := json.Marshal(map[string]any{"data": []map[string]any{a.record(l)}})
	if err != nil {
		panic("loqedtest: cannot encode lock record: " + err.Error())
	}
	locks, err := loqed.DecodeLockList(body)
	if err != nil || len(locks) != 1 {
		panic(fmt.Sprintf("loqedtest: lock record does not decode: %v", err))
	}
	return locks[0]
}

// AddLock adds l to the account, or replaces the lock with the same id.
// Empty fields get defaults: a generated id, "Lock N", LOQED Touch, day
// lock, all three states and invented credentials. Settings entries set
// the matching Lock fields when those are nil (open_house_mode sets
// guest_access_mode) and are otherwise kept as extra settings.
func (a *Account) AddLock(l loqed.Lock) {
	a.mu.Lock()
	defer a.mu.Unlock()

	index := a.nextIndex
	if existing := a.find(l.ID); existing != nil {
		index = existing.index
	} else {
		a.nextIndex++
	}

	l = normalizeLock(l, index)
	if existing := a.find(l.ID); existing != nil {
		existing.lock = l
		return
	}
	a.locks = append(a.locks, &simLock{index: index, lock: l})
}

// normalizeLock fills the defaults AddLock documents into a deep copy.
func normalizeLock(l loqed.Lock, index int) loqed.Lock {
	if l.ID == "" {
		l.ID = LockID(index)
	}
	if l.Name == "" {
		l.Name = fmt.Sprintf("Lock %d", index+1)
	}
	if l.ModelName == "" {
		l.ModelName = "LOQED Touch"
	}
	if l.BoltState == "" {
		l.BoltState = loqed.StateDayLock
	}
	if len(l.SupportedLockStates) == 0 {
		l.SupportedLockStates = []loqed.BoltState{loqed.StateOpen, loqed.StateDayLock, loqed.StateNightLock}
	} else {
		l.SupportedLockStates = slices.Clone(l.SupportedLockStates)
	}

	l.BatteryPercentage = clonePtr(l.BatteryPercentage)
	l.Online = clonePtr(l.Online)
	l.PartyMode = clonePtr(l.PartyMode)
	l.GuestAccessMode = clonePtr(l.GuestAccessMode)
	l.TwistAssist = clonePtr(l.TwistAssist)
	l.TouchToConnect = clonePtr(l.TouchToConnect)

	extra := make(map[string]bool)
	for name, v := range l.Settings {
		if field := boolField(&l, name); field != nil {
			if *field == nil {
				*field = ptr(v)
			}
			continue
		}
		extra[name] = v
	}
	l.Settings = extra

	if l.Secrets.LocalID == nil {
		l.Secrets.LocalID = ptr(index%250 + 1)
	} else {
		l.Secrets.LocalID = clonePtr(l.Secrets.LocalID)
	}
	if l.Secrets.KeySecret == "" {
		l.Secrets.KeySecret = inventedKey("key_secret", l.ID)
	}
	if l.Secrets.BridgeKey == "" {
		l.Secrets.BridgeKey = inventedKey("bridge_key", l.ID)
	}
	if l.Secrets.BackendKey == "" {
		l.Secrets.BackendKey = inventedKey("backend_key", l.ID)
	}
	return l
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// boolField returns the Lock field that stores the setting name, or nil
// when the setting has no field of its own. open_house_mode is stored in
// guest_access_mode, the list field loqed.DecodeLockList reads it from.
func boolField(l *loqed.Lock, name string) **bool {
	switch name {
	case "party_mode":
		return &l.PartyMode
	case "guest_access_mode", loqed.SettingOpenHouseMode:
		return &l.GuestAccessMode
	case loqed.SettingTwistAssist:
		return &l.TwistAssist
	case loqed.SettingTouchToConnect:
		return &l.TouchToConnect
	}
	return nil
}

// RemoveLock removes the lock with the API id id. Webhooks already
// queued for it are still sent.
func (a *Account) RemoveLock(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.locks = slices.DeleteFunc(a.locks, func(l *simLock) bool { return l.lock.ID == id })
}

// RenameLock changes the name of the lock with the API id id.
func (a *Account) RenameLock(id, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()

	if l := a.find(id); l != nil {
		l.lock.Name = name
	}
}

// find returns the lock with the API id id, or nil. a.mu must be held.
func (a *Account) find(id string) *simLock {
	for _, l := range a.locks {
		if l.lock.ID == id {
			return l
		}
	}
	return nil
}

// Requests returns a copy of the request log of /api/ and /login.
func (a *Account) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// CountRequests returns how many logged requests have the method (any
// method when empty) and a path starting with pathPrefix.
func (a *Account) CountRequests(method, pathPrefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()

	n := 0
	for _, r := range a.requests {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// FailNext makes the next n authenticated API calls fail with status. A 429
// carries Retry-After with retryAfter rounded up to whole seconds when
// retryAfter is positive.
func (a *Account) FailNext(n int, status int, retryAfter time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.faults.failNext = n
	a.faults.failStatus = status
	a.faults.retryAfter = retryAfter
}

// DelayNext makes the next n authenticated API calls wait d, or until the
// request is canceled, before they are handled.
func (a *Account) DelayNext(n int, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.faults.delayNext = n
	a.faults.delay = d
}

// DropFinalWebhook makes the next n bolt state commands send their
// GO_TO_STATE webhook but no STATE_CHANGED webhook. The lock still moves,
// so the lock list shows the new state.
func (a *Account) DropFinalWebhook(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.faults.dropFinal = n
}

// RevokeKey makes commands on the lock fail with the 404 LOQED returns
// when the token's key was deleted in the app. The lock list still works.
func (a *Account) RevokeKey(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.revoked[id] = true
}

// RestoreKey undoes RevokeKey.
func (a *Account) RestoreKey(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()

	delete(a.revoked, id)
}

// SendWebhook POSTs body to the webhook URL now, outside the per-lock
// queues. It fails when no URL is set, the POST fails or the response
// status is not 2xx.
func (a *Account) SendWebhook(body []byte) error {
	a.mu.Lock()
	url := a.webhookURL
	a.mu.Unlock()

	if url == "" {
		return errors.New("no webhook URL is set")
	}
	return a.postWebhook(url, body)
}

// Operate moves the lock as a hand on the knob would: after MoveDelay the
// lock reaches s and a STATE_CHANGED webhook without a key is sent. It is
// queued behind the lock's pending webhooks.
func (a *Account) Operate(id string, s loqed.BoltState) error {
	if !s.Valid() {
		return fmt.Errorf("invalid bolt state %q: want open, day_lock or night_lock", string(s))
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	l := a.find(id)
	if l == nil {
		return fmt.Errorf("lock %q not found", id)
	}
	a.enqueue(l, job{target: s, manual: true})
	return nil
}

// WaitIdle returns nil once no webhook is queued or being sent, or the
// context's error when ctx ends first.
func (a *Account) WaitIdle(ctx context.Context) error {
	for {
		a.mu.Lock()
		pending, changed := a.pending, a.changed
		a.mu.Unlock()

		if pending == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
