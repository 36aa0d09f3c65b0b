package loqed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "tok-9f8e7d6c5b4a"

// newTestClient returns a Client for srv with testToken.
func newTestClient(t *testing.T, srv *httptest.Server, opts ClientOptions) *Client {
	t.Helper()
	opts.BaseURL = srv.URL
	if opts.Token == "" {
		opts.Token = testToken
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// newServer starts an httptest server with h and closes it at cleanup.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestNewClient_BadBaseURL(t *testing.T) {
	bad := []string{"ftp://example.invalid", "example.invalid", "http://", "://x", "https://u:p@example.invalid", "https://example.invalid/?q=1"}
	for _, u := range bad {
		if _, err := NewClient(ClientOptions{BaseURL: u}); err == nil {
			t.Errorf("NewClient(BaseURL %q) succeeded; want an error", u)
		}
	}
	if _, err := NewClient(ClientOptions{Token: "a\nb"}); err == nil {
		t.Error("NewClient with a newline in the token succeeded; want an error")
	}

	c, err := NewClient(ClientOptions{})
	if err != nil {
		t.Fatalf("NewClient with defaults: %v", err)
	}
	if got := c.base.String(); got != DefaultBaseURL {
		t.Errorf("base URL = %q; want %q", got, DefaultBaseURL)
	}
	if c.timeout != DefaultTimeout {
		t.Errorf("timeout = %v; want %v", c.timeout, DefaultTimeout)
	}
}

func TestClient_ListLocks(t *testing.T) {
	fixture := readFixture(t, "cloud_locks_list.json")
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/locks/" {
			t.Errorf("request %s %s; want GET /api/locks/", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("Authorization header is wrong")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Ratelimit-Remaining", "59")
		w.Write(fixture)
	})

	var infos []CallInfo
	c := newTestClient(t, srv, ClientOptions{Observe: func(i CallInfo) { infos = append(infos, i) }})
	locks, err := c.ListLocks(context.Background())
	if err != nil {
		t.Fatalf("ListLocks: %v", err)
	}
	if len(locks) != 1 {
		t.Fatalf("len(locks) = %d; want 1", len(locks))
	}

	l := locks[0]
	if l.ID != "Ab3dEf6hIj9kLm2nOp5q" || l.Name != "Front door" {
		t.Errorf("ID, Name = %q, %q; want Ab3dEf6hIj9kLm2nOp5q, Front door", l.ID, l.Name)
	}
	if l.BoltState != StateDayLock {
		t.Errorf("BoltState = %q; want day_lock", l.BoltState)
	}
	if l.BatteryPercentage == nil || *l.BatteryPercentage != 64 {
		t.Errorf("BatteryPercentage = %v; want 64", l.BatteryPercentage)
	}
	if l.BatteryType != BatteryNiMH {
		t.Errorf("BatteryType = %q; want nimh", l.BatteryType)
	}
	if l.TouchToConnect == nil || !*l.TouchToConnect || l.PartyMode == nil || *l.PartyMode {
		t.Errorf("TouchToConnect, PartyMode = %v, %v; want true, false", l.TouchToConnect, l.PartyMode)
	}
	if l.Online == nil || !*l.Online {
		t.Errorf("Online = %v; want true", l.Online)
	}
	if len(l.SupportedLockStates) != 3 {
		t.Errorf("SupportedLockStates = %v; want 3 states", l.SupportedLockStates)
	}

	wantSettings := map[string]bool{
		"party_mode": false, "guest_access_mode": false, "twist_assist": false,
		"touch_to_connect": true, "open_house_mode": false,
	}
	if len(l.Settings) != len(wantSettings) {
		t.Errorf("Settings = %v; want %v", l.Settings, wantSettings)
	}
	for k, v := range wantSettings {
		if got, ok := l.Settings[k]; !ok || got != v {
			t.Errorf("Settings[%q] = %v, %v; want %v, true", k, got, ok, v)
		}
	}

	if l.Secrets.KeySecret != "SW52ZW50ZWRLZXlTZWNyZXQ=" || l.Secrets.BridgeKey == "" || l.Secrets.BackendKey == "" {
		t.Error("Secrets are not filled from key_secret, bridge_key and backend_key")
	}
	if l.Secrets.LocalID == nil || *l.Secrets.LocalID != 1 {
		t.Errorf("Secrets.LocalID = %v; want 1", l.Secrets.LocalID)
	}

	out, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "SW52ZW50ZWRLZXlTZWNyZXQ") || strings.Contains(string(out), "local_id") {
		t.Errorf("marshalled lock contains secrets: %s", out)
	}

	if len(infos) != 1 {
		t.Fatalf("Observe called %d times; want 1", len(infos))
	}
	if infos[0].Endpoint != EndpointListLocks || infos[0].Status != 200 || infos[0].Err != nil {
		t.Errorf("CallInfo = %+v; want list_locks, 200, no error", infos[0])
	}
	if infos[0].Header.Get("X-Ratelimit-Remaining") != "59" {
		t.Errorf("CallInfo.Header lacks x-ratelimit-remaining")
	}
}

func TestDecodeLockList_OpenHouseMode(t *testing.T) {
	tests := []struct {
		name   string
		record string
		want   *bool
	}{
		{"from guest_access_mode", `{"id":"a","party_mode":false,"guest_access_mode":true}`, boolPtr(true)},
		{"party_mode ignored", `{"id":"a","party_mode":true,"guest_access_mode":false}`, boolPtr(false)},
		{"own field wins", `{"id":"a","guest_access_mode":false,"open_house_mode":1}`, boolPtr(true)},
		{"absent", `{"id":"a","party_mode":true}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locks, err := DecodeLockList([]byte(`{"data":[` + tt.record + `]}`))
			if err != nil {
				t.Fatalf("DecodeLockList: %v", err)
			}
			got, ok := locks[0].Settings[SettingOpenHouseMode]
			switch {
			case tt.want == nil && ok:
				t.Errorf("open_house_mode = %v; want absent", got)
			case tt.want != nil && (!ok || got != *tt.want):
				t.Errorf("open_house_mode = %v (present %v); want %v", got, ok, *tt.want)
			}
		})
	}
}

func TestDecodeLockList_Tolerance(t *testing.T) {
	body := `{"data":[{"id":6148,"name":5,"battery_percentage":-1,"bolt_state":"future_state",
		"supported_lock_states":["open","ajar","NIGHT_LOCK"],"online":1,"local_id":"3",
		"bridge_webhook_count":1,"battery_type_numeric":1,"custom_toggle":1,"twist_assist":"yes"}]}`
	locks, err := DecodeLockList([]byte(body))
	if err != nil {
		t.Fatalf("DecodeLockList: %v", err)
	}
	l := locks[0]
	if l.ID != "6148" {
		t.Errorf("ID = %q; want 6148", l.ID)
	}
	if l.Name != "" || l.BatteryPercentage != nil {
		t.Errorf("Name, BatteryPercentage = %q, %v; want empty, nil", l.Name, l.BatteryPercentage)
	}
	if l.BoltState != StateUnknown {
		t.Errorf("BoltState = %q; want unknown", l.BoltState)
	}
	if len(l.SupportedLockStates) != 2 || l.SupportedLockStates[1] != StateNightLock {
		t.Errorf("SupportedLockStates = %v; want [open night_lock]", l.SupportedLockStates)
	}
	if l.Online == nil || !*l.Online {
		t.Errorf("Online = %v; want true", l.Online)
	}
	if l.Secrets.LocalID == nil || *l.Secrets.LocalID != 3 {
		t.Errorf("Secrets.LocalID = %v; want 3", l.Secrets.LocalID)
	}
	if l.TwistAssist != nil {
		t.Errorf("TwistAssist = %v; want nil for a string value", *l.TwistAssist)
	}
	want := map[string]bool{"custom_toggle": true}
	if len(l.Settings) != 1 || !l.Settings["custom_toggle"] {
		t.Errorf("Settings = %v; want %v", l.Settings, want)
	}
}

func TestDecodeLockList_Rejects(t *testing.T) {
	bad := map[string]string{
		"not an object": `[]`,
		"no data":       `{"locks":[]}`,
		"data object":   `{"data":{}}`,
		"record string": `{"data":["x"]}`,
		"no id":         `{"data":[{"name":"x"}]}`,
		"slash in id":   `{"data":[{"id":"a/b"}]}`,
		"dot id":        `{"data":[{"id":".."}]}`,
		"duplicate id":  `{"data":[{"id":"a"},{"id":"a"}]}`,
		"html":          `<html></html>`,
	}
	for name, body := range bad {
		if _, err := DecodeLockList([]byte(body)); err == nil {
			t.Errorf("%s: DecodeLockList succeeded; want an error", name)
		}
	}

	locks, err := DecodeLockList([]byte(`{"data":[]}`))
	if err != nil || len(locks) != 0 {
		t.Errorf("DecodeLockList(empty data) = %v, %v; want no locks, no error", locks, err)
	}
}

func TestClient_SetBoltState(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/open") {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t, srv, ClientOptions{})

	ctx := context.Background()
	for _, s := range []BoltState{StateNightLock, StateOpen} {
		if err := c.SetBoltState(ctx, "Ab3dEf6hIj9kLm2nOp5q", s); err != nil {
			t.Errorf("SetBoltState(%q): %v", s, err)
		}
	}
	if err := c.SetBoltState(ctx, "a b?c%", StateDayLock); err != nil {
		t.Errorf("SetBoltState with an id that needs escaping: %v", err)
	}

	want := []string{
		"GET /api/locks/Ab3dEf6hIj9kLm2nOp5q/bolt_state/night_lock",
		"GET /api/locks/Ab3dEf6hIj9kLm2nOp5q/bolt_state/open",
		"GET /api/locks/a%20b%3Fc%25/bolt_state/day_lock",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests =\n%s\nwant\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
}

func TestClient_InvalidArguments(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
	})
	c := newTestClient(t, srv, ClientOptions{})
	ctx := context.Background()

	for _, id := range []string{"", "a/b", "..", "a#"} {
		if err := c.SetBoltState(ctx, id, StateOpen); !errors.Is(err, ErrInvalidLockID) {
			t.Errorf("SetBoltState(id %q) = %v; want ErrInvalidLockID", id, err)
		}
		if err := c.SetSetting(ctx, id, "twist_assist", 1); !errors.Is(err, ErrInvalidLockID) {
			t.Errorf("SetSetting(id %q) = %v; want ErrInvalidLockID", id, err)
		}
	}
	for _, s := range []BoltState{"", StateUnknown, "OPEN", "locked"} {
		if err := c.SetBoltState(ctx, "a", s); !errors.Is(err, ErrInvalidBoltState) {
			t.Errorf("SetBoltState(state %q) = %v; want ErrInvalidBoltState", s, err)
		}
	}
	for _, name := range []string{"", "Twist", "a/b", "../x", strings.Repeat("a", 65)} {
		if err := c.SetSetting(ctx, "a", name, 1); !errors.Is(err, ErrInvalidSettingName) {
			t.Errorf("SetSetting(name %q) = %v; want ErrInvalidSettingName", name, err)
		}
	}
	if err := c.SetSetting(ctx, "a", "x", 1<<40); err == nil {
		t.Error("SetSetting with a value beyond 32 bits succeeded; want an error")
	}
}

func TestClient_SetSetting(t *testing.T) {
	type request struct {
		Name  string `json:"setting_name"`
		Value int    `json:"setting_value"`
	}
	got := make(chan request, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/locks/L1/setting" {
			t.Errorf("request %s %s; want POST /api/locks/L1/setting", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q; want application/json", ct)
		}
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("cannot decode body: %v", err)
		}
		got <- req
		w.WriteHeader(http.StatusNoContent)
	})
	c := newTestClient(t, srv, ClientOptions{})

	if err := c.SetSetting(context.Background(), "L1", SettingOpenHouseMode, 1); err != nil {
		t.Fatalf("SetSetting: %v", err)
	}
	if req := <-got; req.Name != "open_house_mode" || req.Value != 1 {
		t.Errorf("body = %+v; want open_house_mode, 1", req)
	}
}

// loginPage is what the API serves after redirecting an unauthenticated
// request.
const loginPage = "<!DOCTYPE html><html><head><title>Login</title></head><body>Log in</body></html>"

func TestClient_ErrorClasses(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		want      error
		status    int
		wantInMsg string
	}{
		{
			name: "302 to login page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/login" {
					w.Header().Set("Content-Type", "text/html; charset=UTF-8")
					w.Write([]byte(loginPage))
					return
				}
				http.Redirect(w, r, "/login", http.StatusFound)
			},
			want: ErrUnauthorized, status: 302, wantInMsg: "redirected the request to /login",
		},
		{
			name: "301 elsewhere",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://example.invalid/", http.StatusMovedPermanently)
			},
			want: ErrUnauthorized, status: 301,
		},
		{
			name: "200 HTML",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte("  " + loginPage))
			},
			want: ErrUnauthorized, status: 200,
		},
		{
			name:    "401",
			handler: jsonStatus(401, `{"message":"Unauthenticated."}`),
			want:    ErrUnauthorized, status: 401, wantInMsg: "Unauthenticated.",
		},
		{
			name:    "403",
			handler: jsonStatus(403, `{"message":"This action is unauthorized."}`),
			want:    ErrUnauthorized, status: 403,
		},
		{
			name:    "404 key revoked",
			handler: jsonStatus(404, `{"message":"No query results for model [App\\Models\\ApiKey]."}`),
			want:    ErrKeyRevoked, status: 404, wantInMsg: `App\Models\ApiKey`,
		},
		{
			name:    "404 lock",
			handler: jsonStatus(404, `{"message":"Lock not found"}`),
			want:    ErrNotFound, status: 404, wantInMsg: "Lock not found",
		},
		{
			name: "429",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "120")
				jsonStatus(429, `{"message":"Too Many Attempts."}`)(w, r)
			},
			want: ErrRateLimited, status: 429,
		},
		{
			name:    "500",
			handler: jsonStatus(500, `{"message":"Server Error"}`),
			want:    ErrServer, status: 500,
		},
		{
			name: "503 HTML is not quoted",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(503)
				w.Write([]byte("<html>maintenance secret-ish page</html>"))
			},
			want: ErrServer, status: 503,
		},
		{
			name:    "422",
			handler: jsonStatus(422, `{"message":"The selected setting name is invalid."}`),
			want:    ErrBadRequest, status: 422, wantInMsg: "setting name is invalid",
		},
		{
			name:    "400 plain text",
			handler: jsonStatus(400, "bad\nthing"),
			want:    ErrBadRequest, status: 400, wantInMsg: "bad thing",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.handler)
			c := newTestClient(t, srv, ClientOptions{})
			ctx := context.Background()

			calls := map[string]func() error{
				EndpointListLocks: func() error { _, err := c.ListLocks(ctx); return err },
				EndpointBoltState: func() error { return c.SetBoltState(ctx, "L1", StateOpen) },
				EndpointSetting:   func() error { return c.SetSetting(ctx, "L1", "twist_assist", 1) },
			}
			for endpoint, call := range calls {
				err := call()
				if !errors.Is(err, tt.want) {
					t.Fatalf("%s: error = %v; want %v", endpoint, err, tt.want)
				}
				var apiErr *APIError
				if !errors.As(err, &apiErr) {
					t.Fatalf("%s: error %T is not an *APIError", endpoint, err)
				}
				if apiErr.StatusCode != tt.status || apiErr.Endpoint != endpoint {
					t.Errorf("%s: StatusCode, Endpoint = %d, %q; want %d, %q", endpoint, apiErr.StatusCode, apiErr.Endpoint, tt.status, endpoint)
				}
				if !strings.Contains(err.Error(), tt.wantInMsg) {
					t.Errorf("%s: error %q does not contain %q", endpoint, err, tt.wantInMsg)
				}
				if strings.Contains(err.Error(), "<") || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error %q quotes HTML or spans lines", endpoint, err)
				}
				if tt.want == ErrRateLimited && apiErr.RetryAfter != 2*time.Minute {
					t.Errorf("%s: RetryAfter = %v; want 2m", endpoint, apiErr.RetryAfter)
				}
			}
		})
	}
}

// jsonStatus returns a handler that responds with status and body.
func jsonStatus(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestClient_ErrorFormat(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login", http.StatusFound)
	})
	c := newTestClient(t, srv, ClientOptions{})

	err := c.SetBoltState(context.Background(), "L1", StateNightLock)
	want := "loqed: bolt_state: unauthorized (HTTP 302): the API redirected the request to /login; the token is missing, invalid or expired"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v; want %q", err, want)
	}
}

func TestClient_BadResponse(t *testing.T) {
	bodies := []string{`{"data":`, `{"data":{"id":"x"}}`, `[]`, ``}
	for _, body := range bodies {
		srv := newServer(t, jsonStatus(200, body))
		c := newTestClient(t, srv, ClientOptions{})
		_, err := c.ListLocks(context.Background())
		if !errors.Is(err, ErrBadResponse) {
			t.Errorf("ListLocks with body %q: error = %v; want ErrBadResponse", body, err)
		}
	}
}

func TestClient_LargeBodyIsBadResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":[`))
		w.Write([]byte(strings.Repeat(" ", maxResponseBody)))
		w.Write([]byte(`]}`))
	})
	c := newTestClient(t, srv, ClientOptions{})
	if _, err := c.ListLocks(context.Background()); !errors.Is(err, ErrBadResponse) {
		t.Errorf("error = %v; want ErrBadResponse", err)
	}
}

func TestClient_Timeout(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)

	var info CallInfo
	c := newTestClient(t, srv, ClientOptions{Timeout: 50 * time.Millisecond, Observe: func(i CallInfo) { info = i }})
	start := time.Now()
	err := c.SetBoltState(context.Background(), "L1", StateOpen)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error = %v; want ErrTimeout", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("call took %v; the 50ms timeout was not applied", elapsed)
	}
	if info.Status != 0 || !errors.Is(info.Err, ErrTimeout) {
		t.Errorf("CallInfo = %+v; want status 0 and ErrTimeout", info)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	c2 := newTestClient(t, srv, ClientOptions{})
	if err := c2.SetBoltState(ctx, "L1", StateOpen); !errors.Is(err, ErrTimeout) {
		t.Errorf("with a caller deadline: error = %v; want ErrTimeout", err)
	}
}

func TestClient_Unavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()

	c, err := NewClient(ClientOptions{BaseURL: url, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListLocks(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v; want ErrUnavailable", err)
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode != 0 {
		t.Errorf("StatusCode = %d; want 0", apiErr.StatusCode)
	}
}

func TestClient_TokenNeverInErrors(t *testing.T) {
	// This server echoes the Authorization header in every kind of response.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Location", "/login?token="+testToken)
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"message": "rejected " + auth})
		}
	}

	for _, status := range []int{200, 302, 400, 401, 403, 404, 422, 429, 500, 503} {
		srv := newServer(t, echo(status))
		c := newTestClient(t, srv, ClientOptions{})
		ctx := context.Background()

		_, err1 := c.ListLocks(ctx)
		err2 := c.SetBoltState(ctx, "L1", StateOpen)
		err3 := c.SetSetting(ctx, "L1", "twist_assist", 0)
		for _, err := range []error{err1, err2, err3} {
			if err == nil {
				if status != 200 {
					t.Errorf("HTTP %d: call succeeded; want an error", status)
				}
				continue
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("HTTP %d: error contains the token: %q", status, err)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"x", 0},
		{"99999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}

func TestClient_DoesNotMutateHTTPClient(t *testing.T) {
	hc := &http.Client{}
	if _, err := NewClient(ClientOptions{HTTPClient: hc}); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("NewClient set CheckRedirect on the caller's http.Client")
	}
}
