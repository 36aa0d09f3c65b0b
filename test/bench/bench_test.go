package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestMain lets the test binary serve as the baseline child: the bench
// re-executes its own binary, which under go test is this one.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func newTestBroker(t *testing.T) *privateBroker {
	t.Helper()
	b, err := startBroker(context.Background(), "/usr/sbin/mosquitto", t.TempDir())
	if err != nil {
		t.Fatalf("cannot start the private broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("stopping the broker: %v", err)
		}
	})
	return b
}

func TestBench_BaselineEndToEnd(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	cfg, err := parseFlags([]string{
		"-private-broker", "-target", "baseline", "-scenario", "closed,open", "-runs", "1",
		"-events", "50", "-concurrency", "4", "-locks", "5",
		"-rate", "500", "-duration", "100ms",
		"-max-time", "30s", "-total-time", "60s", "-json", jsonPath,
	}, os.Stderr)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}

	var stdout, stderr bytes.Buffer
	rep, err := runBench(context.Background(), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runBench: %v\nstderr:\n%s", err, stderr.String())
	}

	if len(rep.Scenarios) != 2 {
		t.Fatalf("len(Scenarios) = %d; want 2", len(rep.Scenarios))
	}
	for _, sc := range rep.Scenarios {
		if len(sc.Results) != 1 {
			t.Fatalf("%s: len(Results) = %d; want 1", sc.Name, len(sc.Results))
		}
		res := sc.Results[0]
		if res.Error != "" {
			t.Fatalf("%s: run error: %s", sc.Name, res.Error)
		}
		m := res.Metrics
		for key, want := range map[string]float64{mEvents: 50, mCompleted: 50, mLost: 0, mHTTPErrors: 0, mDuplicates: 0} {
			if m[key] != want {
				t.Errorf("%s: %s = %v; want %v", sc.Name, key, m[key], want)
			}
		}
		for _, key := range []string{mE2EP50, mE2EP99, mHTTPP50, mThroughput, mRSSBefore, mRSSAfter, mStartToReady} {
			if m[key] <= 0 {
				t.Errorf("%s: %s = %v; want > 0", sc.Name, key, m[key])
			}
		}
		if m[mE2EP50] > m[mE2EP99] || m[mE2EP99] > m[mE2EMax] {
			t.Errorf("%s: e2e p50 %v, p99 %v, max %v are not in order", sc.Name, m[mE2EP50], m[mE2EP99], m[mE2EMax])
		}
		if _, ok := m[mCPUPerEvent]; !ok {
			t.Errorf("%s: %s missing", sc.Name, mCPUPerEvent)
		}
		if r := sc.Ratio[targetBaseline][mE2EP50]; r != 1 {
			t.Errorf("%s: baseline ratio of %s = %v; want 1", sc.Name, mE2EP50, r)
		}
	}
	if _, ok := rep.Scenarios[1].Results[0].Metrics[mSendLagMax]; !ok {
		t.Errorf("open loop: %s missing", mSendLagMax)
	}

	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("reading the JSON report: %v", err)
	}
	var decoded report
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatalf("invalid JSON report: %v", err)
	}
	if got := decoded.Scenarios[0].Median[targetBaseline][mCompleted]; got != 50 {
		t.Errorf("JSON closed median %s = %v; want 50", mCompleted, got)
	}
	if !strings.Contains(stdout.String(), "== closed") || !strings.Contains(stdout.String(), "== open") {
		t.Errorf("table output lacks a scenario heading:\n%s", stdout.String())
	}
}

// TestGenerateLoad_LostAndErrors runs the load against an HTTP server that
// publishes nothing and fails every other request, so every event must
// count as lost and half of them as HTTP errors.
func TestGenerateLoad_LostAndErrors(t *testing.T) {
	broker := newTestBroker(t)
	col, err := newCollector(broker.url, "loqed")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Close)

	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)

	spec := loadSpec{concurrency: 1, events: 20, grace: 50 * time.Millisecond, maxTime: 10 * time.Second}
	s := generateLoad(context.Background(), srv.Client(), col, srv.URL, "lost", benchLockIDs(3), spec)
	m := latencyMetrics(s, false)

	for key, want := range map[string]float64{mEvents: 20, mCompleted: 0, mLost: 20, mHTTPErrors: 10} {
		if m[key] != want {
			t.Errorf("%s = %v; want %v", key, m[key], want)
		}
	}
	if !strings.Contains(s.firstErr, "500") {
		t.Errorf("firstErr = %q; want the 500 status", s.firstErr)
	}
}

func TestClearRetained_OnlyRunTopics(t *testing.T) {
	broker := newTestBroker(t)
	opts := paho.NewClientOptions().AddBroker(broker.url).SetClientID("bench-test-pub")
	client := paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(client.Connect(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(100) })

	ids := benchLockIDs(2)
	topics := map[string]bool{ // topic -> belongs to the run
		"loqed/" + ids[0] + "/state":                       true,
		"homeassistant/device/loqed_" + ids[1] + "/config": true,
		"loqed/otherlock/state":                            false,
		"homeassistant/device/other/config":                false,
	}
	for topic := range topics {
		if err := paho.WaitTokenTimeout(client.Publish(topic, 1, true, "x"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// As on a shared broker: only topics with the run's lock ids go.
	n, err := clearRetained(context.Background(), broker.url, "loqed", ids, false)
	if err != nil {
		t.Fatalf("clearRetained: %v", err)
	}
	if n != 2 {
		t.Errorf("cleared %d topics; want 2", n)
	}

	left := retainedTopics(t, broker.url)
	for topic, owned := range topics {
		if left[topic] == owned {
			t.Errorf("topic %s retained = %v after clearing; want %v", topic, left[topic], !owned)
		}
	}
}

// TestClearRetained_ManyTopics leaves more retained topics, with payloads as
// large as discovery configs, than Mosquitto sends to one subscriber at
// once, so clearing takes several passes.
func TestClearRetained_ManyTopics(t *testing.T) {
	broker := newTestBroker(t)
	opts := paho.NewClientOptions().AddBroker(broker.url).SetClientID("bench-test-pub")
	client := paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(client.Connect(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(100) })

	const topics = 1500
	payload := bytes.Repeat([]byte("x"), 2000)
	tokens := make([]paho.Token, 0, topics)
	for i := range topics {
		tokens = append(tokens, client.Publish(fmt.Sprintf("loqed/lock%d/state", i), 1, true, payload))
	}
	for _, tok := range tokens {
		if err := paho.WaitTokenTimeout(tok, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	n, err := clearRetained(context.Background(), broker.url, "loqed", nil, true)
	if err != nil {
		t.Fatalf("clearRetained: %v", err)
	}
	if n != topics {
		t.Errorf("cleared %d topics; want %d", n, topics)
	}
	if left := retainedTopics(t, broker.url); len(left) != 0 {
		t.Errorf("%d retained topics left after clearing; want 0", len(left))
	}
}

// retainedTopics returns the topics under loqed/# and homeassistant/# that
// have a retained message, using a marker message to know when the broker has
// sent them all.
func retainedTopics(t *testing.T, broker string) map[string]bool {
	t.Helper()
	marker := fmt.Sprintf("loqed/test-sync/%d", time.Now().UnixNano())
	found := make(chan string, 100)
	synced := make(chan struct{})
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID("bench-test-sub")
	client := paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(client.Connect(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(100)

	handler := func(_ paho.Client, msg paho.Message) {
		if msg.Topic() == marker {
			close(synced)
			return
		}
		if msg.Retained() {
			found <- msg.Topic()
		}
	}
	filters := map[string]byte{"loqed/#": 1, "homeassistant/#": 1}
	if err := paho.WaitTokenTimeout(client.SubscribeMultiple(filters, handler), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := paho.WaitTokenTimeout(client.Publish(marker, 1, false, "sync"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	case <-time.After(5 * time.Second):
		t.Fatal("sync marker did not arrive within 5s")
	}

	topics := map[string]bool{}
	for len(found) > 0 {
		topics[<-found] = true
	}
	return topics
}

func TestWebhookLockID(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    string
		wantErr bool
	}{
		{name: "string", body: `{"lock_id":"Ab3dEf6hIj9kLm2nOp5q"}`, want: "Ab3dEf6hIj9kLm2nOp5q"},
		{name: "number", body: `{"lock_id":6148}`, want: "6148"},
		{name: "missing", body: `{"event_type":"STATE_CHANGED_OPEN"}`, wantErr: true},
		{name: "null", body: `{"lock_id":null}`, wantErr: true},
		{name: "empty", body: `{"lock_id":""}`, wantErr: true},
		{name: "wildcard", body: `{"lock_id":"a/#"}`, wantErr: true},
		{name: "object", body: `{"lock_id":{}}`, wantErr: true},
		{name: "not JSON", body: `lock_id=1`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhookLockID([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("webhookLockID(%s) error = %v; want error %v", tt.body, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("webhookLockID(%s) = %q; want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestWebhookBody_AlternatesPerLock(t *testing.T) {
	ids := []string{"lockA", "lockB"}
	wantStates := []string{"NIGHT_LOCK", "NIGHT_LOCK", "DAY_LOCK", "DAY_LOCK", "NIGHT_LOCK"}
	for seq, wantState := range wantStates {
		var body struct {
			EventType      string `json:"event_type"`
			RequestedState string `json:"requested_state"`
			LockID         string `json:"lock_id"`
			KeyNameUser    string `json:"key_name_user"`
		}
		if err := json.Unmarshal(webhookBody("r1", seq, ids), &body); err != nil {
			t.Fatalf("seq %d: invalid JSON: %v", seq, err)
		}
		if body.RequestedState != wantState {
			t.Errorf("seq %d: requested_state = %q; want %q", seq, body.RequestedState, wantState)
		}
		if want := ids[seq%2]; body.LockID != want {
			t.Errorf("seq %d: lock_id = %q; want %q", seq, body.LockID, want)
		}
		if want := fmt.Sprintf("bench-r1-%d", seq); body.KeyNameUser != want {
			t.Errorf("seq %d: key_name_user = %q; want %q", seq, body.KeyNameUser, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.9: 90 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := percentile(sorted, p); got != want {
			t.Errorf("percentile(1..100 ms, %v) = %v; want %v", p, got, want)
		}
	}
}

func TestMedianMetrics(t *testing.T) {
	got := medianMetrics([]metrics{{mE2EP50: 3, mLost: 1}, {mE2EP50: 1}, {mE2EP50: 2, mLost: 3}})
	if got[mE2EP50] != 2 {
		t.Errorf("median %s = %v; want 2", mE2EP50, got[mE2EP50])
	}
	if got[mLost] != 2 {
		t.Errorf("median %s over two runs = %v; want 2", mLost, got[mLost])
	}
}

func TestParseFlags_Invalid(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-target", "mosquitto"}, `unknown target "mosquitto"`},
		{[]string{"-scenario", "soak"}, `unknown scenario "soak"`},
		{[]string{"-runs", "0"}, "invalid -runs 0"},
		{[]string{"-growth-locks", "1,x"}, `invalid -growth-locks entry "x"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) error = %v; want one containing %q", tt.args, err, tt.want)
		}
	}
}
