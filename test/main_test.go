// Package test holds the end-to-end tests: the real loqed2mqtt binary, a
// private Mosquitto broker, real MQTT clients and the fake LOQED account,
// all on loopback.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/test/harness"
)

// bridgeBinary is the loqed2mqtt binary built once for all tests.
var bridgeBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loqed2mqtt-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bridgeBinary = filepath.Join(dir, "loqed2mqtt")
	build := exec.Command("go", "build", "-race", "-o", bridgeBinary, "../cmd/loqed2mqtt")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to build loqed2mqtt:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testToken  = "e2e-token-Zt4qK9"
	testSecret = "e2e-webhook-secret-8Hq2"
	waitFor    = 15 * time.Second
)

// account is the fake LOQED account served on loopback.
type account struct {
	*loqedtest.Account
	URL string
}

func startAccount(t *testing.T, opts loqedtest.Options) *account {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testToken
	}
	if opts.MoveDelay == 0 {
		opts.MoveDelay = 20 * time.Millisecond
	}
	a := loqedtest.New(opts)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &account{Account: a, URL: srv.URL}
}

// bridgeProcess is a running loqed2mqtt binary.
type bridgeProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond
	lines []map[string]any
	raw   bytes.Buffer
}

// startBridge runs loqed2mqtt with the environment env on top of defaults
// for the broker and the account, and waits until it logs that it started.
func startBridge(t *testing.T, broker *harness.Broker, acct *account, env map[string]string) *bridgeProcess {
	t.Helper()
	if acct != nil {
		if env == nil {
			env = map[string]string{}
		}
		env["LOQED_API_URL"] = acct.URL
		env["LOQED_API_TOKEN"] = testToken
	}
	return startBridgeArgs(t, broker, nil, env)
}

// startBridgeArgs runs loqed2mqtt with command-line arguments.
func startBridgeArgs(t *testing.T, broker *harness.Broker, args []string, env map[string]string) *bridgeProcess {
	t.Helper()
	vars := map[string]string{
		"MQTT_URL":              broker.URL(),
		"MQTT_CLIENT_ID":        "e2e-" + strings.ReplaceAll(t.Name(), "/", "-") + fmt.Sprint(time.Now().UnixNano()),
		"MQTT_BASE_TOPIC":       "loqed",
		"WEBHOOK_SECRET":        testSecret,
		"HTTP_LISTEN":           "127.0.0.1:0",
		"LOG_LEVEL":             "debug",
		"LOG_FORMAT":            "json",
		"LOQED_CONFIRM_TIMEOUT": "5s",
		"SHUTDOWN_TIMEOUT":      "5s",
	}
	for k, v := range env {
		vars[k] = v
	}

	cmd := exec.Command(bridgeBinary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start loqed2mqtt: %v", err)
	}

	p := &bridgeProcess{t: t, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.readLog(stderr)
	t.Cleanup(p.stop)

	listening := p.waitLog("HTTP server listening")
	p.addr, _ = listening["addr"].(string)
	p.waitLog("bridge started")
	return p
}

func (p *bridgeProcess) readLog(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var fields map[string]any
		if json.Unmarshal(line, &fields) != nil {
			fields = map[string]any{"message": string(line)}
		}
		p.mu.Lock()
		p.raw.Write(line)
		p.raw.WriteByte('\n')
		p.lines = append(p.lines, fields)
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.lines = append(p.lines, map[string]any{"message": "<exited>"})
	p.cond.Broadcast()
	p.mu.Unlock()
}

// waitLog waits for a log line whose message is msg and returns its fields.
func (p *bridgeProcess) waitLog(msg string) map[string]any {
	p.t.Helper()
	timer := time.AfterFunc(waitFor, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(waitFor)

	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.lines); i++ {
			m, _ := p.lines[i]["message"].(string)
			if m == msg {
				return p.lines[i]
			}
			if m == "<exited>" {
				p.t.Fatalf("loqed2mqtt exited before logging %q; log:\n%s", msg, p.raw.String())
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("loqed2mqtt did not log %q within %s; log:\n%s", msg, waitFor, p.raw.String())
		}
		p.cond.Wait()
	}
}

// log returns everything the process logged so far.
func (p *bridgeProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// webhookURL is the cloud webhook URL, with a lock id for the per-lock form.
func (p *bridgeProcess) webhookURL(lockID string) string {
	u := "http://" + p.addr + "/webhook/" + testSecret
	if lockID != "" {
		u += "/" + lockID
	}
	return u
}

// post sends a webhook body and returns the status and the answer.
func (p *bridgeProcess) post(url, body string) (int, string) {
	p.t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		p.t.Fatalf("POST webhook: %v", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// stop ends the process with SIGTERM, as a service manager would, and waits.
func (p *bridgeProcess) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd.Wait()
}

// kill ends the process at once, as a crash would.
func (p *bridgeProcess) kill() {
	p.cmd.Process.Kill()
	<-p.done
	p.cmd.Wait()
}

// ctx returns a context that ends with the test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}
