package loqed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is the base URL of the LOQED Integrations API.
const DefaultBaseURL = "https://integrations.production.loqed.com"

// DefaultTimeout bounds one API call. It is an estimate: ten seconds
// leaves room for a slow uplink without holding a command for long.
const DefaultTimeout = 10 * time.Second

// maxResponseBody bounds how much of a response is read. A lock list is a
// few kilobytes per lock.
const maxResponseBody = 1 << 20

// maxQuotedBody is how much of a response body an error message quotes.
const maxQuotedBody = 200

// Endpoint names used in CallInfo and APIError.
const (
	EndpointListLocks = "list_locks"
	EndpointBoltState = "bolt_state"
	EndpointSetting   = "setting"
)

// Error classes of API calls. Every error the Client returns for a call
// that reached the network is an *APIError wrapping one of them.
var (
	// ErrUnauthorized means the token was rejected: 401, 403, a redirect
	// to the login page, or an HTML page instead of JSON.
	ErrUnauthorized = errors.New("unauthorized")

	// ErrKeyRevoked means the token's key on the lock was deleted in the
	// LOQED app, so commands fail while reading the list still works.
	ErrKeyRevoked = errors.New("lock key revoked")

	// ErrRateLimited means the API responded with 429 Too Many Requests.
	ErrRateLimited = errors.New("rate limited")

	// ErrNotFound means a 404 for another reason, usually an unknown lock.
	ErrNotFound = errors.New("not found")

	// ErrServer means a 5xx response.
	ErrServer = errors.New("server error")

	// ErrBadRequest means a 4xx response not covered above, such as 422 for
	// an unknown setting.
	ErrBadRequest = errors.New("bad request")

	// ErrTimeout means the call did not finish within its deadline.
	ErrTimeout = errors.New("timed out")

	// ErrUnavailable means the API could not be reached.
	ErrUnavailable = errors.New("unavailable")

	// ErrBadResponse means a success status with a body that could not be
	// decoded.
	ErrBadResponse = errors.New("bad response")
)

// Errors for arguments the Client rejects before calling the API.
var (
	ErrInvalidBoltState   = errors.New("invalid bolt state")
	ErrInvalidSettingName = errors.New("invalid setting name")
)

// APIError describes a failed API call. Err is one of the Err* classes
// above; Message is a short explanation that never contains the token and
// quotes at most 200 bytes of a non-HTML response body.
type APIError struct {
	Endpoint   string        // EndpointListLocks, EndpointBoltState or EndpointSetting
	StatusCode int           // HTTP status; 0 when no response was received
	RetryAfter time.Duration // from Retry-After on 429; 0 when absent
	Message    string
	Err        error
}

// Error returns one line such as
// "loqed: bolt_state: unauthorized (HTTP 302): the API redirected the
// request to /login; the token is missing, invalid or expired".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("loqed: ")
	b.WriteString(e.Endpoint)
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("failed")
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the error class.
func (e *APIError) Unwrap() error { return e.Err }

// ClientOptions configures a Client.
type ClientOptions struct {
	// BaseURL is the API's base URL; DefaultBaseURL when empty.
	BaseURL string

	// Token is the personal access token. It is sent as a bearer token
	// and never logged or put into an error.
	Token string

	// HTTPClient is copied, and the copy never follows redirects; nil
	// means a client with http.DefaultTransport.
	HTTPClient *http.Client

	// Timeout bounds each call; DefaultTimeout when zero.
	Timeout time.Duration

	// Observe, when set, is called after every call that was sent.
	Observe func(CallInfo)
}

// CallInfo describes one finished API call, for metrics and debug logs.
type CallInfo struct {
	Endpoint string        // EndpointListLocks, EndpointBoltState or EndpointSetting
	Status   int           // HTTP status; 0 on a transport error
	Duration time.Duration // from sending the request to reading the body
	Header   http.Header   // response headers, such as x-ratelimit-remaining
	Err      error         // the error the call returned, or nil
}

// Client calls the LOQED Integrations API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
	observe func(CallInfo)
}

// NewClient returns a Client for opts. It fails when BaseURL is not an
// absolute http or https URL, or when Token contains characters that
// cannot be sent in a header.
func NewClient(opts ClientOptions) (*Client, error) {
	raw := opts.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid LOQED API base URL %q: %w", raw, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("invalid LOQED API base URL %q: want http:// or https:// with a host", raw)
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("invalid LOQED API base URL %q: must not contain user info, a query or a fragment", raw)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""

	if strings.ContainsFunc(opts.Token, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, errors.New("invalid LOQED API token: contains control characters")
	}

	hc := &http.Client{}
	if opts.HTTPClient != nil {
		copied := *opts.HTTPClient
		hc = &copied
	}
	// The API redirects requests with a missing or wrong token to its
	// HTML login page. Following the redirect would turn a rejected token
	// into a 200, so the redirect itself is returned and classified.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	return &Client{base: base, token: opts.Token, http: hc, timeout: timeout, observe: opts.Observe}, nil
}

// ListLocks returns the locks of the account (GET /api/locks/). LOQED
// documents a limit of about 12 status reads in 12 hours, so callers should
// ration this call with a Budget.
func (c *Client) ListLocks(ctx context.Context) ([]Lock, error) {
	body, err := c.do(ctx, EndpointListLocks, http.MethodGet, "/api/locks/", nil)
	if err != nil {
		return nil, err
	}

	locks, err := DecodeLockList(body)
	if err != nil {
		return nil, &APIError{Endpoint: EndpointListLocks, StatusCode: http.StatusOK, Message: err.Error(), Err: ErrBadResponse}
	}
	return locks, nil
}

// SetBoltState moves the lock's bolt to s (GET
// /api/locks/{id}/bolt_state/{state}). Success means LOQED accepted the
// command, not that the bolt moved: only a webhook confirms that.
func (c *Client) SetBoltState(ctx context.Context, lockID string, s BoltState) error {
	if err := checkPathID(lockID); err != nil {
		return err
	}
	if !s.Valid() {
		return fmt.Errorf("%w %q: want open, day_lock or night_lock", ErrInvalidBoltState, string(s))
	}

	path := "/api/locks/" + url.PathEscape(lockID) + "/bolt_state/" + string(s)
	_, err := c.do(ctx, EndpointBoltState, http.MethodGet, path, nil)
	return err
}

var settingNameRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// SetSetting changes one lock setting (POST /api/locks/{id}/setting). Most
// settings take 0 (off) or 1 (on); LOQED documents the value as a signed
// 32-bit integer.
func (c *Client) SetSetting(ctx context.Context, lockID, name string, value int) error {
	if err := checkPathID(lockID); err != nil {
		return err
	}
	if !settingNameRE.MatchString(name) {
		return fmt.Errorf("%w %q: want 1 to 64 characters of a-z, 0-9 and '_'", ErrInvalidSettingName, name)
	}
	if value < math.MinInt32 || value > math.MaxInt32 {
		return fmt.Errorf("invalid value %d for setting %q: must fit in a signed 32-bit integer", value, name)
	}

	body, err := json.Marshal(struct {
		Name  string `json:"setting_name"`
		Value int    `json:"setting_value"`
	}{name, value})
	if err != nil {
		return fmt.Errorf("cannot encode setting %q: %w", name, err)
	}

	path := "/api/locks/" + url.PathEscape(lockID) + "/setting"
	_, err = c.do(ctx, EndpointSetting, http.MethodPost, path, body)
	return err
}

// checkPathID validates a lock id that becomes a path segment. Besides
// the topic rules of CheckLockID it rejects "." and "..", which servers
// and proxies may resolve as relative path segments.
func checkPathID(id string) error {
	if err := CheckLockID(id); err != nil {
		return err
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: must not be %q", ErrInvalidLockID, id)
	}
	return nil
}

// do sends one request and returns the body of a 2xx response. Every other
// outcome becomes an *APIError.
func (c *Client) do(ctx context.Context, endpoint, method, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build %s request: %w", endpoint, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "loqed2mqtt")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	info := CallInfo{Endpoint: endpoint}
	respBody, err := c.roundTrip(ctx, req, &info)
	info.Duration = time.Since(start)
	info.Err = err
	if c.observe != nil {
		c.observe(info)
	}
	return respBody, err
}

// roundTrip performs req, fills in the status and headers of info and
// classifies the outcome.
func (c *Client) roundTrip(ctx context.Context, req *http.Request, info *CallInfo) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, info.Endpoint, err)
	}
	defer resp.Body.Close()

	info.Status = resp.StatusCode
	info.Header = resp.Header

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, c.transportError(ctx, info.Endpoint, err)
	}
	if len(body) > maxResponseBody {
		return nil, &APIError{Endpoint: info.Endpoint, StatusCode: resp.StatusCode,
			Message: fmt.Sprintf("response body exceeds %d bytes", maxResponseBody), Err: ErrBadResponse}
	}

	if err := c.statusError(info.Endpoint, resp, body); err != nil {
		return nil, err
	}
	return body, nil
}

// statusError classifies a response by status and body; nil means
// success.
func (c *Client) statusError(endpoint string, resp *http.Response, body []byte) error {
	code := resp.StatusCode
	e := &APIError{Endpoint: endpoint, StatusCode: code}

	switch {
	case code >= 200 && code < 300:
		if !isHTML(resp, body) {
			return nil
		}
		// A login page served with 200 means the token was not accepted
		// by a path that does not redirect.
		e.Err = ErrUnauthorized
		e.Message = "the API returned an HTML page instead of JSON; check the token"
		return e

	case code >= 300 && code < 400:
		e.Err = ErrUnauthorized
		e.Message = "the API redirected the request"
		if loc, err := url.Parse(resp.Header.Get("Location")); err == nil && loc.Path != "" {
			e.Message += " to " + loc.Path
		}
		e.Message += "; the token is missing, invalid or expired"
		return e

	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.Err = ErrUnauthorized
	case code == http.StatusNotFound && bytes.Contains(body, []byte(`ApiKey`)):
		// The API's response when the token's key on the lock was
		// deleted: {"message":"No query results for model [App\\Models\\ApiKey]."}.
		e.Err = ErrKeyRevoked
	case code == http.StatusNotFound:
		e.Err = ErrNotFound
	case code == http.StatusTooManyRequests:
		e.Err = ErrRateLimited
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case code >= 500:
		e.Err = ErrServer
	case code >= 400:
		e.Err = ErrBadRequest
	default:
		e.Err = ErrBadResponse
	}
	e.Message = c.quoteBody(resp, body)
	return e
}

// transportError classifies an error that left no usable response.
func (c *Client) transportError(ctx context.Context, endpoint string, err error) error {
	e := &APIError{Endpoint: endpoint, Err: ErrUnavailable, Message: c.redact(err.Error())}

	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Err = ErrTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Err = ErrTimeout
	}
	return e
}

// quoteBody returns the API's message for an error response: the
// "message" member of a JSON body, or the start of a plain-text body.
// HTML pages are never quoted.
func (c *Client) quoteBody(resp *http.Response, body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 || isHTML(resp, body) {
		return ""
	}

	text := string(bytes.TrimSpace(body))
	var msg struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &msg) == nil && msg.Message != "" {
		text = msg.Message
	}

	text = c.redact(text)
	if len(text) > maxQuotedBody {
		text = strings.ToValidUTF8(text[:maxQuotedBody], "") + "..."
	}
	return strings.Join(strings.Fields(text), " ")
}

// redact removes the token from text, in case a server or proxy echoes
// the Authorization header back.
func (c *Client) redact(text string) string {
	if c.token == "" {
		return text
	}
	return strings.ReplaceAll(text, c.token, "[redacted]")
}

// isHTML reports whether a response is an HTML page, as the login page
// is, judged by content type or by a body that starts with '<'.
func isHTML(resp *http.Response, body []byte) bool {
	if strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "html") {
		return true
	}
	trimmed := bytes.TrimSpace(body)
	return len(trimmed) > 0 && trimmed[0] == '<'
}

// parseRetryAfter reads Retry-After as delay seconds or an HTTP date
// (RFC 9110, section 10.2.3). It returns 0 when the header is absent,
// malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// A day bounds a hostile or broken header; LOQED's documented
		// block lasts 12 hours.
		return time.Duration(min(secs, 24*60*60)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
