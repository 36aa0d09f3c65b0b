package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Fixed credentials of the bench's own targets. They protect nothing: every
// target listens on loopback only and lives for one run.
const (
	benchWebhookSecret = "bench-secret-0123456789"
	benchSimToken      = "bench-token"
)

// childEnv is set for every child the bench re-executes from its own binary,
// so that a test binary (whose flags differ) can recognise the request too.
const childEnv = "LOQED_BENCH_CHILD"

// Target names, in the order runs are interleaved.
const (
	targetBaseline   = "baseline"
	targetNodeRED    = "nodered"
	targetLoqed2MQTT = "loqed2mqtt"
)

var allTargets = []string{targetBaseline, targetNodeRED, targetLoqed2MQTT}

// startTimeout bounds a target's start, readiness included.
const startTimeout = 60 * time.Second

// stopTimeout is how long a target gets to exit after SIGTERM.
const stopTimeout = 5 * time.Second

// targetEnv is what every target launch needs to know.
type targetEnv struct {
	broker     string // broker URL, tcp://host:port
	base       string // MQTT base topic
	dir        string // scratch directory of this invocation
	repoDir    string // module root of loqed2mqtt
	noderedDir string // directory with Node-RED's package.json and flows
}

// target starts one kind of webhook-to-MQTT bridge.
type target interface {
	// prepare does the work needed once per invocation, like a build.
	prepare(ctx context.Context, env targetEnv) error
	// start launches the target for a run over the given number of locks
	// and returns once it is ready.
	start(ctx context.Context, env targetEnv, locks int) (*instance, error)
}

// instance is a running target.
type instance struct {
	proc         *process   // the measured process
	helpers      []*process // started for the target and stopped after it
	webhookURL   string
	lockIDs      []string
	startToReady time.Duration
}

// stop stops the measured process, then its helpers, each by PID.
func (in *instance) stop() error {
	var errs []error
	if in.proc != nil {
		errs = append(errs, in.proc.stop(stopTimeout))
	}
	for i := len(in.helpers) - 1; i >= 0; i-- {
		errs = append(errs, in.helpers[i].stop(stopTimeout))
	}
	return errors.Join(errs...)
}

func newTarget(name string) (target, error) {
	switch name {
	case targetBaseline:
		return &baselineTarget{}, nil
	case targetNodeRED:
		return &noderedTarget{}, nil
	case targetLoqed2MQTT:
		return &bridgeTarget{}, nil
	}
	return nil, fmt.Errorf("unknown target %q: use %s", name, strings.Join(allTargets, ", "))
}

// benchLockIDs returns n lock ids in the form of Integrations API ids (20
// letters and digits) for targets that do not read them from an API. A fixed
// seed keeps them equal across runs.
func benchLockIDs(n int) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, n)
	for i := range ids {
		b := make([]byte, 20)
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		ids[i] = string(b)
	}
	return ids
}

var listeningOn = regexp.MustCompile(`listening on ([0-9A-Za-z.:\[\]]+)`)

// baselineTarget is the bench's own bare publisher, re-executed from the
// bench's binary as a child so that its CPU time and memory are measurable.
type baselineTarget struct{}

func (*baselineTarget) prepare(context.Context, targetEnv) error { return nil }

func (*baselineTarget) start(ctx context.Context, env targetEnv, locks int) (*instance, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the bench's own binary to start the baseline: %w", err)
	}
	args := []string{"-serve-baseline", "-listen", "127.0.0.1:0", "-broker", env.broker, "-base", env.base}
	childVars := []string{childEnv + "=baseline", baselineSecretEnv + "=" + benchWebhookSecret}
	p, err := startProcess(targetBaseline, exe, args, childVars, env.dir)
	if err != nil {
		return nil, err
	}
	in := &instance{proc: p, lockIDs: benchLockIDs(locks)}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	m, _, err := p.waitForLine(ctx, listeningOn)
	if err != nil {
		return nil, errors.Join(err, in.stop())
	}
	addr := m[1]
	in.webhookURL = "http://" + addr + "/webhook/" + benchWebhookSecret
	if in.startToReady, err = waitReady(ctx, p, "http://"+addr+"/healthz"); err != nil {
		return nil, errors.Join(err, in.stop())
	}
	return in, nil
}

// noderedTarget is a Node-RED flow doing the same job: http in, a function
// node that derives the topic, mqtt out with QoS 1, http response.
type noderedTarget struct {
	redJS string
}

func (t *noderedTarget) prepare(ctx context.Context, env targetEnv) error {
	t.redJS = filepath.Join(env.noderedDir, "node_modules", "node-red", "red.js")
	if _, err := os.Stat(t.redJS); err == nil {
		return nil
	}

	// The lock file pins Node-RED and every dependency; npm ci installs
	// exactly those.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefix", env.noderedDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot install Node-RED with npm ci in %s: %w\n%s", env.noderedDir, err, out)
	}
	if _, err := os.Stat(t.redJS); err != nil {
		return fmt.Errorf("npm ci in %s did not install Node-RED: %w", env.noderedDir, err)
	}
	return nil
}

var noderedConnected = regexp.MustCompile(`Connected to broker`)

func (t *noderedTarget) start(ctx context.Context, env targetEnv, locks int) (*instance, error) {
	userDir, err := os.MkdirTemp(env.dir, "nodered-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a Node-RED user directory in %s: %w", env.dir, err)
	}
	for _, name := range []string{"flows.json", "settings.js"} {
		if err := copyFile(filepath.Join(env.noderedDir, name), filepath.Join(userDir, name)); err != nil {
			return nil, err
		}
	}
	brokerURL, err := url.Parse(env.broker)
	if err != nil || brokerURL.Hostname() == "" || brokerURL.Port() == "" {
		return nil, fmt.Errorf("invalid broker URL %q for Node-RED: want tcp://host:port", env.broker)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}

	vars := []string{
		fmt.Sprintf("BENCH_NODERED_PORT=%d", port),
		"BENCH_MQTT_HOST=" + brokerURL.Hostname(),
		"BENCH_MQTT_PORT=" + brokerURL.Port(),
		"BENCH_BASE_TOPIC=" + env.base,
		"WEBHOOK_SECRET=" + benchWebhookSecret,
		"NODE_RED_DISABLE_TELEMETRY=1",
	}
	args := []string{t.redJS, "--settings", filepath.Join(userDir, "settings.js"), "--userDir", userDir, "--no-telemetry"}
	p, err := startProcess(targetNodeRED, "node", args, vars, userDir)
	if err != nil {
		return nil, err
	}
	in := &instance{proc: p, lockIDs: benchLockIDs(locks)}
	in.webhookURL = fmt.Sprintf("http://127.0.0.1:%d/webhook/%s", port, benchWebhookSecret)

	// The flow's GET /healthz route exists only once the flows have started.
	// The MQTT connection is made asynchronously after that, and only the log
	// line shows when it is up. Ready is when both hold, which matches what
	// the baseline's /healthz and the bridge's /readyz mean.
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	httpReady, err := waitReady(ctx, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return nil, errors.Join(err, in.stop())
	}
	_, connected, err := p.waitForLine(ctx, noderedConnected)
	if err != nil {
		return nil, errors.Join(err, in.stop())
	}
	in.startToReady = max(httpReady, connected)
	return in, nil
}

// bridgeTarget is loqed2mqtt itself, with loqed-sim as the LOQED account it
// reads its locks from.
type bridgeTarget struct {
	bridgeBin string
	simBin    string
}

func (t *bridgeTarget) prepare(ctx context.Context, env targetEnv) error {
	t.bridgeBin = filepath.Join(env.dir, "loqed2mqtt")
	t.simBin = filepath.Join(env.dir, "loqed-sim")

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for bin, pkg := range map[string]string{t.bridgeBin: "./cmd/loqed2mqtt", t.simBin: "./cmd/loqed-sim"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = env.repoDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cannot build %s in %s: %w\n%s", pkg, env.repoDir, err, out)
		}
	}
	return nil
}

func (t *bridgeTarget) start(ctx context.Context, env targetEnv, locks int) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	simArgs := []string{"-listen", "127.0.0.1:0", "-token", benchSimToken, "-locks", fmt.Sprint(locks), "-webhook-url", ""}
	sim, err := startProcess("loqed-sim", t.simBin, simArgs, nil, env.dir)
	if err != nil {
		return nil, err
	}
	in := &instance{helpers: []*process{sim}}
	m, _, err := sim.waitForLine(ctx, listeningOn)
	if err != nil {
		return nil, errors.Join(err, in.stop())
	}
	simURL := "http://" + m[1]
	if in.lockIDs, err = fetchSimLockIDs(ctx, simURL); err != nil {
		return nil, errors.Join(err, in.stop())
	}
	if len(in.lockIDs) != locks {
		return nil, errors.Join(fmt.Errorf("loqed-sim at %s has %d locks; want %d", simURL, len(in.lockIDs), locks), in.stop())
	}

	port, err := freePort()
	if err != nil {
		return nil, errors.Join(err, in.stop())
	}
	vars := []string{
		"MQTT_URL=" + env.broker,
		fmt.Sprintf("MQTT_CLIENT_ID=bench-%d", os.Getpid()),
		"MQTT_BASE_TOPIC=" + env.base,
		"WEBHOOK_SECRET=" + benchWebhookSecret,
		fmt.Sprintf("HTTP_LISTEN=127.0.0.1:%d", port),
		"LOQED_API_URL=" + simURL,
		"LOQED_API_TOKEN=" + benchSimToken,
		"HA_DISCOVERY=true",
		"LOG_LEVEL=warn",
	}
	if in.proc, err = startProcess(targetLoqed2MQTT, t.bridgeBin, nil, vars, env.dir); err != nil {
		return nil, errors.Join(err, in.stop())
	}
	in.webhookURL = fmt.Sprintf("http://127.0.0.1:%d/webhook/%s", port, benchWebhookSecret)
	if in.startToReady, err = waitReady(ctx, in.proc, fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err != nil {
		return nil, errors.Join(err, in.stop())
	}
	return in, nil
}

// fetchSimLockIDs reads the lock ids of loqed-sim from its /sim/locks
// endpoint, or from the Integrations API route /api/locks/ when the former
// does not exist.
func fetchSimLockIDs(ctx context.Context, simURL string) ([]string, error) {
	var locks []struct {
		ID string `json:"id"`
	}
	err := getJSON(ctx, simURL+"/sim/locks", "", &locks)
	if err != nil {
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err2 := getJSON(ctx, simURL+"/api/locks/", benchSimToken, &page); err2 != nil {
			return nil, fmt.Errorf("cannot list the locks of loqed-sim: %w", errors.Join(err, err2))
		}
		locks = page.Data
	}

	ids := make([]string, 0, len(locks))
	for _, l := range locks {
		if l.ID == "" {
			return nil, fmt.Errorf("loqed-sim at %s listed a lock without an id", simURL)
		}
		ids = append(ids, l.ID)
	}
	return ids, nil
}

func getJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s failed: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("cannot read the response of GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s returned %s", url, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("invalid JSON from GET %s: %w", url, err)
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", to, err)
	}
	return nil
}
