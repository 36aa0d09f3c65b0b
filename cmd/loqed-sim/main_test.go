package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSim runs the simulator with args and returns its base URL, a
// function that stops it and returns its exit status, and its log.
func startSim(t *testing.T, args ...string) (baseURL string, stop func() int, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	stderr = &syncBuffer{}

	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), stdoutW, stderr)
		stdoutW.Close()
	}()

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()

	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			t.Fatalf("first stdout line = %q; want \"listening on ADDR\"", line)
		}
		baseURL = "http://" + addr
	case code := <-exit:
		t.Fatalf("run exited with %d before listening; log:\n%s", code, stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("simulator did not print its address within 10s")
	}

	stopped := false
	var code int
	stop = func() int {
		if stopped {
			return code
		}
		stopped = true
		cancel()
		select {
		case code = <-exit:
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return within 10s of cancellation")
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return baseURL, stop, stderr
}

func TestRun_ListLocks(t *testing.T) {
	const token = "tok-for-sim-test-31"
	baseURL, stop, stderr := startSim(t, "-token", token, "-locks", "3")

	c, err := loqed.NewClient(loqed.ClientOptions{BaseURL: baseURL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	locks, err := c.ListLocks(context.Background())
	if err != nil {
		t.Fatalf("ListLocks: %v", err)
	}
	if len(locks) != 3 {
		t.Fatalf("len(locks) = %d; want 3", len(locks))
	}
	for i, l := range locks {
		if l.ID != loqedtest.LockID(i) {
			t.Errorf("locks[%d].ID = %q; want %q", i, l.ID, loqedtest.LockID(i))
		}
	}

	if code := stop(); code != 0 {
		t.Errorf("exit status = %d; want 0", code)
	}
	log := stderr.String()
	if !strings.Contains(log, "GET /api/locks/ -> 200") {
		t.Errorf("log lacks the request line:\n%s", log)
	}
	if strings.Contains(log, token) {
		t.Errorf("log contains the token:\n%s", log)
	}
}

func TestRun_SendsWebhooks(t *testing.T) {
	events := make(chan loqed.Event, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := loqed.DecodeWebhook(body)
		if err != nil {
			t.Errorf("webhook %s: %v", body, err)
			return
		}
		events <- ev
	}))
	defer receiver.Close()

	baseURL, _, _ := startSim(t, "-webhook-url", receiver.URL+"/webhook/s3cret-s3cret-s3cret", "-move-delay", "10ms", "-numeric-ids")
	c, err := loqed.NewClient(loqed.ClientOptions{BaseURL: baseURL, Token: "sim-token"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetBoltState(context.Background(), loqedtest.LockID(1), loqed.StateNightLock); err != nil {
		t.Fatalf("SetBoltState: %v", err)
	}

	for _, want := range []string{"GO_TO_STATE_MANUAL_LOCK_REMOTE_NIGHT_LOCK", "STATE_CHANGED_NIGHT_LOCK"} {
		select {
		case ev := <-events:
			if ev.Type != want || ev.LockID != "6149" {
				t.Errorf("webhook = %s for lock %s; want %s for 6149", ev.Type, ev.LockID, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("webhook %s did not arrive within 5s", want)
		}
	}
}

func TestRun_BadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-locks", "0"}, "invalid -locks 0: must be between 1 and 1000"},
		{[]string{"-token", ""}, "invalid -token: must not be empty"},
		{[]string{"-webhook-url", "ftp://x"}, "invalid -webhook-url"},
		{[]string{"-move-delay", "-1s"}, "must not be negative"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("run(%q) = %d; want 2", tt.args, code)
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) stderr = %q; want it to contain %q", tt.args, stderr.String(), tt.want)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("run(-h) = %d; want 0", code)
	}
	if !strings.Contains(stderr.String(), "-move-delay") {
		t.Errorf("-h output lacks the flags:\n%s", stderr.String())
	}
}

func TestRun_ListenFailure(t *testing.T) {
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	if code := run(context.Background(), []string{"-listen", "256.0.0.1:0"}, &stdout, stderr); code != 1 {
		t.Errorf("run with an unusable address = %d; want 1", code)
	}
	if !strings.Contains(stderr.String(), "cannot listen on 256.0.0.1:0") {
		t.Errorf("stderr = %q; want the listen error", stderr.String())
	}
}
