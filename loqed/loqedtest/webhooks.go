package loqedtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// Key and account fields of the webhooks a command causes. Each personal
// access token has its own key on the lock, and commands carry that key.
const (
	tokenKeyName = "Integrations API"
	adminName    = "Sim Admin"
	adminEmail   = "admin@example.invalid"
)

// cloudWebhook is the body the LOQED cloud POSTs, with its field names and
// value types: key_local_id is a string, "" when no key was used.
type cloudWebhook struct {
	EventType       string `json:"event_type"`
	RequestedState  string `json:"requested_state,omitempty"`
	GoToState       string `json:"go_to_state,omitempty"`
	LockID          any    `json:"lock_id"`
	KeyLocalID      string `json:"key_local_id"`
	KeyNameUser     string `json:"key_name_user"`
	KeyNameAdmin    string `json:"key_name_admin"`
	KeyAccountEmail string `json:"key_account_email"`
	KeyAccountName  string `json:"key_account_name"`
	Value1          string `json:"value1,omitempty"`
	Value2          string `json:"value2,omitempty"`
	Value3          string `json:"value3,omitempty"`
}

// enqueue queues j for l and starts l's sender when none runs. a.mu must
// be held.
func (a *Account) enqueue(l *simLock, j job) {
	if a.closed {
		return
	}
	l.queue = append(l.queue, j)
	a.pending++
	if l.running {
		return
	}
	l.running = true
	a.wg.Add(1)
	go a.runQueue(l)
}

// runQueue works through l's queue one job at a time, which keeps the
// webhooks of one lock in order, and returns when the queue is empty or
// the account is closed.
func (a *Account) runQueue(l *simLock) {
	defer a.wg.Done()

	for {
		a.mu.Lock()
		if len(l.queue) == 0 || a.closed {
			a.pending -= len(l.queue)
			l.queue = nil
			l.running = false
			a.notifyLocked()
			a.mu.Unlock()
			return
		}
		j := l.queue[0]
		l.queue = l.queue[1:]
		a.mu.Unlock()

		a.runJob(l, j)

		a.mu.Lock()
		a.pending--
		a.notifyLocked()
		a.mu.Unlock()
	}
}

// notifyLocked wakes WaitIdle. a.mu must be held.
func (a *Account) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// runJob plays one command or manual operation with the timing of a real
// lock.
func (a *Account) runJob(l *simLock, j job) {
	if j.manual {
		if !a.sleep(a.opts.MoveDelay) {
			return
		}
		a.setState(l, j.target)
		a.send(l, a.stateChanged(l, j.target, false))
		a.returnToLatch(l, j.target, true)
		return
	}

	if !a.sleep(a.opts.AckDelay) {
		return
	}
	current := a.state(l)
	a.send(l, a.goToState(l, j.target))

	// The lock sends no STATE_CHANGED when it is already where the
	// command wants it.
	if current == j.target {
		return
	}
	if !a.sleep(a.opts.MoveDelay) {
		return
	}
	a.setState(l, j.target)
	if !j.dropFinal {
		a.send(l, a.stateChanged(l, j.target, true))
	}
	a.returnToLatch(l, j.target, !j.dropFinal)
}

// returnToLatch moves an opened lock back to the latch one MoveDelay
// later, as the real lock does on its own.
func (a *Account) returnToLatch(l *simLock, reached loqed.BoltState, notify bool) {
	if reached != loqed.StateOpen || !a.sleep(a.opts.MoveDelay) {
		return
	}
	a.setState(l, loqed.StateDayLock)
	if notify {
		a.send(l, a.stateChanged(l, loqed.StateDayLock, false))
	}
}

// sleep waits d and reports false when the account closed meanwhile.
func (a *Account) sleep(d time.Duration) bool {
	if d <= 0 {
		return a.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.ctx.Done():
		return false
	}
}

func (a *Account) state(l *simLock) loqed.BoltState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return l.lock.BoltState
}

func (a *Account) setState(l *simLock, s loqed.BoltState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l.lock.BoltState = s
}

// webhookLockID returns the lock_id of l's webhooks: the API id, or the
// numeric internal id as a JSON number.
func (a *Account) webhookLockID(l *simLock) any {
	if a.opts.NumericWebhookIDs {
		return firstNumericID + l.index
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return l.lock.ID
}

// NumericID returns the internal id webhooks carry for the lock at
// position i (0-based) when Options.NumericWebhookIDs is set.
func NumericID(i int) int { return firstNumericID + i }

// goToState builds the webhook a remote command causes first. The cloud
// names a remote day lock LOCK_REMOTE_LATCH, whichever way the bolt turns.
func (a *Account) goToState(l *simLock, target loqed.BoltState) cloudWebhook {
	eventType := map[loqed.BoltState]string{
		loqed.StateOpen:      "GO_TO_STATE_MANUAL_UNLOCK_REMOTE_OPEN",
		loqed.StateDayLock:   "GO_TO_STATE_MANUAL_LOCK_REMOTE_LATCH",
		loqed.StateNightLock: "GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK",
	}[target]

	wh := a.keyFields(l, true)
	wh.EventType = eventType
	wh.GoToState = strings.ToUpper(string(target))
	return wh
}

// stateChanged builds the webhook of a reached state, with the IFTTT-style
// value fields the cloud adds.
func (a *Account) stateChanged(l *simLock, reached loqed.BoltState, withKey bool) cloudWebhook {
	eventType := map[loqed.BoltState]string{
		loqed.StateOpen:      "STATE_CHANGED_OPEN",
		loqed.StateDayLock:   "STATE_CHANGED_LATCH",
		loqed.StateNightLock: "STATE_CHANGED_NIGHT_LOCK",
	}[reached]

	wh := a.keyFields(l, withKey)
	wh.EventType = eventType
	wh.RequestedState = strings.ToUpper(string(reached))
	wh.Value1 = eventType
	wh.Value2 = wh.KeyNameUser
	wh.Value3 = wh.KeyAccountEmail
	return wh
}

// keyFields returns a webhook with lock_id and the key fields set. Without
// a key the cloud sends "" for the key id and name but keeps the admin.
func (a *Account) keyFields(l *simLock, withKey bool) cloudWebhook {
	wh := cloudWebhook{
		LockID:          a.webhookLockID(l),
		KeyNameAdmin:    adminName,
		KeyAccountEmail: adminEmail,
		KeyAccountName:  adminName,
	}
	if withKey {
		a.mu.Lock()
		wh.KeyLocalID = strconv.Itoa(*l.lock.Secrets.LocalID)
		a.mu.Unlock()
		wh.KeyNameUser = tokenKeyName
	}
	return wh
}

// send POSTs wh to the current webhook URL and logs the outcome; a failed
// delivery is not retried.
func (a *Account) send(l *simLock, wh cloudWebhook) {
	body, err := json.Marshal(wh)
	if err != nil {
		a.logf("loqedtest: cannot encode webhook %s: %v", wh.EventType, err)
		return
	}

	a.mu.Lock()
	url := a.webhookURL
	a.mu.Unlock()

	if url == "" {
		a.logf("loqedtest: no webhook URL set, %s of lock %v not sent", wh.EventType, wh.LockID)
		return
	}
	if err := a.postWebhook(url, body); err != nil {
		a.logf("loqedtest: webhook %s of lock %v failed: %v", wh.EventType, wh.LockID, err)
		return
	}
	a.logf("loqedtest: webhook %s of lock %v delivered", wh.EventType, wh.LockID)
}

// postWebhook POSTs body to url with the headers of the LOQED cloud and
// fails unless the receiver responds with 2xx.
func (a *Account) postWebhook(url string, body []byte) error {
	req, err := http.NewRequestWithContext(a.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2")
	req.Header.Set("User-Agent", "Java/1.8.0_401")

	resp, err := a.hook.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxRequestBody))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook receiver responded with HTTP %d; want 2xx", resp.StatusCode)
	}
	return nil
}
