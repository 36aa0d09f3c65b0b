package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// startTimeout bounds one start of a local broker; it usually takes milliseconds.
	startTimeout = 10 * time.Second
	// stopTimeout bounds the wait after SIGTERM before the broker is killed.
	stopTimeout = 10 * time.Second
	// startAttempts bounds the restarts while the port is still taken, for example by
	// a client's socket of the previous broker process that the kernel has not
	// released yet.
	startAttempts = 20
)

// errAddrInUse reports that the broker could not bind its port.
var errAddrInUse = errors.New("port already in use")

// localBroker runs the mosquitto binary as a child process of the test.
type localBroker struct {
	bin    string
	broker *Broker

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and its log is read
}

func (l *localBroker) start() error {
	conf, err := l.broker.writeConfig(l.broker.port, "127.0.0.1", l.broker.dir, os.Geteuid() == 0)
	if err != nil {
		return err
	}

	for attempt := 1; ; attempt++ {
		err := l.startOnce(conf)
		if err == nil || !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			return err
		}
		// The kernel sends no event when a port becomes free, so the retry waits a
		// little longer each time: at most about 10 seconds over all attempts.
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
}

// startOnce starts mosquitto and waits until its log announces the listen socket and
// then the "mosquitto version X running" line, which Mosquitto writes after it has
// opened every listener.
func (l *localBroker) startOnce(conf string) error {
	cmd := exec.Command(l.bin, "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("cannot capture the output of %s: %w", l.bin, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run %s: %w", l.bin, err)
	}

	ready := make(chan struct{})
	exited := make(chan struct{})
	var bindFailed atomic.Bool
	listenLine := "Opening ipv4 listen socket on port " + strconv.Itoa(l.broker.port) + "."

	go func() {
		defer close(exited)
		listening, announced := false, false

		r := bufio.NewReader(stderr)
		for {
			line, err := r.ReadString('\n')
			line = strings.TrimRight(line, "\n")
			if line != "" {
				l.broker.logs.add(line)
			}
			switch {
			case strings.Contains(line, listenLine):
				listening = true
			case strings.Contains(line, "Address already in use"):
				bindFailed.Store(true)
			case listening && !announced && strings.Contains(line, "mosquitto version") && strings.HasSuffix(line, " running"):
				announced = true
				close(ready)
			}
			if err != nil {
				// Wait may only run after every read from the pipe has completed.
				_, _ = io.Copy(io.Discard, r)
				_ = cmd.Wait()
				return
			}
		}
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()

	select {
	case <-ready:
		l.cmd, l.exited = cmd, exited
		return nil
	case <-exited:
		if bindFailed.Load() {
			return fmt.Errorf("mosquitto cannot listen on port %d: %w", l.broker.port, errAddrInUse)
		}
		return fmt.Errorf("mosquitto exited during startup (%s); see its log below", cmd.ProcessState)
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("mosquitto did not report that it was listening within %v", startTimeout)
	}
}

func (l *localBroker) stop(kill bool) error {
	if !l.running() {
		l.cmd = nil
		return nil
	}

	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if err := l.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot signal mosquitto (PID %d): %w", l.cmd.Process.Pid, err)
	}

	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-l.exited:
	case <-timer.C:
		_ = l.cmd.Process.Kill()
		<-l.exited
	}
	l.cmd = nil
	return nil
}

func (l *localBroker) running() bool {
	if l.cmd == nil {
		return false
	}
	select {
	case <-l.exited:
		return false
	default:
		return true
	}
}
