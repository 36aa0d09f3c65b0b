// Command loqed-sim runs a fake LOQED account: the Integrations API that
// loqed2mqtt calls, and the webhooks the LOQED cloud sends when a lock
// moves. It allows dry runs of the bridge without touching a real door.
//
// Usage:
//
//	loqed-sim [flags]
//
// Flags:
//
//	-listen ADDR        address to serve on (default 127.0.0.1:8081); port 0
//	                    picks a free port, and the bound address is printed
//	                    on stdout as "listening on ADDR"
//	-token TOKEN        bearer token the API accepts (default sim-token)
//	-webhook-url URL    where webhooks are POSTed, for example
//	                    http://127.0.0.1:8080/webhook/<secret>; empty sends none
//	-locks N            number of locks (default 2); ids are the same on every run
//	-move-delay D       time between the GO_TO_STATE and STATE_CHANGED webhooks
//	                    of a command (default 2s)
//	-ack-delay D        time between a command and its GO_TO_STATE webhook (default 0)
//	-numeric-ids        webhooks carry the numeric internal lock id (6148, 6149, ...)
//	                    instead of the API id, like webhooks set up in the LOQED web app
//
// Point loqed2mqtt at it with LOQED_API_URL=http://127.0.0.1:8081 and
// LOQED_API_TOKEN=sim-token. Besides the API, the server offers control
// endpoints without authentication: GET /sim/requests (request log), GET
// /sim/locks, POST /sim/faults (for example {"fail_next": 2, "status": 429,
// "retry_after_seconds": 60}), POST /sim/webhook (send a raw webhook body)
// and POST /sim/locks/{id}/operate ({"state": "night_lock"}, a manual turn).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed/loqedtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the parsed flags.
type config struct {
	listen     string
	token      string
	webhookURL string
	locks      int
	moveDelay  time.Duration
	ackDelay   time.Duration
	numericIDs bool
}

// parseFlags parses and validates args.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loqed-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8081", "address to serve on; port 0 picks a free port")
	fs.StringVar(&cfg.token, "token", "sim-token", "bearer token the API accepts")
	fs.StringVar(&cfg.webhookURL, "webhook-url", "", "URL webhooks are POSTed to; empty sends none")
	fs.IntVar(&cfg.locks, "locks", 2, "number of locks")
	fs.DurationVar(&cfg.moveDelay, "move-delay", 2*time.Second, "time between the GO_TO_STATE and STATE_CHANGED webhooks")
	fs.DurationVar(&cfg.ackDelay, "ack-delay", 0, "time between a command and its GO_TO_STATE webhook")
	fs.BoolVar(&cfg.numericIDs, "numeric-ids", false, "send the numeric internal lock id in webhooks")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: loqed-sim takes only flags", fs.Arg(0))
	}

	switch {
	case cfg.token == "":
		return config{}, errors.New("invalid -token: must not be empty")
	case cfg.locks < 1 || cfg.locks > 1000:
		return config{}, fmt.Errorf("invalid -locks %d: must be between 1 and 1000", cfg.locks)
	case cfg.moveDelay < 0 || cfg.ackDelay < 0:
		return config{}, errors.New("invalid -move-delay or -ack-delay: must not be negative")
	}
	if cfg.webhookURL != "" {
		u, err := url.Parse(cfg.webhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config{}, fmt.Errorf("invalid -webhook-url: want an http:// or https:// URL with a host")
		}
	}
	return cfg, nil
}

// run serves the fake account until ctx ends and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loqed-sim: %v\n", err)
		return 2
	}
	logger := log.New(stderr, "loqed-sim: ", log.LstdFlags)

	acct := loqedtest.New(loqedtest.Options{
		Token:             cfg.token,
		WebhookURL:        cfg.webhookURL,
		Locks:             cfg.locks,
		MoveDelay:         cfg.moveDelay,
		AckDelay:          cfg.ackDelay,
		NumericWebhookIDs: cfg.numericIDs,
		Logf:              logger.Printf,
	})
	defer acct.Close()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		logger.Printf("cannot listen on %s: %v", cfg.listen, err)
		return 1
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	for i, l := range acct.Locks() {
		logger.Printf("lock %d: id %s, name %q, webhook lock_id %v", i+1, l.ID, l.Name, webhookLockID(cfg, i, l.ID))
	}
	if cfg.webhookURL == "" {
		logger.Printf("no -webhook-url given: commands change the locks but send no webhooks")
	}

	srv := &http.Server{Handler: acct.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		logger.Printf("server stopped: %v", err)
		return 1
	case <-ctx.Done():
	}

	// A fresh context: the parent one has already ended.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Printf("shutdown: %v", err)
		return 1
	}
	logger.Printf("stopped")
	return 0
}

// webhookLockID returns the lock_id the webhooks of lock i carry.
func webhookLockID(cfg config, i int, id string) any {
	if cfg.numericIDs {
		return loqedtest.NumericID(i)
	}
	return id
}
