// Package harness starts private Mosquitto brokers for tests and benchmarks and offers
// small MQTT helpers to publish, record and snapshot retained messages against them.
//
// StartBroker runs the local mosquitto binary when one is installed and falls back to
// the eclipse-mosquitto:2 image through testcontainers-go otherwise. Every broker listens
// on its own free port on 127.0.0.1 and keeps no state across restarts.
package harness

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BrokerOptions configures a broker started by StartBroker.
type BrokerOptions struct {
	// Username and Password, when Username is set, become the only accepted
	// credentials: the broker gets a password file and rejects anonymous clients.
	Username string
	Password string

	// NoDelay turns Nagle's algorithm off on the broker's sockets (set_tcp_nodelay
	// true). Mosquitto leaves it on by default, which delays the second of two
	// pipelined acknowledgements by about 40 ms.
	NoDelay bool
}

// Broker is a private Mosquitto broker. Stop, Kill and Start must be called from the
// test's goroutine, because they report failures with tb.Fatalf.
type Broker struct {
	tb   testing.TB
	opts BrokerOptions
	port int
	dir  string

	mu      sync.Mutex
	backend backend
	logs    *logBuffer
}

// backend runs the broker process, either locally or in a container.
type backend interface {
	// start starts the broker and returns once it accepts connections.
	start() error
	// stop ends the broker with SIGTERM, or with SIGKILL when kill is set, and returns
	// once it has exited. Stopping a stopped broker does nothing.
	stop(kill bool) error
	// running reports whether the broker process is alive.
	running() bool
}

// StartBroker starts a private Mosquitto on a free 127.0.0.1 port and stops it when the
// test ends. It fails the test when neither a local mosquitto binary nor Docker through
// testcontainers can start one.
func StartBroker(tb testing.TB, opts BrokerOptions) *Broker {
	tb.Helper()

	b := &Broker{
		tb:   tb,
		opts: opts,
		port: FreePort(tb),
		dir:  tb.TempDir(),
		logs: newLogBuffer(200),
	}

	if bin := mosquittoBinary(); bin != "" {
		b.backend = &localBroker{bin: bin, broker: b}
	} else {
		b.backend = &containerBroker{broker: b}
	}

	tb.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()

		if err := b.backend.stop(false); err != nil {
			tb.Errorf("cannot stop Mosquitto on %s: %v", b.Addr(), err)
		}
		if tb.Failed() {
			tb.Logf("last lines of the Mosquitto log on %s:\n%s", b.Addr(), b.logs.String())
		}
	})

	if err := b.backend.start(); err != nil {
		tb.Fatalf("cannot start Mosquitto on %s: %v\nlog:\n%s", b.Addr(), err, b.logs.String())
	}
	return b
}

// URL returns the broker's address as tcp://127.0.0.1:PORT.
func (b *Broker) URL() string {
	return "tcp://" + b.Addr()
}

// AuthURL returns URL with the broker's credentials as user information, which Paho
// uses as user name and password. Without credentials it equals URL.
func (b *Broker) AuthURL() string {
	if b.opts.Username == "" {
		return b.URL()
	}
	u := url.URL{Scheme: "tcp", User: url.UserPassword(b.opts.Username, b.opts.Password), Host: b.Addr()}
	return u.String()
}

// Addr returns the broker's host:port.
func (b *Broker) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
}

// Port returns the broker's TCP port.
func (b *Broker) Port() int {
	return b.port
}

// Stop ends the broker with SIGTERM and waits for it to exit.
func (b *Broker) Stop() {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()

	if err := b.backend.stop(false); err != nil {
		b.tb.Fatalf("cannot stop Mosquitto on %s: %v", b.Addr(), err)
	}
}

// Kill ends the broker with SIGKILL and waits for it to exit.
func (b *Broker) Kill() {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()

	if err := b.backend.stop(true); err != nil {
		b.tb.Fatalf("cannot kill Mosquitto on %s: %v", b.Addr(), err)
	}
}

// Start starts the stopped broker again on the same port. It keeps no persistence, so
// retained messages are gone.
func (b *Broker) Start() {
	b.tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()

	if b.backend.running() {
		b.tb.Fatalf("cannot start Mosquitto on %s: it is already running", b.Addr())
	}
	if err := b.backend.start(); err != nil {
		b.tb.Fatalf("cannot restart Mosquitto on %s: %v\nlog:\n%s", b.Addr(), err, b.logs.String())
	}
}

// Log returns the last lines the broker logged.
func (b *Broker) Log() string {
	return b.logs.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cannot find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mosquittoBinary returns the path of the local mosquitto binary, or "" when none is
// installed. It is a variable so that a test can simulate a machine without one.
var mosquittoBinary = findMosquittoBinary

func findMosquittoBinary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	const debianPath = "/usr/sbin/mosquitto"
	if st, err := os.Stat(debianPath); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return debianPath
	}
	return ""
}

// writeConfig writes mosquitto.conf and, with credentials, a password file into b.dir
// and returns the configuration's path. listenAddr is "127.0.0.1" for a local process
// and "0.0.0.0" inside a container. confDir is the directory the broker reads the files
// from, which is not b.dir inside a container.
func (b *Broker) writeConfig(port int, listenAddr, confDir string, dropRoot bool) (string, error) {
	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d %s\n", port, listenAddr)
	conf.WriteString("persistence false\n")
	conf.WriteString("log_dest stderr\n")
	for _, t := range []string{"error", "warning", "notice", "information", "subscribe", "unsubscribe"} {
		fmt.Fprintf(&conf, "log_type %s\n", t)
	}
	conf.WriteString("connection_messages true\n")
	if b.opts.NoDelay {
		conf.WriteString("set_tcp_nodelay true\n")
	}
	if dropRoot {
		// Mosquitto started as root switches to the "mosquitto" user, which cannot
		// read the test's private temporary directory.
		conf.WriteString("user root\n")
	}

	if b.opts.Username != "" {
		line, err := passwordLine(b.opts.Username, b.opts.Password)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(b.dir, "passwd"), []byte(line), 0o600); err != nil {
			return "", fmt.Errorf("cannot write password file: %w", err)
		}
		conf.WriteString("allow_anonymous false\n")
		fmt.Fprintf(&conf, "password_file %s\n", filepath.Join(confDir, "passwd"))
	} else {
		conf.WriteString("allow_anonymous true\n")
	}

	path := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		return "", fmt.Errorf("cannot write Mosquitto configuration: %w", err)
	}
	return path, nil
}

// passwordLine returns a password file line in Mosquitto's "$6$" format: the SHA-512
// digest of the password followed by a random salt, both base64 encoded, as
// mosquitto_passwd of Mosquitto 1.x writes it and Mosquitto 2.0 still accepts.
func passwordLine(username, password string) (string, error) {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("cannot generate password salt: %w", err)
	}
	h := sha512.New()
	h.Write([]byte(password))
	h.Write(salt)
	enc := base64.StdEncoding
	return fmt.Sprintf("%s:$6$%s$%s\n", username, enc.EncodeToString(salt), enc.EncodeToString(h.Sum(nil))), nil
}

// logBuffer keeps the last lines of a broker log.
type logBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogBuffer(max int) *logBuffer {
	return &logBuffer{max: max, changed: make(chan struct{})}
}

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-l.max:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor waits up to timeout for a line containing substr and reports whether one
// arrived.
func (l *logBuffer) waitFor(substr string, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	for {
		l.mu.Lock()
		found := strings.Contains(strings.Join(l.lines, "\n"), substr)
		changed := l.changed
		l.mu.Unlock()
		if found {
			return true
		}

		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
