package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// loadScenario runs the closed or open loop for every lock count in
// locksList, interleaved: for each round, for each lock count, for each
// target, one run. It returns one report per lock count.
func (b *bench) loadScenario(ctx context.Context, name, description string, locksList []int, open bool) []*scenarioReport {
	reports := make([]*scenarioReport, len(locksList))
	for i, locks := range locksList {
		n, d := name, description
		if len(locksList) > 1 {
			n = fmt.Sprintf("%s-locks-%d", name, locks)
			d = fmt.Sprintf("%s, %d locks", description, locks)
		}
		reports[i] = newScenario(n, d, b.cfg)
	}

	spec := loadSpec{
		open:        open,
		concurrency: b.cfg.concurrency,
		events:      b.cfg.events,
		rate:        b.cfg.rate,
		maxInflight: b.cfg.maxInflight,
		grace:       b.cfg.grace,
		maxTime:     b.cfg.maxTime,
	}
	if open {
		spec.events = int(b.cfg.rate * b.cfg.duration.Seconds())
	}

	for round := 1; round <= b.cfg.runs && ctx.Err() == nil; round++ {
		for i, locks := range locksList {
			for _, t := range b.cfg.targets {
				if ctx.Err() != nil {
					break
				}
				res := b.measureRun(ctx, t, round, locks, spec)
				delete(res.Metrics, mFirstDelivery) // a startup figure only
				reports[i].Results = append(reports[i].Results, res)
				b.logRun(reports[i].Name, res)
			}
		}
	}
	for _, r := range reports {
		r.summarize()
	}
	return reports
}

// growthScenario runs the closed loop at every -growth-locks count and adds
// a summary with the memory each further lock costs.
func (b *bench) growthScenario(ctx context.Context) []*scenarioReport {
	locks := b.cfg.growthLocks
	desc := fmt.Sprintf("closed loop, %d in flight, %d events", b.cfg.concurrency, b.cfg.events)
	reports := b.loadScenario(ctx, "growth", desc, locks, false)
	if len(locks) < 2 {
		return reports
	}

	first, last := reports[0], reports[len(reports)-1]
	lockDelta := float64(locks[len(locks)-1] - locks[0])
	sum := newScenario("growth", fmt.Sprintf("memory per lock: (RSS after load at %d locks - at %d locks) / %.0f, medians", locks[len(locks)-1], locks[0], lockDelta), b.cfg)
	sum.Median = map[string]metrics{}
	sum.Ratio = map[string]metrics{}
	sum.Runs = min(first.Runs, last.Runs)
	for _, t := range b.cfg.targets {
		lo, okLo := first.Median[t][mRSSAfter]
		hi, okHi := last.Median[t][mRSSAfter]
		if okLo && okHi {
			sum.Median[t] = metrics{mMemoryPerLock: (hi - lo) * 1024 / lockDelta}
		}
	}
	if base, ok := sum.Median[targetBaseline]; ok {
		for _, t := range b.cfg.targets {
			sum.Ratio[t] = ratioMetrics(sum.Median[t], base)
		}
	}
	return append(reports, sum)
}

// startupScenario launches every target -launches times, interleaved, and
// measures launch to ready and launch to the first delivered event.
func (b *bench) startupScenario(ctx context.Context) *scenarioReport {
	sc := newScenario("startup", fmt.Sprintf("%d launches per target, %d locks: launch to ready, launch to first delivered event", b.cfg.launches, b.cfg.locks), b.cfg)
	spec := loadSpec{concurrency: 1, events: 1, grace: b.cfg.grace, maxTime: b.cfg.maxTime}
	for round := 1; round <= b.cfg.launches && ctx.Err() == nil; round++ {
		for _, t := range b.cfg.targets {
			if ctx.Err() != nil {
				break
			}
			res := b.measureRun(ctx, t, round, b.cfg.locks, spec)

			// One event is too few for throughput, percentiles or CPU per event.
			for _, k := range []string{mThroughput, mLoadWallSeconds, mCPUPerEvent, mBrokerCPU, mE2EP90, mE2EP99, mE2EMax, mHTTPP99, mDuplicates} {
				delete(res.Metrics, k)
			}
			sc.Results = append(sc.Results, res)
			b.logRun(sc.Name, res)
		}
	}
	sc.summarize()
	return sc
}

// measureRun starts a target, loads it, samples its CPU time and memory
// around the load, stops it and clears the retained topics it left.
func (b *bench) measureRun(ctx context.Context, name string, round, locks int, spec loadSpec) runResult {
	res := runResult{Target: name, Round: round, Locks: locks}
	if err := b.broken[name]; err != nil {
		res.Error = err.Error()
		return res
	}

	in, err := b.targets[name].start(ctx, b.env, locks)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	m, firstHTTPErr, err := b.loadInstance(ctx, in, spec)
	if stopErr := in.stop(); stopErr != nil {
		fmt.Fprintln(b.stderr, "bench:", stopErr)
	}
	b.client.CloseIdleConnections()
	cleared, cleanErr := clearRetained(ctx, b.env.broker, b.cfg.base, in.lockIDs, b.cfg.privateBroker)
	if cleanErr != nil {
		fmt.Fprintln(b.stderr, "bench:", cleanErr)
	}
	res.RetainedCleared = cleared

	res.Metrics = m
	if err != nil {
		res.Error = err.Error()
	}
	res.FirstHTTPError = firstHTTPErr
	return res
}

// loadInstance runs spec against a ready instance and returns its figures
// and the first HTTP error, if any.
func (b *bench) loadInstance(ctx context.Context, in *instance, spec loadSpec) (metrics, string, error) {
	before, err := readUsage(in.proc.PID())
	if err != nil {
		return nil, "", err
	}
	var brokerBefore procUsage
	if b.brokerP != nil {
		if brokerBefore, err = readUsage(b.brokerP.PID()); err != nil {
			return nil, "", err
		}
	}

	b.runSeq++
	runID := fmt.Sprintf("%sr%d", b.runID, b.runSeq)
	s := generateLoad(ctx, b.client, b.col, in.webhookURL, runID, in.lockIDs, spec)

	if in.proc.exited() {
		return nil, s.firstErr, fmt.Errorf("%s exited during the load; last output:\n%s", in.proc.name, in.proc.tail())
	}
	after, err := readUsage(in.proc.PID())
	if err != nil {
		return nil, s.firstErr, err
	}

	m := latencyMetrics(s, spec.open)
	if s.sent > 0 {
		m[mCPUPerEvent] = float64((after.cpu - before.cpu).Microseconds()) / float64(s.sent)
	}
	if b.brokerP != nil && s.sent > 0 {
		brokerAfter, err := readUsage(b.brokerP.PID())
		if err != nil {
			return nil, s.firstErr, err
		}
		m[mBrokerCPU] = float64((brokerAfter.cpu - brokerBefore.cpu).Microseconds()) / float64(s.sent)
	}
	m[mRSSBefore] = float64(before.rssBytes) / (1 << 20)
	m[mRSSAfter] = float64(after.rssBytes) / (1 << 20)
	m[mStartToReady] = ms(in.startToReady)
	if s.sent > 0 && s.recvAt[0] > 0 {
		m[mFirstDelivery] = ms(s.t0.Sub(in.proc.started) + s.recvAt[0])
	}
	return m, s.firstErr, nil
}

func (b *bench) logRun(scenario string, r runResult) {
	if r.Error != "" {
		fmt.Fprintf(b.stderr, "%s round %d %s (%d locks): error: %s\n", scenario, r.Round, r.Target, r.Locks, r.Error)
		return
	}
	m := r.Metrics
	fmt.Fprintf(b.stderr, "%s round %d %s (%d locks): %.0f sent, %.0f lost, %.0f HTTP errors, %.0f events/s, e2e p50 %.2f ms p99 %.2f ms, cpu %.1f us/event, rss %.1f MiB, ready %.1f ms\n",
		scenario, r.Round, r.Target, r.Locks, m[mEvents], m[mLost], m[mHTTPErrors], m[mThroughput], m[mE2EP50], m[mE2EP99], m[mCPUPerEvent], m[mRSSAfter], m[mStartToReady])
	if r.FirstHTTPError != "" {
		fmt.Fprintf(b.stderr, "  first HTTP error: %s\n", r.FirstHTTPError)
	}
}

// discoveryPrefix is Home Assistant's default discovery prefix, which the
// bridge uses in the bench.
const discoveryPrefix = "homeassistant"

// clearRetained deletes the retained messages a run left and returns how many
// it deleted. On a private broker it looks under the base topic and the
// discovery prefix, and every retained topic there belongs to the bench. On a
// shared broker it looks only under topics that name one of the run's lock
// ids.
func clearRetained(ctx context.Context, broker, base string, lockIDs []string, private bool) (int, error) {
	var filterSets []map[string]byte
	if private {
		filterSets = append(filterSets, map[string]byte{base + "/#": 1, discoveryPrefix + "/#": 1})
	} else {
		for chunk := range slices.Chunk(lockIDs, 50) {
			filters := map[string]byte{}
			for _, id := range chunk {
				filters[base+"/"+id+"/#"] = 1
				filters[discoveryPrefix+"/+/loqed_"+id+"/#"] = 1
			}
			filterSets = append(filterSets, filters)
		}
	}

	// Mosquitto as shipped keeps at most 20 QoS 1 messages in flight and 1000
	// queued per client (max_inflight_messages, max_queued_messages) and drops
	// the rest, retained messages included. One pass therefore receives about
	// 1020 retained topics, so passes repeat until one finds nothing left.
	total := 0
	for _, filters := range filterSets {
		for pass := 1; ; pass++ {
			cleared, synced, err := clearRetainedPass(ctx, broker, base, filters, lockIDs, private)
			total += cleared
			if err != nil {
				return total, err
			}
			if cleared == 0 && synced {
				break
			}
			if cleared == 0 {
				return total, fmt.Errorf("marker of the retained-topic cleanup did not come back from %s within %v and no retained topic was found", broker, markerWait)
			}
			if pass == maxClearPasses {
				return total, fmt.Errorf("retained topics under %s were still found after %d passes; later runs may see them", broker, pass)
			}
		}
	}
	return total, nil
}

// markerWait bounds the wait for the cleanup's marker. On loopback the marker
// takes milliseconds; a marker the broker dropped costs this much and one
// more pass.
const markerWait = 2 * time.Second

// maxClearPasses bounds clearRetained. 100 passes of about 1020 topics each
// cover 1000 locks with 100 retained topics per lock.
const maxClearPasses = 100

// clearRetainedPass subscribes to filters, collects the retained topics the
// broker sends, and publishes an empty retained message to each one the run
// owns. A marker message published after the subscription shows when the
// broker has sent everything it will send, because it comes after the
// retained messages. synced reports whether the marker arrived.
func clearRetainedPass(ctx context.Context, broker, base string, filters map[string]byte, lockIDs []string, private bool) (cleared int, synced bool, err error) {
	marker := fmt.Sprintf("%s/bench-sync/%d-%d", base, os.Getpid(), time.Now().UnixNano())
	markerSeen := make(chan struct{})
	var markerOnce sync.Once
	var mu sync.Mutex
	var found []string
	handler := func(_ paho.Client, msg paho.Message) {
		switch {
		case msg.Topic() == marker:
			// The marker matches two of the filters on a private broker, and
			// Mosquitto sends it once per matching subscription.
			markerOnce.Do(func() { close(markerSeen) })
		case msg.Retained() && len(msg.Payload()) > 0:
			mu.Lock()
			found = append(found, msg.Topic())
			mu.Unlock()
		}
	}

	opts := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(fmt.Sprintf("bench-clean-%d", os.Getpid())).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second)
	client := paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(client.Connect(), 10*time.Second); err != nil {
		return 0, false, fmt.Errorf("cannot connect to %s to clear retained topics: %w", broker, err)
	}
	defer client.Disconnect(250)

	subscribed := maps.Clone(filters)
	subscribed[base+"/bench-sync/#"] = 1
	if err := paho.WaitTokenTimeout(client.SubscribeMultiple(subscribed, handler), 10*time.Second); err != nil {
		return 0, false, fmt.Errorf("cannot subscribe to %d filters under %s to clear retained topics: %w", len(subscribed), base, err)
	}
	if err := paho.WaitTokenTimeout(client.Publish(marker, 1, false, "sync"), 10*time.Second); err != nil {
		return 0, false, fmt.Errorf("cannot publish marker %s: %w", marker, err)
	}

	// A marker the broker dropped never comes, so the wait ends after a
	// while and the pass clears what it has.
	select {
	case <-markerSeen:
		synced = true
	case <-time.After(markerWait):
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}

	mu.Lock()
	topics := found
	mu.Unlock()
	var tokens []paho.Token
	for _, topic := range topics {
		if ownedTopic(topic, base, lockIDs, private) {
			tokens = append(tokens, client.Publish(topic, 1, true, []byte{}))
		}
	}
	var errs []error
	for _, tok := range tokens {
		errs = append(errs, paho.WaitTokenTimeout(tok, 10*time.Second))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, synced, fmt.Errorf("cannot clear retained topics: %w", err)
	}
	return len(tokens), synced, nil
}

// ownedTopic reports whether a retained topic was made by the run's target.
func ownedTopic(topic, base string, lockIDs []string, private bool) bool {
	if private && (strings.HasPrefix(topic, base+"/") || strings.Contains(topic, "loqed")) {
		return true
	}
	for _, id := range lockIDs {
		if strings.Contains(topic, id) {
			return true
		}
	}
	return false
}

// machineInfo records what the figures were measured on.
type machineInfo struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	MemoryMiB   int    `json:"memory_mib"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	Mosquitto   string `json:"mosquitto"`
	Node        string `json:"node"`
	NodeRED     string `json:"node_red"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	MeasuredAt  string `json:"measured_at"`
	ClockTicksS int    `json:"clock_ticks_per_s"`
}

func readMachineInfo(mosquitto, noderedDir string) machineInfo {
	info := machineInfo{
		CPUs:        runtime.NumCPU(),
		Go:          runtime.Version(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		MeasuredAt:  time.Now().UTC().Format(time.RFC3339),
		ClockTicksS: clockTicks,
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				info.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				info.MemoryMiB = kib / 1024
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(data))
	}

	// mosquitto -h prints its version on the first line and exits non-zero.
	out, _ := exec.Command(mosquitto, "-h").CombinedOutput()
	info.Mosquitto = firstLine(strings.TrimSpace(string(out)))
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		info.Node = strings.TrimSpace(string(out))
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if data, err := os.ReadFile(filepath.Join(noderedDir, "node_modules", "node-red", "package.json")); err == nil {
		if json.Unmarshal(data, &pkg) == nil {
			info.NodeRED = pkg.Version
		}
	}
	return info
}
