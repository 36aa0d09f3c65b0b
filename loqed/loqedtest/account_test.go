package loqedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

const token = "test-token-5e1f"

// receiver is a webhook endpoint that decodes every body it gets.
type receiver struct {
	srv    *httptest.Server
	events chan loqed.Event
	mu     sync.Mutex
	bodies [][]byte
	header http.Header
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{events: make(chan loqed.Event, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.header = r.Header.Clone()
		rc.mu.Unlock()

		ev, err := loqed.DecodeWebhook(body)
		if err != nil {
			t.Errorf("webhook %s does not decode: %v", body, err)
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		rc.events <- ev
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// next returns the next event, failing the test after a deadline.
func (rc *receiver) next(t *testing.T) loqed.Event {
	t.Helper()
	select {
	case ev := <-rc.events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook arrived within 5s")
		return loqed.Event{}
	}
}

// count returns how many webhooks arrived.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.bodies)
}

// fixture is an account served by httptest with a client for it.
type fixture struct {
	acct   *Account
	srv    *httptest.Server
	client *loqed.Client
	rc     *receiver
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{rc: newReceiver(t)}
	opts.Token = token
	if opts.WebhookURL == "" {
		opts.WebhookURL = f.rc.srv.URL + "/webhook/secret"
	}
	opts.Logf = t.Logf

	f.acct = New(opts)
	f.srv = httptest.NewServer(f.acct.Handler())
	t.Cleanup(func() {
		f.acct.Close()
		f.srv.Close()
	})

	var err error
	f.client, err = loqed.NewClient(loqed.ClientOptions{BaseURL: f.srv.URL, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitIdle waits until the account has sent all webhooks.
func (f *fixture) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.acct.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
}

func TestAccount_ListLocks(t *testing.T) {
	f := newFixture(t, Options{Locks: 3})

	locks, err := f.client.ListLocks(context.Background())
	if err != nil {
		t.Fatalf("ListLocks: %v", err)
	}
	if len(locks) != 3 {
		t.Fatalf("len(locks) = %d; want 3", len(locks))
	}

	wantNames := []string{"Front door", "Back door", "Lock 3"}
	for i, l := range locks {
		if l.ID != LockID(i) {
			t.Errorf("locks[%d].ID = %q; want %q", i, l.ID, LockID(i))
		}
		if l.Name != wantNames[i] {
			t.Errorf("locks[%d].Name = %q; want %q", i, l.Name, wantNames[i])
		}
		if l.BoltState != loqed.StateDayLock {
			t.Errorf("locks[%d].BoltState = %q; want day_lock", i, l.BoltState)
		}
		if l.Secrets.KeySecret == "" || l.Secrets.BridgeKey == "" || l.Secrets.BackendKey == "" || l.Secrets.LocalID == nil {
			t.Errorf("locks[%d] has incomplete secrets", i)
		}
		if l.Settings[loqed.SettingOpenHouseMode] || !l.Settings[loqed.SettingTouchToConnect] {
			t.Errorf("locks[%d].Settings = %v; want open_house_mode off, touch_to_connect on", i, l.Settings)
		}
	}

	if got := f.acct.Locks(); !equalJSON(t, got, locks) {
		t.Errorf("Account.Locks() differs from the listed locks")
	}
	if got := f.acct.Locks(); got[0].Secrets.KeySecret != locks[0].Secrets.KeySecret {
		t.Errorf("Account.Locks() secrets differ from the listed locks")
	}
}

// equalJSON compares the JSON form of two values.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestLockID_Stable(t *testing.T) {
	alnum := regexp.MustCompile(`^[A-Za-z0-9]{20}$`)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		id := LockID(i)
		if !alnum.MatchString(id) {
			t.Errorf("LockID(%d) = %q; want 20 letters and digits", i, id)
		}
		if seen[id] {
			t.Errorf("LockID(%d) = %q repeats an earlier id", i, id)
		}
		seen[id] = true
		if LockID(i) != id {
			t.Errorf("LockID(%d) is not stable", i)
		}
	}

	a, b := New(Options{Locks: 2}), New(Options{Locks: 2})
	defer a.Close()
	defer b.Close()
	if a.Locks()[1].ID != b.Locks()[1].ID || a.Locks()[1].Secrets.KeySecret != b.Locks()[1].Secrets.KeySecret {
		t.Error("two accounts with the same options have different locks")
	}
}

func TestAccount_BoltStateWebhooks(t *testing.T) {
	f := newFixture(t, Options{MoveDelay: 5 * time.Millisecond})
	ctx := context.Background()
	id := LockID(0)

	if err := f.client.SetBoltState(ctx, id, loqed.StateNightLock); err != nil {
		t.Fatalf("SetBoltState(night_lock): %v", err)
	}
	ev := f.rc.next(t)
	if ev.Type != "GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK" || ev.Kind != loqed.KindGoToState || ev.State != loqed.StateNightLock {
		t.Errorf("first webhook = %s %v %s; want GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK to night_lock", ev.Type, ev.Kind, ev.State)
	}
	if ev.LockID != id {
		t.Errorf("LockID = %q; want %q", ev.LockID, id)
	}
	if ev.KeyLocalID == nil || *ev.KeyLocalID != 1 {
		t.Errorf("KeyLocalID = %v; want 1", ev.KeyLocalID)
	}
	ev = f.rc.next(t)
	if ev.Type != "STATE_CHANGED_NIGHT_LOCK" || ev.State != loqed.StateNightLock || ev.RequestedState != loqed.StateNightLock {
		t.Errorf("second webhook = %s %s; want STATE_CHANGED_NIGHT_LOCK", ev.Type, ev.State)
	}
	f.waitIdle(t)
	if l, _ := f.acct.Lock(id); l.BoltState != loqed.StateNightLock {
		t.Errorf("BoltState = %q; want night_lock", l.BoltState)
	}

	// Opening ends in the latch, announced without a key.
	if err := f.client.SetBoltState(ctx, id, loqed.StateOpen); err != nil {
		t.Fatalf("SetBoltState(open): %v", err)
	}
	wantTypes := []string{"GO_TO_STATE_MANUAL_UNLOCK_REMOTE_OPEN", "STATE_CHANGED_OPEN", "STATE_CHANGED_LATCH"}
	var last loqed.Event
	for _, want := range wantTypes {
		last = f.rc.next(t)
		if last.Type != want {
			t.Errorf("webhook = %s; want %s", last.Type, want)
		}
	}
	if last.KeyLocalID != nil || last.KeyNameUser != "" {
		t.Errorf("return to latch names key %v %q; want none", last.KeyLocalID, last.KeyNameUser)
	}
	f.waitIdle(t)
	if l, _ := f.acct.Lock(id); l.BoltState != loqed.StateDayLock {
		t.Errorf("BoltState after open = %q; want day_lock", l.BoltState)
	}

	// A command for the current state moves nothing.
	before := f.rc.count()
	if err := f.client.SetBoltState(ctx, id, loqed.StateDayLock); err != nil {
		t.Fatalf("SetBoltState(day_lock): %v", err)
	}
	if ev := f.rc.next(t); ev.Type != "GO_TO_STATE_MANUAL_LOCK_REMOTE_LATCH" {
		t.Errorf("webhook = %s; want GO_TO_STATE_MANUAL_LOCK_REMOTE_LATCH", ev.Type)
	}
	f.waitIdle(t)
	if got := f.rc.count() - before; got != 1 {
		t.Errorf("command for the current state sent %d webhooks; want 1", got)
	}

	f.rc.mu.Lock()
	ua := f.rc.header.Get("User-Agent")
	f.rc.mu.Unlock()
	if !strings.HasPrefix(ua, "Java/1.8.0") {
		t.Errorf("User-Agent = %q; want the cloud's Java/1.8.0_*", ua)
	}
}

func TestAccount_WebhooksInOrderPerLock(t *testing.T) {
	f := newFixture(t, Options{Locks: 2, MoveDelay: time.Millisecond})
	ctx := context.Background()

	for _, s := range []loqed.BoltState{loqed.StateNightLock, loqed.StateDayLock, loqed.StateNightLock} {
		for i := 0; i < 2; i++ {
			if err := f.client.SetBoltState(ctx, LockID(i), s); err != nil {
				t.Fatalf("SetBoltState: %v", err)
			}
		}
	}
	f.waitIdle(t)

	got := map[string][]string{}
	for n := f.rc.count(); n > 0; n-- {
		ev := f.rc.next(t)
		got[ev.LockID] = append(got[ev.LockID], ev.Type)
	}
	want := []string{
		"GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK", "STATE_CHANGED_NIGHT_LOCK",
		"GO_TO_STATE_MANUAL_LOCK_REMOTE_LATCH", "STATE_CHANGED_LATCH",
		"GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK", "STATE_CHANGED_NIGHT_LOCK",
	}
	for i := 0; i < 2; i++ {
		if strings.Join(got[LockID(i)], " ") != strings.Join(want, " ") {
			t.Errorf("lock %d webhooks =\n%v\nwant\n%v", i, got[LockID(i)], want)
		}
	}
}

func TestAccount_NumericWebhookIDs(t *testing.T) {
	f := newFixture(t, Options{Locks: 2, NumericWebhookIDs: true})

	if err := f.client.SetBoltState(context.Background(), LockID(1), loqed.StateNightLock); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t)
	if ev := f.rc.next(t); ev.LockID != "6149" {
		t.Errorf("LockID = %q; want 6149", ev.LockID)
	}

	f.rc.mu.Lock()
	body := string(f.rc.bodies[0])
	f.rc.mu.Unlock()
	if !strings.Contains(body, `"lock_id":6149`) || !strings.Contains(body, `"key_local_id":"2"`) {
		t.Errorf("body %s lacks a numeric lock_id and a string key_local_id", body)
	}
}

func TestAccount_BadTokenRedirectsToLogin(t *testing.T) {
	f := newFixture(t, Options{})

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", token} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/locks/", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
			t.Errorf("auth %q: status %d, Location %q; want 302 to /login", auth, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	resp, err := http.Get(f.srv.URL + "/api/locks/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.HasPrefix(body, []byte("<!DOCTYPE html>")) {
		t.Errorf("following the redirect gave %d %q; want 200 with the HTML login page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	bad, err := loqed.NewClient(loqed.ClientOptions{BaseURL: f.srv.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ListLocks(context.Background()); !errors.Is(err, loqed.ErrUnauthorized) {
		t.Errorf("ListLocks with a wrong token: %v; want ErrUnauthorized", err)
	}
	if err := bad.SetBoltState(context.Background(), LockID(0), loqed.StateOpen); !errors.Is(err, loqed.ErrUnauthorized) {
		t.Errorf("SetBoltState with a wrong token: %v; want ErrUnauthorized", err)
	}
	f.waitIdle(t)
	if n := f.rc.count(); n != 0 {
		t.Errorf("%d webhooks sent for unauthenticated commands; want 0", n)
	}
}

func TestAccount_Settings(t *testing.T) {
	custom := loqed.Lock{ID: "CustomLock", Name: "Shed", Settings: map[string]bool{"touch_to_lock": false}}
	f := newFixture(t, Options{})
	f.acct.AddLock(custom)
	ctx := context.Background()
	id := LockID(0)

	if err := f.client.SetSetting(ctx, id, loqed.SettingOpenHouseMode, 1); err != nil {
		t.Fatalf("SetSetting(open_house_mode): %v", err)
	}
	if err := f.client.SetSetting(ctx, id, loqed.SettingTwistAssist, 1); err != nil {
		t.Fatalf("SetSetting(twist_assist): %v", err)
	}
	if err := f.client.SetSetting(ctx, id, loqed.SettingTouchToConnect, 0); err != nil {
		t.Fatalf("SetSetting(touch_to_connect): %v", err)
	}

	locks, err := f.client.ListLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := locks[0]
	for name, want := range map[string]bool{"open_house_mode": true, "guest_access_mode": true, "twist_assist": true, "touch_to_connect": false, "party_mode": false} {
		if got, ok := l.Settings[name]; !ok || got != want {
			t.Errorf("Settings[%q] = %v (present %v); want %v", name, got, ok, want)
		}
	}

	if err := f.client.SetSetting(ctx, "CustomLock", "touch_to_lock", 1); err != nil {
		t.Errorf("SetSetting of a custom setting: %v", err)
	}
	if l, _ := f.acct.Lock("CustomLock"); !l.Settings["touch_to_lock"] {
		t.Errorf("custom setting not changed: %v", l.Settings)
	}

	if err := f.client.SetSetting(ctx, id, "touch_to_lock", 1); !errors.Is(err, loqed.ErrBadRequest) {
		t.Errorf("unknown setting: %v; want ErrBadRequest", err)
	}
	var apiErr *loqed.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown setting status = %d; want 422", apiErr.StatusCode)
	}
	if err := f.client.SetSetting(ctx, id, loqed.SettingTwistAssist, 2); !errors.Is(err, loqed.ErrBadRequest) {
		t.Errorf("value 2: %v; want ErrBadRequest", err)
	}

	for _, body := range []string{`{"setting_name":"twist_assist","setting_value":1.5}`, `{"setting_name":"twist_assist","setting_value":"1"}`, `{"setting_name":"twist_assist"}`} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/locks/"+id+"/setting", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %s: status %d; want 422 or 400", body, resp.StatusCode)
		}
	}
}

func TestAccount_Faults(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	id := LockID(0)

	f.acct.FailNext(2, http.StatusTooManyRequests, 2500*time.Millisecond)
	for i := 0; i < 2; i++ {
		_, err := f.client.ListLocks(ctx)
		var apiErr *loqed.APIError
		if !errors.As(err, &apiErr) || !errors.Is(err, loqed.ErrRateLimited) {
			t.Fatalf("call %d: %v; want ErrRateLimited", i+1, err)
		}
		if apiErr.RetryAfter != 3*time.Second {
			t.Errorf("RetryAfter = %v; want 3s", apiErr.RetryAfter)
		}
	}
	if _, err := f.client.ListLocks(ctx); err != nil {
		t.Errorf("third call after FailNext(2): %v", err)
	}

	f.acct.FailNext(1, http.StatusInternalServerError, 0)
	if err := f.client.SetBoltState(ctx, id, loqed.StateNightLock); !errors.Is(err, loqed.ErrServer) {
		t.Errorf("after FailNext(500): %v; want ErrServer", err)
	}
	f.acct.FailNext(1, http.StatusFound, 0)
	if _, err := f.client.ListLocks(ctx); !errors.Is(err, loqed.ErrUnauthorized) {
		t.Errorf("after FailNext(302): %v; want ErrUnauthorized", err)
	}

	f.acct.DelayNext(1, time.Minute)
	fast, err := loqed.NewClient(loqed.ClientOptions{BaseURL: f.srv.URL, Token: token, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fast.ListLocks(ctx); !errors.Is(err, loqed.ErrTimeout) {
		t.Errorf("after DelayNext: %v; want ErrTimeout", err)
	}
	if _, err := fast.ListLocks(ctx); err != nil {
		t.Errorf("second call after DelayNext(1): %v", err)
	}

	f.acct.RevokeKey(id)
	if err := f.client.SetBoltState(ctx, id, loqed.StateNightLock); !errors.Is(err, loqed.ErrKeyRevoked) {
		t.Errorf("after RevokeKey: %v; want ErrKeyRevoked", err)
	}
	if err := f.client.SetSetting(ctx, id, loqed.SettingTwistAssist, 1); !errors.Is(err, loqed.ErrKeyRevoked) {
		t.Errorf("setting after RevokeKey: %v; want ErrKeyRevoked", err)
	}
	if _, err := f.client.ListLocks(ctx); err != nil {
		t.Errorf("ListLocks after RevokeKey: %v", err)
	}
	f.acct.RestoreKey(id)

	if err := f.client.SetBoltState(ctx, "NoSuchLock", loqed.StateOpen); !errors.Is(err, loqed.ErrNotFound) {
		t.Errorf("unknown lock: %v; want ErrNotFound", err)
	}
	f.waitIdle(t)
	if n := f.rc.count(); n != 0 {
		t.Errorf("%d webhooks sent for failed commands; want 0", n)
	}
}

func TestAccount_DropFinalWebhook(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	id := LockID(0)

	f.acct.DropFinalWebhook(1)
	if err := f.client.SetBoltState(ctx, id, loqed.StateNightLock); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t)
	if n := f.rc.count(); n != 1 {
		t.Fatalf("%d webhooks; want only GO_TO_STATE", n)
	}
	if ev := f.rc.next(t); ev.Kind != loqed.KindGoToState {
		t.Errorf("webhook kind = %v; want go_to_state", ev.Kind)
	}
	if l, _ := f.acct.Lock(id); l.BoltState != loqed.StateNightLock {
		t.Errorf("BoltState = %q; want night_lock: the lock moved, only the webhook was lost", l.BoltState)
	}

	if err := f.client.SetBoltState(ctx, id, loqed.StateDayLock); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t)
	if n := f.rc.count(); n != 3 {
		t.Errorf("%d webhooks after the fault was used up; want 3", n)
	}
}

func TestAccount_RequestLog(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()

	f.client.ListLocks(ctx)
	f.client.SetBoltState(ctx, LockID(0), loqed.StateNightLock)
	f.client.SetBoltState(ctx, "NoSuchLock", loqed.StateNightLock)
	http.Get(f.srv.URL + "/sim/locks")

	reqs := f.acct.Requests()
	want := []Request{
		{Method: "GET", Path: "/api/locks/", Status: 200},
		{Method: "GET", Path: "/api/locks/" + LockID(0) + "/bolt_state/night_lock", Status: 204},
		{Method: "GET", Path: "/api/locks/NoSuchLock/bolt_state/night_lock", Status: 404},
	}
	if len(reqs) != len(want) {
		t.Fatalf("Requests = %+v; want %d entries", reqs, len(want))
	}
	for i, r := range reqs {
		if r.Method != want[i].Method || r.Path != want[i].Path || r.Status != want[i].Status || r.Time.IsZero() {
			t.Errorf("Requests[%d] = %+v; want %+v with a time", i, r, want[i])
		}
	}
	if n := f.acct.CountRequests("GET", "/api/locks/"); n != 3 {
		t.Errorf("CountRequests(GET, /api/locks/) = %d; want 3", n)
	}
	if n := f.acct.CountRequests("", "/api/locks/NoSuchLock"); n != 1 {
		t.Errorf("CountRequests(any, NoSuchLock) = %d; want 1", n)
	}

	resp, err := http.Get(f.srv.URL + "/sim/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var viaHTTP []Request
	if err := json.NewDecoder(resp.Body).Decode(&viaHTTP); err != nil {
		t.Fatalf("cannot decode /sim/requests: %v", err)
	}
	if len(viaHTTP) != len(want) || viaHTTP[1].Status != 204 {
		t.Errorf("/sim/requests = %+v; want the same log", viaHTTP)
	}
}

func TestAccount_SimEndpoints(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()

	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(f.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if code := post("/sim/faults", `{"fail_next":1,"status":503}`); code != http.StatusNoContent {
		t.Fatalf("POST /sim/faults: %d; want 204", code)
	}
	if _, err := f.client.ListLocks(ctx); !errors.Is(err, loqed.ErrServer) {
		t.Errorf("after fail_next 503: %v; want ErrServer", err)
	}
	if code := post("/sim/faults", `{"fial_next":1}`); code != http.StatusBadRequest {
		t.Errorf("POST /sim/faults with a misspelt field: %d; want 400", code)
	}
	if code := post("/sim/faults", `{"fail_next":1}`); code != http.StatusBadRequest {
		t.Errorf("POST /sim/faults without status: %d; want 400", code)
	}
	if code := post("/sim/faults", `{"revoke_key":"`+LockID(0)+`"}`); code != http.StatusNoContent {
		t.Errorf("POST /sim/faults revoke_key: %d; want 204", code)
	}
	if err := f.client.SetBoltState(ctx, LockID(0), loqed.StateOpen); !errors.Is(err, loqed.ErrKeyRevoked) {
		t.Errorf("after revoke_key: %v; want ErrKeyRevoked", err)
	}
	post("/sim/faults", `{"restore_key":"`+LockID(0)+`"}`)

	if code := post("/sim/webhook", `{"lock_id":"x","battery_percentage":12}`); code != http.StatusNoContent {
		t.Errorf("POST /sim/webhook: %d; want 204", code)
	}
	if ev := f.rc.next(t); ev.BatteryPercentage == nil || *ev.BatteryPercentage != 12 {
		t.Errorf("relayed webhook = %+v; want battery 12", ev)
	}

	if code := post("/sim/locks/"+LockID(0)+"/operate", `{"state":"night_lock"}`); code != http.StatusNoContent {
		t.Errorf("POST operate: %d; want 204", code)
	}
	ev := f.rc.next(t)
	if ev.Type != "STATE_CHANGED_NIGHT_LOCK" || ev.KeyLocalID != nil {
		t.Errorf("manual operation webhook = %s key %v; want STATE_CHANGED_NIGHT_LOCK without key", ev.Type, ev.KeyLocalID)
	}
	if code := post("/sim/locks/nope/operate", `{"state":"night_lock"}`); code != http.StatusBadRequest {
		t.Errorf("operate on an unknown lock: %d; want 400", code)
	}

	resp, err := http.Get(f.srv.URL + "/sim/locks")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	secret := f.acct.Locks()[0].Secrets.KeySecret
	if !strings.Contains(string(body), LockID(0)) || strings.Contains(string(body), secret) {
		t.Errorf("/sim/locks = %s; want the lock without its key_secret", body)
	}
}

func TestAccount_AddRemoveRename(t *testing.T) {
	f := newFixture(t, Options{Locks: 2})
	ctx := context.Background()

	f.acct.AddLock(loqed.Lock{Name: "Garage", BoltState: loqed.StateNightLock})
	f.acct.RenameLock(LockID(0), "Main entrance")
	f.acct.RemoveLock(LockID(1))

	locks, err := f.client.ListLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 2 {
		t.Fatalf("len(locks) = %d; want 2", len(locks))
	}
	if locks[0].Name != "Main entrance" {
		t.Errorf("locks[0].Name = %q; want Main entrance", locks[0].Name)
	}
	if locks[1].ID != LockID(2) || locks[1].Name != "Garage" || locks[1].BoltState != loqed.StateNightLock {
		t.Errorf("added lock = %q %q %q; want %q Garage night_lock", locks[1].ID, locks[1].Name, locks[1].BoltState, LockID(2))
	}
	if locks[1].Secrets.KeySecret == "" {
		t.Error("added lock has no invented key_secret")
	}
	if _, ok := f.acct.Lock(LockID(1)); ok {
		t.Error("removed lock is still found")
	}

	// Replacing keeps the position and the numeric id.
	f.acct.AddLock(loqed.Lock{ID: LockID(0), Name: "Replaced"})
	if l, _ := f.acct.Lock(LockID(0)); l.Name != "Replaced" {
		t.Errorf("replaced lock name = %q; want Replaced", l.Name)
	}
	if n := len(f.acct.Locks()); n != 2 {
		t.Errorf("replacing a lock changed the count to %d; want 2", n)
	}
}

func TestAccount_CloseStopsPendingWebhooks(t *testing.T) {
	rc := newReceiver(t)
	a := New(Options{Token: token, WebhookURL: rc.srv.URL, MoveDelay: time.Hour})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	c, err := loqed.NewClient(loqed.ClientOptions{BaseURL: srv.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetBoltState(context.Background(), LockID(0), loqed.StateNightLock); err != nil {
		t.Fatal(err)
	}
	rc.next(t) // GO_TO_STATE; STATE_CHANGED would follow in an hour

	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.WaitIdle(ctx); err != nil {
		t.Errorf("WaitIdle after Close: %v", err)
	}
	if err := a.SendWebhook([]byte(`{"online":1}`)); err == nil {
		t.Error("SendWebhook after Close succeeded; want an error")
	}
}

func TestAccount_SendWebhookWithoutURL(t *testing.T) {
	a := New(Options{Token: token})
	defer a.Close()
	if err := a.SendWebhook([]byte(`{"online":1}`)); err == nil {
		t.Error("SendWebhook without a URL succeeded; want an error")
	}
}
