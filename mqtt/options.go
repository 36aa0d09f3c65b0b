// Package mqtt is the bridge's MQTT client, a thin layer over the Eclipse Paho client.
// It connects with a last will and restores subscriptions after every reconnect. It
// publishes with QoS 1 and waits for the broker's PUBACK. Message handlers run on
// goroutines of their own, so a slow handler does not stall Paho's network loop.
package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Default values for the zero fields of Options.
const (
	DefaultAckTimeout           = 10 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	DefaultKeepAlive            = 30 * time.Second
)

// Availability payloads published on Options.WillTopic.
const (
	PayloadOnline  = "online"
	PayloadOffline = "offline"
)

// Options configures a Client. The zero value of each duration selects its default.
type Options struct {
	// URL is the broker address: tcp://, ssl://, ws:// or wss://. A tcp:// or ssl://
	// URL without a port uses 1883 or 8883.
	URL string

	// Username and Password are the broker credentials. Password is never logged.
	Username string
	Password string

	// ClientID identifies the session at the broker and must differ between instances,
	// because the broker disconnects a client when another connects with the same ID.
	ClientID string

	// CAFile is a PEM bundle of the certificate authorities trusted for ssl:// and wss://.
	// Empty means the system roots. CertFile and KeyFile are an optional PEM client
	// certificate and its key; set both or neither.
	CAFile   string
	CertFile string
	KeyFile  string

	// WillTopic, when set, is the availability topic: the broker publishes "offline"
	// retained with QoS 1 there when the connection dies, the client publishes "online"
	// retained after every connect and "offline" retained on Close.
	WillTopic string

	// AckTimeout bounds the wait for a PUBACK, SUBACK or UNSUBACK (default 10s).
	AckTimeout time.Duration

	// ConnectTimeout bounds each connection attempt, TCP, TLS and CONNACK together
	// (default 10s).
	ConnectTimeout time.Duration

	// MaxReconnectInterval caps the backoff between reconnect attempts (default 30s).
	MaxReconnectInterval time.Duration

	// KeepAlive is the MQTT keep-alive interval sent in CONNECT (default 30s).
	KeepAlive time.Duration

	// Logger receives connection lifecycle logs. The zero value discards them.
	Logger zerolog.Logger
}

// withDefaults returns a copy of o with every zero duration replaced by its default.
func (o Options) withDefaults() Options {
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxReconnectInterval == 0 {
		o.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	return o
}

// brokerURL parses and checks o.URL and fills in the default port of tcp:// and ssl://.
func (o Options) brokerURL() (*url.URL, error) {
	if o.URL == "" {
		return nil, errors.New("missing MQTT broker URL; set it to tcp://host:1883, ssl://host:8883, ws://host/path or wss://host/path")
	}

	u, err := url.Parse(o.URL)
	if err != nil {
		// url.Parse quotes the whole input, which may contain a password, so only
		// its reason is kept.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("invalid MQTT broker URL: %w", err)
	}

	defaultPort := map[string]string{"tcp": "1883", "ssl": "8883", "ws": "", "wss": ""}
	port, ok := defaultPort[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("invalid MQTT broker URL %q: scheme %q is not supported; use tcp://, ssl://, ws:// or wss://", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("invalid MQTT broker URL %q: missing host", u.Redacted())
	}
	if u.Port() == "" && port != "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// validate checks the fields that do not depend on the file system.
func (o Options) validate() error {
	if o.Password != "" && o.Username == "" {
		// MQTT 3.1.1 forbids a password without a user name [MQTT-3.1.2-22].
		return errors.New("MQTT password is set without a user name; set the user name too")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return fmt.Errorf("MQTT client certificate file %q and key file %q must be set together", o.CertFile, o.KeyFile)
	}

	durations := []struct {
		name  string
		value time.Duration
	}{
		{"AckTimeout", o.AckTimeout},
		{"ConnectTimeout", o.ConnectTimeout},
		{"MaxReconnectInterval", o.MaxReconnectInterval},
		{"KeepAlive", o.KeepAlive},
	}
	for _, d := range durations {
		if d.value < 0 {
			return fmt.Errorf("invalid MQTT option %s %v: must not be negative", d.name, d.value)
		}
	}
	return nil
}

// tlsConfig loads the CA bundle and client certificate. It returns nil for a plain
// tcp:// or ws:// URL, which must not be combined with TLS files.
func (o Options) tlsConfig(u *url.URL) (*tls.Config, error) {
	secure := u.Scheme == "ssl" || u.Scheme == "wss"
	if !secure {
		if o.CAFile != "" || o.CertFile != "" {
			return nil, fmt.Errorf("MQTT TLS files are set but broker URL %q does not use TLS; use ssl:// or wss://", u.Redacted())
		}
		return nil, nil
	}

	cfg := &tls.Config{MinVersion: tls.VersionTLS12}

	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read MQTT CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MQTT CA file %q contains no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}

	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load MQTT client certificate %q with key %q: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
