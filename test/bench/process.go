package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxKeptLines bounds the output lines a process keeps for log-line waits, so
// a chatty child cannot grow the generator's memory. Readiness lines come
// early, so the first lines are the ones kept; tailLines more are kept from
// the end for error reports.
const (
	maxKeptLines = 2000
	tailLines    = 20
)

// process is a child started by the bench. Its stdout and stderr are read line
// by line so that readiness can be detected from log output and the last
// lines can be shown when it fails.
type process struct {
	name    string
	cmd     *exec.Cmd
	started time.Time

	mu      sync.Mutex
	lines   []outputLine  // the first maxKeptLines lines
	last    []outputLine  // the last tailLines lines
	changed chan struct{} // closed and replaced whenever a line arrives

	done    chan struct{} // closed after the process has exited
	waitErr error
}

// outputLine is one line of a child's output and when it arrived, counted
// from the launch.
type outputLine struct {
	text string
	at   time.Duration
}

// startProcess launches path with args and env (added to the bench's own
// environment) and starts reading its output.
func startProcess(name, path string, args, env []string, dir string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir

	// The child gets its own process group so that a terminal's Ctrl-C reaches
	// only the bench, which then stops every child by its PID. Pdeathsig
	// stops the child when the bench is killed before it can clean up.
	// NOTE: Linux clears Pdeathsig when a process changes its user id, which
	// Mosquitto does when started as root, so a killed bench can leave its
	// private broker running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot create stdout pipe for %s: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("cannot create stderr pipe for %s: %w", name, err)
	}

	p := &process{name: name, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, path, err)
	}

	var readers sync.WaitGroup
	readers.Add(2)
	go p.readLines(stdout, &readers)
	go p.readLines(stderr, &readers)
	go func() {
		// Wait must run after the pipes are drained, as os/exec requires.
		readers.Wait()
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) readLines(r io.Reader, readers *sync.WaitGroup) {
	defer readers.Done()
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		p.mu.Lock()
		line := outputLine{text: scanner.Text(), at: time.Since(p.started)}
		if len(p.lines) < maxKeptLines {
			p.lines = append(p.lines, line)
		}
		if len(p.last) == tailLines {
			p.last = append(p.last[:0], p.last[1:]...)
		}
		p.last = append(p.last, line)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}

	// Keep draining after a scanner error (an over-long line) so that the
	// child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// PID returns the operating-system id of the child.
func (p *process) PID() int { return p.cmd.Process.Pid }

// waitForLine waits until an output line matches re and returns its
// submatches and the time from launch to that line. It fails when ctx ends or
// the process exits first.
func (p *process) waitForLine(ctx context.Context, re *regexp.Regexp) ([]string, time.Duration, error) {
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if m := re.FindStringSubmatch(p.lines[seen].text); m != nil {
				at := p.lines[seen].at
				p.mu.Unlock()
				return m, at, nil
			}
		}
		changed := p.changed
		p.mu.Unlock()

		select {
		case <-changed:
		case <-p.done:
			return nil, 0, fmt.Errorf("%s exited (%v) before printing a line matching %q; last output:\n%s", p.name, p.waitErr, re, p.tail())
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%s printed no line matching %q: %w; last output:\n%s", p.name, re, ctx.Err(), p.tail())
		}
	}
}

// tail returns the last output lines, for error reports.
func (p *process) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, line := range p.last {
		b.WriteString("  ")
		b.WriteString(line.text)
		b.WriteString("\n")
	}
	return b.String()
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's PID, waits up to timeout for it to exit
// and sends SIGKILL after that.
func (p *process) stop(timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot send SIGTERM to %s (pid %d): %w", p.name, p.PID(), err)
	}

	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot kill %s (pid %d): %w", p.name, p.PID(), err)
	}
	<-p.done
	return fmt.Errorf("%s (pid %d) did not exit within %v of SIGTERM and was killed", p.name, p.PID(), timeout)
}

// procUsage is a sample of a process's resource use from /proc.
type procUsage struct {
	cpu      time.Duration // user plus system time since start
	rssBytes int64         // resident set size (VmRSS)
}

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ).
// Linux reports them in 1/100 s on every common architecture; getconf
// confirms it at start.
var clockTicks = 100

func init() {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
		clockTicks = n
	}
}

// readUsage reads utime+stime from /proc/<pid>/stat and VmRSS from
// /proc/<pid>/status.
func readUsage(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, fmt.Errorf("cannot read CPU time of pid %d: %w", pid, err)
	}

	// The command name in field 2 may contain spaces, so fields are counted
	// from the closing parenthesis: utime and stime are fields 14 and 15.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return procUsage{}, fmt.Errorf("cannot parse /proc/%d/stat: %d fields after the command name; want at least 13", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procUsage{}, fmt.Errorf("cannot parse utime/stime of pid %d: %w", pid, err)
	}
	usage := procUsage{cpu: time.Duration(utime+stime) * time.Second / time.Duration(clockTicks)}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procUsage{}, fmt.Errorf("cannot read memory use of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		value, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return procUsage{}, fmt.Errorf("cannot parse VmRSS %q of pid %d: %w", value, pid, err)
		}
		usage.rssBytes = kib * 1024
	}
	return usage, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. A
// child that binds it later can still lose a race with another program, so
// the child fails to start and the run reports that error.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port on 127.0.0.1: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("cannot release probe port %d: %w", port, err)
	}
	return port, nil
}

// readinessPoll is the interval between readiness probes. It bounds the
// error of start-to-ready figures; 2 ms is small next to every target's start
// time and costs little CPU.
const readinessPoll = 2 * time.Millisecond

// waitReady polls url with GET until it returns 200 and returns the time from
// the process's launch to that response.
func waitReady(ctx context.Context, p *process, url string) (time.Duration, error) {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, fmt.Errorf("invalid readiness URL %q: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
		}

		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited (%v) before %s returned 200; last output:\n%s", p.name, p.waitErr, url, p.tail())
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: %s did not return 200: %w; last output:\n%s", p.name, url, ctx.Err(), p.tail())
		case <-time.After(readinessPoll):
		}
	}
}
