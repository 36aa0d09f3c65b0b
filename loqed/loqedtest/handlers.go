package loqedtest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// loginPage is served at /login, where the API redirects requests without
// a valid token.
const loginPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="csrf-token" content="loqedtest"><title>LOQED Integrations - Log in</title></head>
<body><form method="POST" action="/login"><input name="email"><input name="password" type="password"><button>Log in</button></form></body>
</html>
`

// maxRequestBody bounds the bodies the fake reads.
const maxRequestBody = 64 << 10

type apiMessage struct {
	Message string `json:"message"`
}

func message(text string) apiMessage { return apiMessage{Message: text} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func handleLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	io.WriteString(w, loginPage)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logRequests records /api/ and /login requests in the request log. The
// control endpoints are left out, so that polling them does not change
// what tests count.
func (a *Account) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logged := strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api" || r.URL.Path == "/login"
		if !logged {
			next.ServeHTTP(w, r)
			return
		}

		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}

		a.mu.Lock()
		a.requests = append(a.requests, Request{Method: r.Method, Path: r.URL.Path, Status: rec.status, Time: start})
		if len(a.requests) > maxRequestLog {
			a.requests = slices.Clone(a.requests[len(a.requests)-maxRequestLog:])
		}
		a.mu.Unlock()

		a.logf("loqedtest: %s %s -> %d (%s)", r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Millisecond))
	})
}

// authenticate checks the bearer token and then applies pending delay and
// failure faults. Like the real service, a missing or wrong token is
// redirected to the login page.
func (a *Account) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + a.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if a.opts.Token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}

		a.mu.Lock()
		var delay time.Duration
		if a.faults.delayNext > 0 {
			a.faults.delayNext--
			delay = a.faults.delay
		}
		failStatus, retryAfter := 0, time.Duration(0)
		if a.faults.failNext > 0 {
			a.faults.failNext--
			failStatus, retryAfter = a.faults.failStatus, a.faults.retryAfter
		}
		a.mu.Unlock()

		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-a.ctx.Done():
				t.Stop()
			}
		}

		if failStatus != 0 {
			writeFault(w, failStatus, retryAfter)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeFault writes the response of an injected failure the way the real
// service responds with that status.
func writeFault(w http.ResponseWriter, status int, retryAfter time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		if retryAfter > 0 {
			secs := int64((retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		w.Header().Set("X-Ratelimit-Limit", "60")
		w.Header().Set("X-Ratelimit-Remaining", "0")
		writeJSON(w, status, message("Too Many Attempts."))
	case status >= 300 && status < 400:
		w.Header().Set("Location", "/login")
		w.WriteHeader(status)
	case status >= 500:
		writeJSON(w, status, message("Server Error"))
	default:
		writeJSON(w, status, message(http.StatusText(status)))
	}
}

func (a *Account) handleListLocks(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	records := make([]map[string]any, 0, len(a.locks))
	for _, l := range a.locks {
		records = append(records, a.record(l))
	}
	a.mu.Unlock()

	w.Header().Set("X-Ratelimit-Limit", "60")
	w.Header().Set("X-Ratelimit-Remaining", "59")
	writeJSON(w, http.StatusOK, map[string]any{"data": records})
}

// record returns the lock list record of l, with the fields and spellings
// of the real list. a.mu must be held.
func (a *Account) record(l *simLock) map[string]any {
	lk := l.lock
	battery := -1
	if lk.BatteryPercentage != nil {
		battery = *lk.BatteryPercentage
	}
	states := make([]string, 0, len(lk.SupportedLockStates))
	for _, s := range lk.SupportedLockStates {
		states = append(states, string(s))
	}

	rec := map[string]any{
		"id":                    lk.ID,
		"name":                  lk.Name,
		"model_name":            lk.ModelName,
		"battery_percentage":    battery,
		"battery_type":          cloudBatteryType(lk.BatteryType),
		"bolt_state":            string(lk.BoltState),
		"lock_direction":        lk.LockDirection,
		"mortise_lock_type":     lk.MortiseLockType,
		"supported_lock_states": states,
		"bridge_ip":             "192.0.2." + strconv.Itoa(20+l.index%200),
		"bridge_hostname":       fmt.Sprintf("LOQED-0a1b2c3d%04x.local", l.index%0x10000),
		"bridge_webhook_count":  1,
		"local_id":              *lk.Secrets.LocalID,
		"key_secret":            lk.Secrets.KeySecret,
		"bridge_key":            lk.Secrets.BridgeKey,
		"backend_key":           lk.Secrets.BackendKey,
	}
	for name, p := range map[string]*bool{
		"party_mode":        lk.PartyMode,
		"guest_access_mode": lk.GuestAccessMode,
		"twist_assist":      lk.TwistAssist,
		"touch_to_connect":  lk.TouchToConnect,
		"online":            lk.Online,
	} {
		if p != nil {
			rec[name] = *p
		}
	}
	for name, v := range lk.Settings {
		if _, exists := rec[name]; !exists {
			rec[name] = v
		}
	}
	return rec
}

// cloudBatteryType spells a normalised battery type as the lock list does.
func cloudBatteryType(t string) string {
	switch t {
	case loqed.BatteryNiMH:
		return "nickel_metal_hydride"
	case loqed.BatteryAlkaline, loqed.BatteryLithium:
		return t
	}
	return "unknown"
}

// commandTarget looks up the lock of a command and checks that its key is
// valid. It writes the error response and returns nil when the command
// must not proceed. a.mu must be held.
func (a *Account) commandTarget(w http.ResponseWriter, id string) *simLock {
	l := a.find(id)
	if l == nil {
		writeJSON(w, http.StatusNotFound, message("Lock not found"))
		return nil
	}
	if a.revoked[id] {
		writeJSON(w, http.StatusNotFound, message(keyRevokedMessage))
		return nil
	}
	return l
}

func (a *Account) handleBoltState(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()

	l := a.commandTarget(w, r.PathValue("id"))
	if l == nil {
		return
	}
	target := loqed.BoltState(r.PathValue("state"))
	if !target.Valid() {
		writeJSON(w, http.StatusBadRequest, message("Invalid bolt state. Use open, day_lock or night_lock."))
		return
	}
	if !l.lock.Supports(target) {
		writeJSON(w, http.StatusBadRequest, message("This lock does not support the requested bolt state."))
		return
	}

	drop := a.faults.dropFinal > 0
	if drop {
		a.faults.dropFinal--
	}
	a.enqueue(l, job{target: target, dropFinal: drop})
	w.WriteHeader(http.StatusNoContent)
}

func (a *Account) handleSetting(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  *string         `json:"setting_name"`
		Value json.RawMessage `json:"setting_value"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, message("The request body must be a JSON object."))
		return
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	l := a.commandTarget(w, r.PathValue("id"))
	if l == nil {
		return
	}
	if req.Name == nil || !a.knownSetting(l, *req.Name) {
		writeJSON(w, http.StatusUnprocessableEntity, message("The selected setting name is invalid."))
		return
	}
	if len(req.Value) == 0 || string(req.Value) == "null" {
		writeJSON(w, http.StatusUnprocessableEntity, message("The setting value field is required."))
		return
	}
	value, err := strconv.ParseInt(string(req.Value), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, message("The setting value must be an integer."))
		return
	}
	if value != 0 && value != 1 {
		writeJSON(w, http.StatusUnprocessableEntity, message("The setting value must be 0 or 1."))
		return
	}

	on := value == 1
	if field := boolField(&l.lock, *req.Name); field != nil {
		*field = &on
	} else {
		l.lock.Settings[*req.Name] = on
	}
	w.WriteHeader(http.StatusNoContent)
}

// knownSetting reports whether the API accepts the setting name for l:
// the three names LOQED documents, and settings the lock was created with.
func (a *Account) knownSetting(l *simLock, name string) bool {
	switch name {
	case loqed.SettingOpenHouseMode, loqed.SettingTwistAssist, loqed.SettingTouchToConnect:
		return true
	}
	_, ok := l.lock.Settings[name]
	return ok
}

func (a *Account) handleSimRequests(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Requests())
}

func (a *Account) handleSimLocks(w http.ResponseWriter, r *http.Request) {
	// loqed.Lock does not marshal Secrets.
	writeJSON(w, http.StatusOK, a.Locks())
}

// Faults is the body of POST /sim/faults. Zero fields leave that fault
// unchanged.
type Faults struct {
	FailNext          int    `json:"fail_next"`
	Status            int    `json:"status"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
	DelayNext         int    `json:"delay_next"`
	DelayMS           int    `json:"delay_ms"`
	DropFinalWebhook  int    `json:"drop_final_webhook"`
	RevokeKey         string `json:"revoke_key"`
	RestoreKey        string `json:"restore_key"`
}

// Apply sets the faults f names on a.
func (f Faults) Apply(a *Account) error {
	if f.FailNext > 0 {
		if f.Status < 100 || f.Status > 599 {
			return errors.New("status must be an HTTP status between 100 and 599 when fail_next is set")
		}
		a.FailNext(f.FailNext, f.Status, time.Duration(f.RetryAfterSeconds)*time.Second)
	}
	if f.DelayNext > 0 {
		a.DelayNext(f.DelayNext, time.Duration(f.DelayMS)*time.Millisecond)
	}
	if f.DropFinalWebhook > 0 {
		a.DropFinalWebhook(f.DropFinalWebhook)
	}
	if f.RevokeKey != "" {
		a.RevokeKey(f.RevokeKey)
	}
	if f.RestoreKey != "" {
		a.RestoreKey(f.RestoreKey)
	}
	return nil
}

func (a *Account) handleSimFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, message("invalid faults: "+err.Error()))
		return
	}
	if err := f.Apply(a); err != nil {
		writeJSON(w, http.StatusBadRequest, message("invalid faults: "+err.Error()))
		return
	}
	a.logf("loqedtest: faults set: %+v", f)
	w.WriteHeader(http.StatusNoContent)
}

func (a *Account) handleSimWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, message("cannot read body: "+err.Error()))
		return
	}
	if err := a.SendWebhook(body); err != nil {
		writeJSON(w, http.StatusBadGateway, message(err.Error()))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Account) handleSimOperate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State loqed.BoltState `json:"state"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, message(`body must be {"state": "open|day_lock|night_lock"}`))
		return
	}
	if err := a.Operate(r.PathValue("id"), req.State); err != nil {
		writeJSON(w, http.StatusBadRequest, message(err.Error()))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
