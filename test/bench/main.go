// Command bench is the load generator for loqed2mqtt. It sends LOQED cloud
// webhooks to a target over HTTP, receives the target's MQTT messages on
// <base>/<lock_id>/event, and reports end-to-end latency, throughput, lost
// events, and the target's CPU time per event, memory and start time.
//
// Targets, started and stopped by the bench for every run:
//
//	baseline    the bench's own bare publisher (net/http plus paho, 200 after PUBACK)
//	nodered     a Node-RED flow (test/bench/nodered), installed with npm ci if missing
//	loqed2mqtt  the bridge, built from ./cmd/loqed2mqtt, with ./cmd/loqed-sim as LOQED account
//
// Scenarios:
//
//	closed   -concurrency requests in flight until -events are sent
//	open     -rate events per second for -duration, latency from the scheduled send time
//	growth   closed loop at each of -growth-locks; memory per lock from the RSS difference
//	startup  -launches starts per target: launch to ready, launch to first delivery
//
// With -runs N every scenario runs N rounds, each round running every
// target once, and reports per target the median over the rounds and its
// ratio to the baseline's median from the same invocation. Every run is
// capped by -max-time and the whole invocation by -total-time.
//
// Example, with a private Mosquitto the bench starts and stops itself:
//
//	go run ./test/bench -private-broker -target baseline,nodered -scenario closed -runs 3 -json closed.json
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line.
type config struct {
	serveBaseline bool
	listen        string

	broker        string
	privateBroker bool
	mosquitto     string
	base          string
	targets       []string
	scenarios     []string
	runs          int
	concurrency   int
	events        int
	rate          float64
	duration      time.Duration
	maxInflight   int
	locks         int
	growthLocks   []int
	launches      int
	grace         time.Duration
	maxTime       time.Duration
	totalTime     time.Duration
	jsonPath      string
	repoDir       string
	noderedDir    string
}

var allScenarios = []string{"closed", "open", "growth", "startup"}

func main() {
	// With SIGPIPE ignored, output to a closed pipe (bench | head) fails with
	// an error instead of killing the bench before it stops its children.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process exit, so that tests and the baseline child
// of a test binary can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}

	if cfg.serveBaseline {
		if err := serveBaseline(ctx, cfg.listen, cfg.broker, cfg.base); err != nil {
			fmt.Fprintln(stderr, "bench baseline:", err)
			return 1
		}
		return 0
	}

	if _, err := runBench(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, output io.Writer) (config, error) {
	var cfg config
	var targets, scenarios, growthLocks string

	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.BoolVar(&cfg.serveBaseline, "serve-baseline", false, "run as the baseline target instead of generating load (the bench starts itself this way)")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "address the baseline target listens on")
	fs.StringVar(&cfg.broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL; ignored with -private-broker")
	fs.BoolVar(&cfg.privateBroker, "private-broker", false, "start a private Mosquitto on a free loopback port for this invocation and stop it at the end")
	fs.StringVar(&cfg.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "Mosquitto binary for -private-broker")
	fs.StringVar(&cfg.base, "base", "loqed", "MQTT base topic of every target; pick a unique one on a shared broker")
	fs.StringVar(&targets, "target", "all", "targets, comma-separated: baseline, nodered, loqed2mqtt, or all")
	fs.StringVar(&scenarios, "scenario", "closed", "scenarios, comma-separated: closed, open, growth, startup, or all")
	fs.IntVar(&cfg.runs, "runs", 3, "rounds per scenario; each round runs every target once")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "closed loop: requests in flight")
	fs.IntVar(&cfg.events, "events", 20000, "closed loop: events per run")
	fs.Float64Var(&cfg.rate, "rate", 1000, "open loop: events per second")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "open loop: sending time per run")
	fs.IntVar(&cfg.maxInflight, "max-inflight", 256, "open loop: cap on requests (and so connections) in flight; latency still counts from the scheduled time")
	fs.IntVar(&cfg.locks, "locks", 50, "locks the events are spread over")
	fs.StringVar(&growthLocks, "growth-locks", "1,100,1000", "growth: lock counts, comma-separated; memory per lock uses the first and last")
	fs.IntVar(&cfg.launches, "launches", 5, "startup: launches per target")
	fs.DurationVar(&cfg.grace, "grace", 5*time.Second, "wait for MQTT messages after the last HTTP response before counting an event lost")
	fs.DurationVar(&cfg.maxTime, "max-time", 120*time.Second, "hard cap on one run's sending plus grace")
	fs.DurationVar(&cfg.totalTime, "total-time", 30*time.Minute, "hard cap on the whole invocation")
	fs.StringVar(&cfg.jsonPath, "json", "", "write the full results as JSON to this file")
	fs.StringVar(&cfg.repoDir, "repo", "", "loqed2mqtt module root (default: found from the working directory)")
	fs.StringVar(&cfg.noderedDir, "nodered-dir", "", "directory with Node-RED's package.json, flows.json and settings.js (default: <repo>/test/bench/nodered)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q: every option is a flag", fs.Arg(0))
	}
	if cfg.serveBaseline {
		return cfg, nil
	}

	var err error
	if cfg.targets, err = parseList(targets, allTargets, "target"); err != nil {
		return cfg, err
	}
	if cfg.scenarios, err = parseList(scenarios, allScenarios, "scenario"); err != nil {
		return cfg, err
	}
	for _, s := range strings.Split(growthLocks, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("invalid -growth-locks entry %q: want a positive integer", s)
		}
		cfg.growthLocks = append(cfg.growthLocks, n)
	}

	switch {
	case cfg.runs < 1:
		return cfg, fmt.Errorf("invalid -runs %d: want at least 1", cfg.runs)
	case cfg.concurrency < 1:
		return cfg, fmt.Errorf("invalid -concurrency %d: want at least 1", cfg.concurrency)
	case cfg.events < 1:
		return cfg, fmt.Errorf("invalid -events %d: want at least 1", cfg.events)
	case cfg.rate <= 0 || cfg.duration <= 0:
		return cfg, fmt.Errorf("invalid open loop -rate %v -duration %v: want both positive", cfg.rate, cfg.duration)
	case cfg.maxInflight < 1:
		return cfg, fmt.Errorf("invalid -max-inflight %d: want at least 1", cfg.maxInflight)
	case cfg.locks < 1:
		return cfg, fmt.Errorf("invalid -locks %d: want at least 1", cfg.locks)
	case cfg.launches < 1:
		return cfg, fmt.Errorf("invalid -launches %d: want at least 1", cfg.launches)
	case cfg.maxTime <= 0 || cfg.totalTime <= 0 || cfg.grace < 0:
		return cfg, errors.New("invalid -max-time, -total-time or -grace: want positive durations")
	}

	if cfg.repoDir == "" {
		if cfg.repoDir, err = findModuleRoot(); err != nil {
			return cfg, err
		}
	}
	if cfg.noderedDir == "" {
		cfg.noderedDir = filepath.Join(cfg.repoDir, "test", "bench", "nodered")
	}
	return cfg, nil
}

// parseList splits a comma-separated flag value and checks each entry
// against known; "all" stands for every known entry.
func parseList(value string, known []string, kind string) ([]string, error) {
	if value == "all" {
		return known, nil
	}
	var out []string
	for _, v := range strings.Split(value, ",") {
		v = strings.TrimSpace(v)
		found := false
		for _, k := range known {
			found = found || k == v
		}
		if !found {
			return nil, fmt.Errorf("unknown %s %q: use %s or all", kind, v, strings.Join(known, ", "))
		}
		out = append(out, v)
	}
	return out, nil
}

// findModuleRoot walks up from the working directory to the go.mod of
// loqed2mqtt.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot read the working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/loqed2mqtt/loqed2mqtt") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the loqed2mqtt go.mod above the working directory: run from the repository or pass -repo")
		}
		dir = parent
	}
}

// report is the JSON summary of an invocation.
type report struct {
	StartedAt time.Time         `json:"started_at"`
	Machine   machineInfo       `json:"machine"`
	Command   []string          `json:"command"`
	Broker    string            `json:"broker"`
	Private   bool              `json:"private_broker"`
	QoS       int               `json:"subscribe_qos"`
	Scenarios []*scenarioReport `json:"scenarios"`
}

// scenarioReport holds every run of one scenario and the per-target medians.
type scenarioReport struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Runs        int                `json:"runs"`
	Targets     []string           `json:"targets"`
	Results     []runResult        `json:"results"`
	Median      map[string]metrics `json:"median"`
	Ratio       map[string]metrics `json:"ratio_to_baseline"`
	Errors      []string           `json:"errors,omitempty"`
}

// runResult is one run of one target.
type runResult struct {
	Target         string  `json:"target"`
	Round          int     `json:"round"`
	Locks          int     `json:"locks"`
	Metrics        metrics `json:"metrics,omitempty"`
	FirstHTTPError string  `json:"first_http_error,omitempty"`
	Error          string  `json:"error,omitempty"`
	// RetainedCleared counts the retained topics the run left and the bench
	// deleted after it.
	RetainedCleared int `json:"retained_cleared"`
}

func newScenario(name, description string, cfg config) *scenarioReport {
	return &scenarioReport{Name: name, Description: description, Targets: cfg.targets, Results: []runResult{}}
}

// summarize computes medians per target and their ratios to the baseline.
func (sc *scenarioReport) summarize() {
	sc.Median = map[string]metrics{}
	sc.Ratio = map[string]metrics{}
	rounds := map[int]bool{}
	for _, t := range sc.Targets {
		var runs []metrics
		for _, r := range sc.Results {
			if r.Target == t && r.Metrics != nil {
				runs = append(runs, r.Metrics)
				rounds[r.Round] = true
			}
		}
		sc.Median[t] = medianMetrics(runs)
	}
	sc.Runs = len(rounds)
	if base, ok := sc.Median[targetBaseline]; ok && len(base) > 0 {
		for _, t := range sc.Targets {
			sc.Ratio[t] = ratioMetrics(sc.Median[t], base)
		}
	}
}

// bench holds what every run of an invocation shares.
type bench struct {
	cfg     config
	env     targetEnv
	targets map[string]target
	broken  map[string]error // targets whose preparation failed
	col     *collector
	client  *http.Client
	brokerP *process // the private broker, for its CPU time
	runID   string
	runSeq  int
	stderr  io.Writer
}

// runBench runs every requested scenario and writes the tables to stdout
// and, with -json, the full report.
func runBench(ctx context.Context, cfg config, stdout, stderr io.Writer) (*report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.totalTime)
	defer cancel()

	dir, err := os.MkdirTemp("", "loqed2mqtt-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	rep := &report{StartedAt: time.Now().UTC(), Command: os.Args, Private: cfg.privateBroker, QoS: subscribeQoS}
	rep.Machine = readMachineInfo(cfg.mosquitto, cfg.noderedDir)

	b := &bench{cfg: cfg, targets: map[string]target{}, broken: map[string]error{}, stderr: stderr}
	b.env = targetEnv{broker: cfg.broker, base: cfg.base, dir: dir, repoDir: cfg.repoDir, noderedDir: cfg.noderedDir}
	if cfg.privateBroker {
		pb, err := startBroker(ctx, cfg.mosquitto, dir)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := pb.Close(); err != nil {
				fmt.Fprintln(stderr, "bench:", err)
			}
		}()
		b.env.broker = pb.url
		b.brokerP = pb.proc
	}
	rep.Broker = b.env.broker

	if b.col, err = newCollector(b.env.broker, cfg.base); err != nil {
		return nil, err
	}
	defer b.col.Close()

	// One transport for the whole invocation: keep-alive connections, and
	// enough idle ones per host that no request waits for a new connection.
	// Idle connections close after 4 s, before Node.js servers close theirs
	// (keepAliveTimeout 5 s), because a POST sent on a connection the server
	// is closing fails with a reset and is not retried.
	b.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: max(cfg.concurrency, cfg.maxInflight),
			IdleConnTimeout:     4 * time.Second,
			DisableCompression:  true,
		},
	}
	defer b.client.CloseIdleConnections()

	var id [4]byte
	_, _ = rand.Read(id[:])
	b.runID = hex.EncodeToString(id[:])

	for _, name := range cfg.targets {
		t, err := newTarget(name)
		if err != nil {
			return nil, err
		}
		if err := t.prepare(ctx, b.env); err != nil {
			fmt.Fprintf(stderr, "bench: target %s is skipped: %v\n", name, err)
			b.broken[name] = err
		}
		b.targets[name] = t
	}

	for _, name := range cfg.scenarios {
		var scs []*scenarioReport
		switch name {
		case "closed":
			scs = []*scenarioReport{b.loadScenario(ctx, "closed", fmt.Sprintf("closed loop, %d in flight, %d events, %d locks", cfg.concurrency, cfg.events, cfg.locks), []int{cfg.locks}, false)[0]}
		case "open":
			scs = []*scenarioReport{b.loadScenario(ctx, "open", fmt.Sprintf("open loop, %g events/s for %v, %d locks, latency from scheduled send", cfg.rate, cfg.duration, cfg.locks), []int{cfg.locks}, true)[0]}
		case "growth":
			scs = b.growthScenario(ctx)
		case "startup":
			scs = []*scenarioReport{b.startupScenario(ctx)}
		}
		for _, sc := range scs {
			rep.Scenarios = append(rep.Scenarios, sc)
			printTable(stdout, sc)
		}
	}

	if cfg.jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return rep, fmt.Errorf("cannot encode the report: %w", err)
		}
		if err := os.WriteFile(cfg.jsonPath, append(data, '\n'), 0o644); err != nil {
			return rep, fmt.Errorf("cannot write %s: %w", cfg.jsonPath, err)
		}
	}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("stopped before every run finished: %w", ctx.Err())
	}
	return rep, nil
}
