package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/rs/zerolog"
)

// beginCommand publishes the moving state of a command at once and registers
// a channel that receives the final states the lock reaches from now on. It
// reports whether the lock rests in the target state already.
func (l *lockState) beginCommand(target loqed.BoltState) (finals chan string, alreadyThere bool) {
	l.mu.Lock()
	defer l.mu.Unlock()

	finals = make(chan string, 8)
	l.waiters = append(l.waiters, finals)

	if l.confirmed == string(target) && l.state == string(target) {
		return finals, true
	}
	l.startTransition(transitional(target), time.Time{})
	l.publishChanged()
	return finals, false
}

// endCommand unregisters the channel of beginCommand.
func (l *lockState) endCommand(finals chan string) {
	l.mu.Lock()
	defer l.mu.Unlock()

	for i, w := range l.waiters {
		if w == finals {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			return
		}
	}
}

// awaitConfirmation waits for the final state of a sent command and
// publishes the outcome.
func (b *Bridge) awaitConfirmation(l *lockState, c lockCommand, finals chan string, log zerolog.Logger) {
	command := string(c.state)
	timer := time.NewTimer(b.opts.ConfirmTimeout)
	defer timer.Stop()

	// Another final state can come first: a command from another instance,
	// or a hand on the knob. The lock may still reach the target after it,
	// so only the timeout ends the wait.
	reached := ""
	for {
		select {
		case state := <-finals:
			switch state {
			case command:
				log.Info().Msg("command confirmed")
				b.publishResult(l.id, commandResult{ID: c.id, Command: command, OK: true, Status: statusConfirmed})
				return
			case stateJammed:
				log.Warn().Msg("motor stalled while running the command")
				b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusFailed, Error: "The motor stalled: check the door and the lock.", Code: codeJammed})
				return
			}
			reached = state

		case <-timer.C:
			if reached != "" {
				log.Warn().Str("state", reached).Msg("lock reached another state than the command requested")
				b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusNotConfirmed, Error: fmt.Sprintf("The lock reached %s instead of %s.", reached, command), Code: codeMismatch})
				return
			}
			l.mu.Lock()
			l.revert()
			l.mu.Unlock()
			log.Warn().Dur("timeout", b.opts.ConfirmTimeout).Msg("no webhook confirmed the command")
			b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusNotConfirmed,
				Error: fmt.Sprintf("No webhook confirmed the command within %s: check that LOQED's webhook reaches the bridge.", b.opts.ConfirmTimeout), Code: codeTimeout})
			b.refreshInBackground("command not confirmed")
			return

		case <-b.ctx.Done():
			b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusNotConfirmed, Error: "The bridge shut down before the lock confirmed the command.", Code: codeShutdown})
			return
		}
	}
}

// runSettingCommand changes a lock setting. On success the new value is
// published. On failure the old one is published again, so that a switch
// that showed the new value optimistically flips back.
func (b *Bridge) runSettingCommand(l *lockState, name string, value bool) {
	command := "setting:" + name
	log := l.log.With().Str("command", command).Bool("value", value).Logger()
	intValue := 0
	if value {
		intValue = 1
	}

	err := b.callWithRetry(log, "setting", true, func(ctx context.Context) error {
		return b.opts.API.SetSetting(ctx, l.id, name, intValue)
	})

	l.mu.Lock()
	if err == nil {
		l.settings[name] = value
		if l.info != nil {
			l.info.Settings = setSetting(l.info.Settings, name, value)
			l.infoJSON = ""
		}
	}
	delete(l.sent, b.topics.setting(l.id, name))
	l.publishChanged()
	l.mu.Unlock()

	if err != nil {
		code, text := describeAPIError(err)
		log.Error().Err(err).Str("code", code).Msg("setting change failed")
		b.publishResult(l.id, commandResult{Command: command, Status: statusFailed, Error: text, Code: code})
		return
	}
	log.Info().Msg("setting changed")
	b.publishResult(l.id, commandResult{Command: command, OK: true, Status: statusConfirmed})
}

func setSetting(m map[string]bool, name string, value bool) map[string]bool {
	if m == nil {
		m = make(map[string]bool)
	}
	m[name] = value
	return m
}

// callWithRetry runs an API call. When retry is true, timeouts, server
// errors and unreachable servers are retried with capped exponential backoff
// and jitter, and a 429 waits for its Retry-After; other client errors are
// final at once because repeating the same request cannot change the response.
// A 429 whose Retry-After is longer than ConfirmTimeout is final too: the
// command would run long after anyone asked for it.
func (b *Bridge) callWithRetry(log zerolog.Logger, endpoint string, retry bool, call func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = call(b.ctx)
		if err == nil || !retry || attempt >= b.opts.RetryAttempts || !retriable(err) {
			return err
		}

		wait := b.backoff(attempt)
		var apiErr *loqed.APIError
		if errors.As(err, &apiErr) && errors.Is(err, loqed.ErrRateLimited) && apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > b.opts.ConfirmTimeout {
				return err
			}
			wait = apiErr.RetryAfter
		}
		log.Warn().Err(err).Str("endpoint", endpoint).Int("attempt", attempt).Dur("retry_in", wait).Msg("API call failed; retrying")

		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return err
		}
	}
}

func retriable(err error) bool {
	return errors.Is(err, loqed.ErrTimeout) || errors.Is(err, loqed.ErrServer) ||
		errors.Is(err, loqed.ErrUnavailable) || errors.Is(err, loqed.ErrRateLimited)
}

// backoff returns the wait before retry number attempt: RetryBase doubled
// per attempt, capped at RetryMax, with the upper half jittered so that
// several bridges do not retry in step.
func (b *Bridge) backoff(attempt int) time.Duration {
	d := b.opts.RetryBase
	for i := 1; i < attempt && d < b.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, b.opts.RetryMax)
	half := d / 2
	return half + rand.N(half+1)
}

// describeAPIError returns the result code and a sentence that tells the user
// what to do.
func describeAPIError(err error) (code, text string) {
	var apiErr *loqed.APIError
	errors.As(err, &apiErr)

	switch {
	case errors.Is(err, loqed.ErrUnauthorized):
		return "unauthorized", "LOQED rejected the API token: create a new personal access token in the LOQED web app (Integrations, personal access tokens) and set LOQED_API_TOKEN."
	case errors.Is(err, loqed.ErrKeyRevoked):
		return "key_revoked", "The lock key of this API token was deleted in the LOQED app: create a new personal access token, which gets a new key."
	case errors.Is(err, loqed.ErrRateLimited):
		if apiErr != nil && apiErr.RetryAfter > 0 {
			return "rate_limited", fmt.Sprintf("LOQED rate limit reached: try again in %s.", apiErr.RetryAfter.Round(time.Second))
		}
		return "rate_limited", "LOQED rate limit reached: try again later."
	case errors.Is(err, loqed.ErrNotFound):
		return "not_found", "LOQED does not know this lock for this token."
	case errors.Is(err, loqed.ErrServer):
		return "server_error", "The LOQED service failed (HTTP 5xx): try again later."
	case errors.Is(err, loqed.ErrTimeout):
		return "timeout", "The LOQED service did not answer in time."
	case errors.Is(err, loqed.ErrUnavailable):
		return "unavailable", "The LOQED service could not be reached."
	case errors.Is(err, loqed.ErrBadRequest):
		return "bad_request", "LOQED rejected the request as invalid."
	case errors.Is(err, context.Canceled):
		return codeShutdown, "The bridge shut down before the call finished."
	}
	return "error", "The LOQED API call failed."
}
