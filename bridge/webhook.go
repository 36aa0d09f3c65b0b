package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// MaxWebhookBody is the largest webhook body accepted. LOQED's bodies are
// below 1 KiB; anything near this limit is not from LOQED.
const MaxWebhookBody = 64 << 10

// WebhookHandler returns the handler of POST /webhook/{secret} and
// POST /webhook/{secret}/{lockID}.
func (b *Bridge) WebhookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook/{secret}", b.serveWebhook)
	mux.HandleFunc("/webhook/{secret}/{lockID}", b.serveWebhook)
	return mux
}

// webhookError is a rejected webhook: the status and the one-line reason the
// sender gets. The reason never contains a secret.
type webhookError struct {
	status int
	reason string
}

func (e *webhookError) Error() string { return e.reason }

func (b *Bridge) serveWebhook(w http.ResponseWriter, r *http.Request) {
	err := b.handleWebhook(w, r)
	if err == nil {
		b.metrics.webhooks.WithLabelValues("200").Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	}

	var we *webhookError
	if !errors.As(err, &we) {
		we = &webhookError{status: http.StatusInternalServerError, reason: "internal error"}
	}
	b.metrics.webhooks.WithLabelValues(strconv.Itoa(we.status)).Inc()
	switch we.status {
	case http.StatusNotFound:
		// A wrong secret gets the mux's own not-found response and no hint.
		b.log.Debug().Str("remote_addr", r.RemoteAddr).Msg("webhook with unknown secret rejected")
		http.NotFound(w, r)
		return
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	b.log.Warn().Int("status", we.status).Str("reason", we.reason).Str("remote_addr", r.RemoteAddr).Msg("webhook rejected")
	http.Error(w, we.reason, we.status)
}

// handleWebhook checks, decodes and applies one webhook.
func (b *Bridge) handleWebhook(w http.ResponseWriter, r *http.Request) error {
	if !b.secretMatches(r.PathValue("secret")) {
		return &webhookError{status: http.StatusNotFound}
	}
	if r.Method != http.MethodPost {
		return &webhookError{status: http.StatusMethodNotAllowed, reason: "method not allowed: use POST"}
	}
	if b.ctx.Err() != nil {
		return &webhookError{status: http.StatusServiceUnavailable, reason: "shutting down"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && mt != "text/plain") {
			return &webhookError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("unsupported content type %q: send application/json", ct)}
		}
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &webhookError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("body larger than %d bytes", MaxWebhookBody)}
		}
		return &webhookError{status: http.StatusBadRequest, reason: "failed to read body"}
	}

	// JSON text is UTF-8. The standard decoder would replace invalid bytes
	// with U+FFFD and publish what the sender never sent.
	if !utf8.Valid(body) {
		return &webhookError{status: http.StatusBadRequest, reason: "invalid webhook: body is not valid UTF-8"}
	}

	ev, err := loqed.DecodeWebhook(body)
	if err != nil {
		return &webhookError{status: http.StatusBadRequest, reason: err.Error()}
	}

	l, err := b.webhookLock(r.PathValue("lockID"), ev.LockID)
	if err != nil {
		return err
	}
	ev.LockID = l.id

	at := b.opts.Now()
	if l.applyEvent(&ev, at) {
		b.metrics.events.WithLabelValues(ev.Kind.String()).Inc()
		l.log.Debug().Str("event_type", ev.Type).Str("kind", ev.Kind.String()).Msg("webhook accepted")
	} else {
		b.metrics.duplicates.Inc()
		l.log.Debug().Str("event_type", ev.Type).Msg("duplicate webhook ignored")
	}
	return nil
}

// webhookLock finds the lock a webhook is for. On the per-lock URL the path
// names the lock by its Integrations API id, and a different lock_id in the
// body (the numeric internal id LOQED puts in webhooks registered in its web
// app) becomes an alias of that lock.
func (b *Bridge) webhookLock(pathID, bodyID string) (*lockState, error) {
	id := bodyID
	if pathID != "" {
		if err := loqed.CheckLockID(pathID); err != nil || pathID == bridgeLevel {
			return nil, &webhookError{status: http.StatusBadRequest, reason: fmt.Sprintf("invalid lock id in URL: %v", err)}
		}
		id = pathID
	}
	if id == "" {
		return nil, &webhookError{status: http.StatusBadRequest, reason: "invalid webhook: lock_id: missing; use the URL /webhook/<secret>/<lock id> for bodies without lock_id"}
	}
	if id == bridgeLevel {
		return nil, &webhookError{status: http.StatusBadRequest, reason: "invalid webhook: lock_id: \"bridge\" is reserved"}
	}

	l, created, err := b.lockOrCreate(id)
	if err != nil {
		return nil, &webhookError{status: http.StatusUnprocessableEntity, reason: fmt.Sprintf("unknown lock and %d locks known already", b.opts.MaxLocks)}
	}
	if created {
		l.log.Info().Msg("new lock seen in a webhook")
		if b.opts.Discovery {
			b.publishLockDiscovery(l)
		}
	}
	if pathID != "" && bodyID != "" && bodyID != pathID {
		b.bindAlias(bodyID, pathID)
	}
	return l, nil
}

// secretMatches compares in constant time. Hashing first makes the time
// independent of the lengths too.
func (b *Bridge) secretMatches(got string) bool {
	want := sha256.Sum256([]byte(b.opts.WebhookSecret))
	have := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}
