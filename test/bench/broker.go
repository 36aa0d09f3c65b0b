package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// privateBroker is a Mosquitto started by the bench for one invocation.
type privateBroker struct {
	proc *process
	url  string
}

var (
	mosquittoRunning   = regexp.MustCompile(`mosquitto version \S+ running`)
	mosquittoAddrInUse = regexp.MustCompile(`(?i)address already in use`)
)

// startBroker starts mosquittoPath on a free loopback port with persistence
// off and otherwise Debian's shipped defaults, which keep Nagle's algorithm
// on (set_tcp_nodelay false) as most users run it. It waits for the log line
// that reports the broker running.
func startBroker(ctx context.Context, mosquittoPath, dir string) (*privateBroker, error) {
	var lastErr error

	// A port found free can be taken before Mosquitto binds it; a few
	// attempts on new ports make that race harmless.
	for attempt := 0; attempt < 3; attempt++ {
		b, err := startBrokerOnce(ctx, mosquittoPath, dir)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if !mosquittoAddrInUse.MatchString(err.Error()) {
			break
		}
	}
	return nil, lastErr
}

func startBrokerOnce(ctx context.Context, mosquittoPath, dir string) (*privateBroker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}

	conf := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.conf", port))
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence false",
		// stderr is unbuffered, so every line reaches the bench at once.
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write Mosquitto config %s: %w", conf, err)
	}

	p, err := startProcess("mosquitto", mosquittoPath, []string{"-c", conf}, nil, dir)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := p.waitForLine(waitCtx, mosquittoRunning); err != nil {
		_ = p.stop(2 * time.Second)
		return nil, fmt.Errorf("private broker did not start on port %d: %w", port, err)
	}
	return &privateBroker{proc: p, url: fmt.Sprintf("tcp://127.0.0.1:%d", port)}, nil
}

// Close stops the broker by its PID.
func (b *privateBroker) Close() error {
	return b.proc.stop(5 * time.Second)
}
