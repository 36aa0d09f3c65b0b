package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

// lockRouter forwards each webhook to one of several bridge instances, chosen
// by the lock, as a load balancer with affinity by lock would.
type lockRouter struct {
	mu      sync.Mutex
	targets []*bridgeProcess
	byLock  map[string]int
	served  []int // webhooks per instance
}

func (r *lockRouter) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var v struct {
		LockID json.RawMessage `json:"lock_id"`
	}
	json.Unmarshal(body, &v)
	id := strings.Trim(string(v.LockID), `"`)

	r.mu.Lock()
	i, ok := r.byLock[id]
	if !ok {
		i = len(r.byLock) % len(r.targets)
		r.byLock[id] = i
	}
	r.served[i]++
	target := r.targets[i]
	r.mu.Unlock()

	resp, err := http.Post(target.webhookURL(""), "application/json", bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestSharedGroupRunsEachCommandOnce runs two instances in one shared
// subscription group: 200 commands over 10 locks must make exactly 200 API
// calls, every command must get a final result, and each lock's retained
// state must end equal to the account's.
func TestSharedGroupRunsEachCommandOnce(t *testing.T) {
	const (
		locks    = 10
		commands = 200
	)
	broker := harness.StartBroker(t, harness.BrokerOptions{})
	acct := startAccount(t, loqedtest.Options{Locks: locks, MoveDelay: 5 * time.Millisecond})
	env := map[string]string{"MQTT_SHARED_GROUP": "e2e", "HA_DISCOVERY": "false", "LOQED_CONFIRM_TIMEOUT": "10s"}

	first := startBridge(t, broker, acct, env)
	second := startBridge(t, broker, acct, env)

	router := &lockRouter{targets: []*bridgeProcess{first, second}, byLock: map[string]int{}, served: make([]int, 2)}
	proxy := httptest.NewServer(router)
	t.Cleanup(proxy.Close)
	acct.SetWebhookURL(proxy.URL)

	results := harness.NewRecorder(t, broker.URL(), "loqed/+/command_result")
	history := harness.NewRecorder(t, broker.URL(), "loqed/#")
	ids := make([]string, 0, locks)
	for _, l := range acct.Locks() {
		ids = append(ids, l.ID)
	}
	for i := 0; i < commands; i++ {
		state := "night_lock"
		if (i/locks)%2 == 1 {
			state = "day_lock"
		}
		payload := fmt.Sprintf(`{"state":%q,"id":"cmd-%d"}`, state, i)
		harness.Publish(t, broker.URL(), "loqed/"+ids[i%locks]+"/set", payload, false)
	}

	// Every command ends with exactly one final result.
	final := map[string]string{}
	for len(final) < commands {
		m := results.WaitFor(t, 2*time.Minute, func(m harness.Message) bool {
			var r struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if json.Unmarshal([]byte(m.Payload), &r) != nil || r.Status == "sent" {
				return false
			}
			_, seen := final[r.ID]
			return !seen
		})
		var r struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		json.Unmarshal([]byte(m.Payload), &r)
		final[r.ID] = r.Status
	}

	outcomes := map[string]int{}
	for _, status := range final {
		outcomes[status]++
	}
	t.Logf("command outcomes: %v", outcomes)
	for _, m := range results.Messages() {
		if strings.Contains(m.Payload, `"not_confirmed"`) {
			t.Logf("%s %s", m.Topic, m.Payload)
		}
	}

	calls := 0
	for _, id := range ids {
		calls += acct.CountRequests(http.MethodGet, "/api/locks/"+id+"/bolt_state/")
	}
	if calls != commands {
		t.Errorf("bolt_state calls = %d; want %d", calls, commands)
	}

	if err := acct.WaitIdle(ctx(t)); err != nil {
		t.Fatalf("account did not finish sending webhooks: %v", err)
	}
	states := harness.NewRecorder(t, broker.URL(), "loqed/+/state")
	for _, id := range ids {
		want, _ := acct.Lock(id)
		states.WaitPayload(t, waitFor, "loqed/"+id+"/state", string(want.BoltState))
	}
	retained := harness.Retained(t, broker.URL(), "loqed/+/state")
	for _, id := range ids {
		want, _ := acct.Lock(id)
		if got := retained["loqed/"+id+"/state"]; got != string(want.BoltState) {
			t.Errorf("lock %s retained state = %q; want %q as the account has it", id, got, want.BoltState)
			for _, m := range history.Messages() {
				if strings.HasPrefix(m.Topic, "loqed/"+id+"/") && !strings.HasSuffix(m.Topic, "/set") {
					t.Logf("%s %s %s", m.At.Format("15:04:05.000"), m.Topic, m.Payload)
				}
			}
		}
	}

	ran := [2]int{
		strings.Count(first.log(), `"message":"command sent`),
		strings.Count(second.log(), `"message":"command sent`),
	}
	if ran[0] == 0 || ran[1] == 0 {
		t.Errorf("commands sent per instance = %v; want both instances to run commands", ran)
	}
	router.mu.Lock()
	if router.served[0] == 0 || router.served[1] == 0 {
		t.Errorf("webhooks per instance = %v; want both instances to take webhooks", router.served)
	}
	router.mu.Unlock()
	t.Logf("commands sent per instance %v, webhooks per instance %v", ran, router.served)
}
