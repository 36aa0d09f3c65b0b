package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// Command result statuses on <base>/<id>/command_result.
const (
	statusSent         = "sent"
	statusConfirmed    = "confirmed"
	statusFailed       = "failed"
	statusNotConfirmed = "not_confirmed"
)

// Command result codes: the machine-readable class of a refusal or failure.
const (
	codeInvalidPayload = "invalid_payload"
	codeUnknownLock    = "unknown_lock"
	codeUnknownSetting = "unknown_setting"
	codeNotAllowed     = "not_allowed"
	codeUnsupported    = "unsupported"
	codeInvalidCode    = "invalid_code"
	codeReceiveOnly    = "receive_only"
	codeBusy           = "busy"
	codeBudget         = "budget"
	codeTimeout        = "timeout"
	codeMismatch       = "state_mismatch"
	codeJammed         = "jammed"
	codeShutdown       = "shutdown"
)

// commandResult is the JSON payload of <base>/<id>/command_result.
type commandResult struct {
	ID      string `json:"id,omitempty"`
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
}

// MaxCommandPayload is the largest command payload parsed. Commands are a
// word or a small JSON object.
const MaxCommandPayload = 1024

// lockCommand is a parsed bolt state command.
type lockCommand struct {
	state loqed.BoltState
	id    string // correlation id, echoed in the result
	code  string // PIN, when COMMAND_PIN is set
}

// maxCorrelationID is the longest correlation id a JSON command may carry.
const maxCorrelationID = 128

// errInvalidCommand marks payloads that are not a command.
var errInvalidCommand = errors.New("invalid command")

// ParseLockCommand parses the payload of <base>/<id>/set: a state word
// (night_lock, day_lock, open, or Home Assistant's LOCK, UNLOCK, OPEN, in any
// case), or a JSON object {"state": "...", "id": "..."} or
// {"action": "...", "code": "..."}.
func ParseLockCommand(payload []byte) (state loqed.BoltState, id, code string, err error) {
	c, err := parseLockCommand(payload)
	return c.state, c.id, c.code, err
}

func parseLockCommand(payload []byte) (lockCommand, error) {
	if len(payload) > MaxCommandPayload {
		return lockCommand{}, fmt.Errorf("%w: payload longer than %d bytes", errInvalidCommand, MaxCommandPayload)
	}
	if !utf8.Valid(payload) {
		return lockCommand{}, fmt.Errorf("%w: payload is not UTF-8", errInvalidCommand)
	}
	text := strings.TrimSpace(string(payload))
	if !strings.HasPrefix(text, "{") {
		s, err := parseStateWord(text)
		return lockCommand{state: s}, err
	}

	var body struct {
		State  *string `json:"state"`
		Action *string `json:"action"`
		ID     *string `json:"id"`
		Code   *string `json:"code"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return lockCommand{}, fmt.Errorf("%w: invalid JSON: %v", errInvalidCommand, err)
	}
	if dec.More() {
		return lockCommand{}, fmt.Errorf("%w: data after the JSON object", errInvalidCommand)
	}

	var c lockCommand
	switch {
	case body.State != nil && body.Action != nil:
		return lockCommand{}, fmt.Errorf("%w: give either state or action, not both", errInvalidCommand)
	case body.State != nil:
		s, err := parseStateWord(*body.State)
		if err != nil {
			return lockCommand{}, err
		}
		c.state = s
	case body.Action != nil:
		s, err := parseStateWord(*body.Action)
		if err != nil {
			return lockCommand{}, err
		}
		c.state = s
	default:
		return lockCommand{}, fmt.Errorf("%w: missing state", errInvalidCommand)
	}
	if body.ID != nil {
		if len(*body.ID) > maxCorrelationID {
			return lockCommand{}, fmt.Errorf("%w: id longer than %d bytes", errInvalidCommand, maxCorrelationID)
		}
		c.id = *body.ID
	}
	if body.Code != nil {
		c.code = *body.Code
	}
	return c, nil
}

func parseStateWord(word string) (loqed.BoltState, error) {
	switch strings.ToLower(strings.TrimSpace(word)) {
	case "night_lock", "lock":
		return loqed.StateNightLock, nil
	case "day_lock", "unlock":
		return loqed.StateDayLock, nil
	case "open":
		return loqed.StateOpen, nil
	}
	if len(word) > 32 {
		word = word[:32] + "..."
	}
	return "", fmt.Errorf("%w: unknown state %q: use night_lock, day_lock or open", errInvalidCommand, word)
}

// ParseSettingValue parses the payload of <base>/<id>/settings/<name>/set.
func ParseSettingValue(payload []byte) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(string(payload))) {
	case "on", "1", "true":
		return true, nil
	case "off", "0", "false":
		return false, nil
	}
	text := string(payload)
	if len(text) > 32 || !utf8.ValidString(text) {
		text = "(long or binary payload)"
	}
	return false, fmt.Errorf("%w: invalid setting value %q: use ON, OFF, 1, 0, true or false", errInvalidCommand, text)
}

// allowedFor returns the COMMANDS_ALLOWED word that covers a target state.
func allowedFor(s loqed.BoltState) string {
	switch s {
	case loqed.StateNightLock:
		return AllowLock
	case loqed.StateDayLock:
		return AllowUnlock
	}
	return AllowOpen
}

// pinMatches compares a command's code with COMMAND_PIN in constant time.
func (b *Bridge) pinMatches(code string) bool {
	want := sha256.Sum256([]byte(b.opts.CommandPIN))
	have := sha256.Sum256([]byte(code))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

// publishResult sends a command result. Results are not retained because
// each belongs to one command.
func (b *Bridge) publishResult(lockID string, r commandResult) {
	payload, err := json.Marshal(r)
	if err != nil {
		b.log.Error().Err(err).Msg("failed to encode command result")
		return
	}
	b.metrics.commands.WithLabelValues(r.Command, r.Status, r.Code).Inc()
	b.pub.PublishAsync(b.topics.lock(lockID, suffixResult), payload, false, nil)
}

// reject publishes the failed result of a command that is not run.
func (b *Bridge) reject(lockID, command, id, code string, err error) {
	b.log.Warn().Str("lock_id", lockID).Str("command", command).Str("code", code).Err(err).Msg("command rejected")
	b.publishResult(lockID, commandResult{ID: id, Command: command, Status: statusFailed, Error: sentence(err), Code: code})
}

// sentence makes an error readable as the error field of a result.
func sentence(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// handleCommand routes one message of a command topic.
func (b *Bridge) handleCommand(m Message) {
	ct, ok := b.topics.parseCommandTopic(m.Topic)
	if !ok {
		return
	}

	// A retained command would run again after every reconnect and could
	// open the door long after anyone asked, so it never reaches the API.
	// The bridge clears it; the empty retained message that clears it comes
	// back here and is ignored like every empty payload.
	if m.Retained {
		if len(m.Payload) > 0 {
			b.retainedLog.Do(func() {
				b.log.Warn().Str("topic", m.Topic).Msg("ignoring a retained command and clearing it; publish commands without the retain flag")
			})
			b.metrics.retainedCommands.Inc()
			b.pub.PublishAsync(m.Topic, nil, true, nil)
		}
		return
	}
	if len(bytes.TrimSpace(m.Payload)) == 0 {
		return
	}

	switch ct.kind {
	case suffixSet:
		b.handleLockCommand(ct.lockID, m.Payload)
	case suffixSettings:
		b.handleSettingCommand(ct.lockID, ct.setting, m.Payload)
	case suffixRefresh:
		b.handleRefresh(ct.lockID)
	}
}

func (b *Bridge) handleLockCommand(lockID string, payload []byte) {
	c, err := parseLockCommand(payload)
	if err != nil {
		b.reject(lockID, "set", "", codeInvalidPayload, err)
		return
	}
	command := string(c.state)

	l := b.lock(lockID)
	switch {
	case l == nil:
		b.reject(lockID, command, c.id, codeUnknownLock, fmt.Errorf("unknown lock %q", lockID))
		return
	case !b.allowed[allowedFor(c.state)]:
		b.reject(lockID, command, c.id, codeNotAllowed, fmt.Errorf("%s commands are not allowed: add %q to COMMANDS_ALLOWED", command, allowedFor(c.state)))
		return
	case b.opts.CommandPIN != "" && !b.pinMatches(c.code):
		b.metrics.badCodes.Inc()
		b.reject(lockID, command, c.id, codeInvalidCode, errors.New("missing or wrong code"))
		return
	case b.opts.API == nil:
		b.reject(lockID, command, c.id, codeReceiveOnly, errors.New("no LOQED_API_TOKEN configured: the bridge only receives webhooks"))
		return
	case !l.supports(c.state):
		b.reject(lockID, command, c.id, codeUnsupported, fmt.Errorf("the lock does not support %s", command))
		return
	}

	if !l.commands.push(queuedCommand{lock: &c}) {
		b.reject(lockID, command, c.id, codeBusy, fmt.Errorf("more than %d commands waiting for this lock", maxQueuedCommands))
	}
}

func (b *Bridge) handleSettingCommand(lockID, name string, payload []byte) {
	command := "setting:" + name
	value, err := ParseSettingValue(payload)
	if err != nil {
		b.reject(lockID, command, "", codeInvalidPayload, err)
		return
	}

	l := b.lock(lockID)
	switch {
	case l == nil:
		b.reject(lockID, command, "", codeUnknownLock, fmt.Errorf("unknown lock %q", lockID))
		return
	case !b.knownSetting(name):
		b.reject(lockID, command, "", codeUnknownSetting, fmt.Errorf("unknown setting %q: add it to LOQED_EXTRA_SETTINGS", name))
		return
	case !b.allowed[AllowSettings]:
		b.reject(lockID, command, "", codeNotAllowed, errors.New("setting commands are not allowed: add \"settings\" to COMMANDS_ALLOWED"))
		return
	case b.opts.API == nil:
		b.reject(lockID, command, "", codeReceiveOnly, errors.New("no LOQED_API_TOKEN configured: the bridge only receives webhooks"))
		return
	}

	if !l.commands.push(queuedCommand{setting: name, value: value}) {
		b.reject(lockID, command, "", codeBusy, fmt.Errorf("more than %d commands waiting for this lock", maxQueuedCommands))
	}
}

func (b *Bridge) knownSetting(name string) bool {
	for _, s := range b.opts.Settings {
		if s == name {
			return true
		}
	}
	return false
}

// supports reports whether the lock can go to s, by its lock list record.
func (l *lockState) supports(s loqed.BoltState) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.info == nil {
		return true
	}
	return l.info.Supports(s)
}

// maxQueuedCommands bounds the commands waiting per lock. A lock takes
// seconds to move, so a longer queue only means commands that run long
// after anyone wanted them.
const maxQueuedCommands = 32

// queuedCommand is a lock command or a setting change waiting its turn.
type queuedCommand struct {
	lock    *lockCommand
	setting string
	value   bool
}

// commandQueue runs the commands of one lock one at a time, in arrival
// order, on a goroutine that exists while commands are waiting.
type commandQueue struct {
	l       *lockState
	mu      sync.Mutex
	waiting []queuedCommand
	running bool
}

func newCommandQueue(l *lockState) *commandQueue {
	return &commandQueue{l: l}
}

// push appends a command and reports false when the queue is full.
func (q *commandQueue) push(c queuedCommand) bool {
	q.mu.Lock()
	defer q.mu.Unlock()

	if len(q.waiting) >= maxQueuedCommands {
		return false
	}
	q.waiting = append(q.waiting, c)
	if !q.running {
		q.running = true
		b := q.l.b
		b.wg.Add(1)
		go q.run()
	}
	return true
}

func (q *commandQueue) run() {
	defer q.l.b.wg.Done()
	for {
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		c := q.waiting[0]
		q.waiting = q.waiting[1:]
		q.mu.Unlock()

		if c.lock != nil {
			q.l.b.runLockCommand(q.l, *c.lock)
		} else {
			q.l.b.runSettingCommand(q.l, c.setting, c.value)
		}
	}
}

// runLockCommand calls the bolt_state endpoint and follows the lock until a
// final state confirms the command or the confirm timeout passes.
func (b *Bridge) runLockCommand(l *lockState, c lockCommand) {
	command := string(c.state)
	log := l.log.With().Str("command", command).Logger()
	if b.ctx.Err() != nil {
		b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusFailed, Error: "The bridge is shutting down.", Code: codeShutdown})
		return
	}

	// The wait starts before the call so that a final webhook that arrives
	// before the API call returns still counts.
	finals, alreadyThere := l.beginCommand(c.state)
	defer l.endCommand(finals)

	// The moving state goes to the MQTT client before the call, so that it
	// cannot reach the broker after the final state that another instance
	// publishes from the webhook the call causes.
	if b.out != nil {
		b.out.waitHandedOver(b.ctx, b.out.queued())
	}

	err := b.callWithRetry(log, "bolt_state", c.state != loqed.StateOpen, func(ctx context.Context) error {
		return b.opts.API.SetBoltState(ctx, l.id, c.state)
	})
	if err != nil {
		l.mu.Lock()
		l.revert()
		l.mu.Unlock()
		code, text := describeAPIError(err)
		log.Error().Err(err).Str("code", code).Msg("command failed")
		b.publishResult(l.id, commandResult{ID: c.id, Command: command, Status: statusFailed, Error: text, Code: code})
		return
	}

	if alreadyThere {
		// The lock sends no final event for a state it is in already.
		log.Info().Msg("command sent; the lock is in that state already")
		b.publishResult(l.id, commandResult{ID: c.id, Command: command, OK: true, Status: statusConfirmed})
		return
	}
	b.publishResult(l.id, commandResult{ID: c.id, Command: command, OK: true, Status: statusSent})
	log.Info().Msg("command sent")

	b.awaitConfirmation(l, c, finals, log)
}
