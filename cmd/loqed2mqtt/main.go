// Command loqed2mqtt bridges LOQED smart locks to MQTT.
//
// It receives the LOQED cloud's webhooks on POST /webhook/<secret> and
// POST /webhook/<secret>/<lock id>, publishes every lock's state as retained
// topics below MQTT_BASE_TOPIC with Home Assistant discovery, and turns the
// command topics <base>/<id>/set, <base>/<id>/settings/<name>/set and
// <base>/<id>/refresh into calls of the LOQED Integrations API.
//
// It is configured by environment variables; run it with -h for the list.
// With -demo it starts a fake LOQED account with two locks in the same
// process and points itself at it, so that it runs with nothing but a
// broker.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/loqed2mqtt/loqed2mqtt/bridge"
	"github.com/loqed2mqtt/loqed2mqtt/discovery"
	"github.com/loqed2mqtt/loqed2mqtt/loqed"
	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
	"github.com/loqed2mqtt/loqed2mqtt/mqtt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// supportURL is the support link in the origin block of the discovery configs.
const supportURL = "https://github.com/loqed2mqtt/loqed2mqtt/issues"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("loqed2mqtt", flag.ContinueOnError)
	flags.SetOutput(stderr)
	demo := flags.Bool("demo", false, "run a fake LOQED account in-process and use it as the Integrations API")
	demoLocks := flags.Int("demo-locks", 2, "number of locks of the -demo account")
	showVersion := flags.Bool("version", false, "print the version and exit")
	flags.Usage = func() { usage(flags, stderr) }
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version)
		return 0
	}

	cfg, err := loadConfig(os.LookupEnv, *demo)
	if err != nil {
		fmt.Fprintf(stderr, "loqed2mqtt: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)

	if err := serve(ctx, cfg, *demo, *demoLocks, log); err != nil {
		log.Error().Err(err).Msg("stopped")
		return 1
	}
	return 0
}

func usage(flags *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: loqed2mqtt [flags]\n\nloqed2mqtt bridges LOQED smart locks to MQTT. Flags:\n")
	flags.PrintDefaults()
	fmt.Fprintf(w, "\nEnvironment variables (secrets can also come from <NAME>_FILE):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	envconfig.Usagef("", &Config{}, tw, "{{range .}}  {{usage_key .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}")
	tw.Flush()
}

func newLogger(cfg *Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	var out io.Writer = w
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// serve runs the bridge until ctx ends, then shuts it down in the reverse
// order of start.
func serve(ctx context.Context, cfg *Config, demo bool, demoLocks int, log zerolog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	listener, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("failed to listen on HTTP_LISTEN %s: %w", cfg.HTTPListen, err)
	}
	defer listener.Close()

	if demo {
		account, err := startDemo(cfg, demoLocks, listener.Addr(), log)
		if err != nil {
			return err
		}
		defer account.close()
	}

	api, err := newAPIClient(cfg, reg, log)
	if err != nil {
		return err
	}

	client, err := mqtt.New(mqtt.Options{
		URL:       cfg.MQTTURL,
		Username:  cfg.MQTTUsername,
		Password:  cfg.MQTTPassword.Value(),
		ClientID:  cfg.MQTTClientID,
		CAFile:    cfg.MQTTCAFile,
		CertFile:  cfg.MQTTCertFile,
		KeyFile:   cfg.MQTTKeyFile,
		WillTopic: cfg.MQTTBaseTopic + "/bridge/state",
		Logger:    log.With().Str("component", "mqtt").Logger(),
	})
	if err != nil {
		return fmt.Errorf("invalid MQTT configuration: %w", err)
	}

	opts := bridge.Options{
		BaseTopic:       cfg.MQTTBaseTopic,
		WebhookSecret:   cfg.WebhookSecret.Value(),
		Discovery:       cfg.HADiscovery,
		DiscoveryPrefix: cfg.HADiscoveryPrefix,
		DiscoveryMode:   discovery.Mode(cfg.HADiscoveryMode),
		Version:         version,
		SupportURL:      supportURL,
		CommandsAllowed: cfg.CommandsAllowed,
		CommandPIN:      cfg.CommandPIN.Value(),
		Settings:        cfg.settings(),
		RefreshInterval: cfg.LoqedRefreshInterval,
		ListBudget:      cfg.LoqedListBudget,
		ConfirmTimeout:  cfg.LoqedConfirmTimeout,
		SharedGroup:     cfg.MQTTSharedGroup,
		Logger:          log,
		Registerer:      reg,
	}
	if api != nil {
		opts.API = api
	}
	// The demo account starts anew with every run, so what an earlier run
	// left on the broker describes locks in other states.
	opts.RefreshAtStart = demo
	b, err := bridge.New(opts, client, subscriber{client})
	if err != nil {
		return err
	}

	var started atomic.Bool
	client.OnConnect(func() {
		if started.Load() {
			b.Resync()
		}
	})
	client.OnConnectionLost(func(error) { b.ConnectionLost() })

	srv := newHTTPServer(b, client, &started, reg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	log.Info().Str("addr", listener.Addr().String()).Str("version", version).Msg("HTTP server listening")

	if err := startBridge(ctx, client, b, log); err != nil {
		shutdownHTTP(srv, cfg.ShutdownTimeout, log)
		return err
	}
	started.Store(true)
	log.Info().Str("base_topic", cfg.MQTTBaseTopic).Bool("receive_only", api == nil).Msg("bridge started")

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		log.Error().Err(err).Msg("HTTP server failed")
	}
	log.Info().Msg("shutting down")

	// Stop taking webhooks first, then let commands and queued messages
	// finish, then publish offline and disconnect.
	shutdownHTTP(srv, cfg.ShutdownTimeout, log)
	closeCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := b.Close(closeCtx); err != nil {
		log.Warn().Err(err).Msg("commands still running at shutdown")
	}
	if err := client.Close(closeCtx); err != nil {
		log.Warn().Err(err).Msg("failed to close the MQTT connection cleanly")
	}
	log.Info().Msg("stopped")
	return nil
}

// startBridge connects to the broker and starts the bridge. The first
// connect is retried until ctx ends.
func startBridge(ctx context.Context, client *mqtt.Client, b *bridge.Bridge, log zerolog.Logger) error {
	if err := client.Connect(ctx); err != nil {
		return fmt.Errorf("failed to connect to the broker: %w", err)
	}
	if err := b.Start(ctx); err != nil {
		return fmt.Errorf("failed to start the bridge: %w", err)
	}
	return nil
}

func shutdownHTTP(srv *http.Server, timeout time.Duration, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("HTTP server did not shut down cleanly")
	}
}

func newHTTPServer(b *bridge.Bridge, client *mqtt.Client, started *atomic.Bool, reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/webhook/", b.WebhookHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !started.Load() || !client.IsConnected() {
			http.Error(w, "not connected to the broker", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	// The webhook endpoint faces the internet: every phase of a request is
	// bounded so that slow clients cannot hold connections.
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// newAPIClient returns the Integrations API client, or nil without a token.
func newAPIClient(cfg *Config, reg prometheus.Registerer, log zerolog.Logger) (*loqed.Client, error) {
	if cfg.LoqedAPIToken == "" {
		return nil, nil
	}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loqed2mqtt_api_calls_total",
		Help: "Integrations API calls by endpoint and HTTP status (0 for transport errors).",
	}, []string{"endpoint", "status"})
	reg.MustRegister(calls)
	apiLog := log.With().Str("component", "loqed_api").Logger()

	return loqed.NewClient(loqed.ClientOptions{
		BaseURL: cfg.LoqedAPIURL,
		Timeout: cfg.LoqedAPITimeout,
		Token:   cfg.LoqedAPIToken.Value(),
		Observe: func(ci loqed.CallInfo) {
			calls.WithLabelValues(ci.Endpoint, fmt.Sprint(ci.Status)).Inc()
			e := apiLog.Debug().Str("endpoint", ci.Endpoint).Int("status", ci.Status).Dur("duration", ci.Duration)
			for _, h := range []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "Retry-After"} {
				if v := ci.Header.Get(h); v != "" {
					e = e.Str(strings.ToLower(strings.ReplaceAll(h, "-", "_")), v)
				}
			}
			e.Msg("API call")
		},
	})
}

// subscriber adapts the MQTT client to the bridge's Subscriber.
type subscriber struct {
	c *mqtt.Client
}

func (s subscriber) Subscribe(ctx context.Context, filter string, qos byte, handle func(bridge.Message)) error {
	return s.c.Subscribe(ctx, filter, qos, func(m mqtt.Message) {
		handle(bridge.Message{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained})
	})
}

func (s subscriber) SubscribeGroup(ctx context.Context, filters []string, qos byte, handle func(bridge.Message)) error {
	return s.c.SubscribeGroup(ctx, filters, qos, func(m mqtt.Message) {
		handle(bridge.Message{Topic: m.Topic, Payload: m.Payload, Retained: m.Retained})
	})
}

func (s subscriber) Unsubscribe(ctx context.Context, filters ...string) error {
	return s.c.Unsubscribe(ctx, filters...)
}

// demoAccount is the fake LOQED account of -demo with its HTTP server.
type demoAccount struct {
	account *loqedtest.Account
	server  *http.Server
}

func (d *demoAccount) close() {
	d.server.Close()
	d.account.Close()
}

// startDemo serves a fake LOQED account on a free loopback port and points
// the configuration at it: the API URL, a random token, and, when none is
// set, a random webhook secret.
func startDemo(cfg *Config, locks int, bridgeAddr net.Addr, log zerolog.Logger) (*demoAccount, error) {
	if locks < 1 || locks > 10000 {
		return nil, fmt.Errorf("-demo-locks: %d is out of range: use 1 to 10000", locks)
	}
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = Secret(randomHex(16))
	}
	token := randomHex(24)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for the demo account: %w", err)
	}
	port := bridgeAddr.(*net.TCPAddr).Port
	webhook := fmt.Sprintf("http://127.0.0.1:%d/webhook/%s", port, cfg.WebhookSecret.Value())

	account := loqedtest.New(loqedtest.Options{
		Token:      token,
		WebhookURL: webhook,
		Locks:      locks,
		MoveDelay:  2 * time.Second,
	})
	srv := &http.Server{Handler: account.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)

	cfg.LoqedAPIURL = "http://" + ln.Addr().String()
	cfg.LoqedAPIToken = Secret(token)
	log.Info().Str("api_url", cfg.LoqedAPIURL).Int("locks", locks).Msg("demo: fake LOQED account running in-process")
	for _, l := range account.Locks() {
		log.Info().Str("lock_id", l.ID).Str("name", l.Name).Msgf("demo lock: mosquitto_pub -t %s/%s/set -m night_lock", cfg.MQTTBaseTopic, l.ID)
	}
	return &demoAccount{account: account, server: srv}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
