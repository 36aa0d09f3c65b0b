package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// baselineSecretEnv names the variable that passes the webhook secret to the
// baseline child, so that it does not show in the process list.
const baselineSecretEnv = "BENCH_WEBHOOK_SECRET"

// maxWebhookBody bounds the request body the baseline reads. LOQED webhooks
// are well under 1 KiB.
const maxWebhookBody = 64 * 1024

// publishTimeout bounds the wait for the broker's PUBACK in the baseline.
const publishTimeout = 10 * time.Second

// serveBaseline runs the baseline target: a bare net/http handler that
// publishes each webhook body with QoS 1 to <base>/<lock_id>/event and
// returns 200 only after the broker's PUBACK. It is the floor every bridge is
// compared with. It connects to the broker before it listens, so its
// /healthz returning 200 means it can deliver.
func serveBaseline(ctx context.Context, listen, broker, base string) error {
	secret := os.Getenv(baselineSecretEnv)
	if secret == "" {
		return fmt.Errorf("missing %s: the baseline needs the webhook secret", baselineSecretEnv)
	}

	opts := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(fmt.Sprintf("bench-baseline-%d", os.Getpid())).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectTimeout(5 * time.Second)
	client := paho.NewClient(opts)
	if err := paho.WaitTokenTimeout(client.Connect(), 10*time.Second); err != nil {
		return fmt.Errorf("cannot connect to broker %s: %w", broker, err)
	}
	defer client.Disconnect(250)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /webhook/{secret}", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.PathValue("secret")), []byte(secret)) != 1 {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		lockID, err := webhookLockID(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}

		topic := base + "/" + lockID + "/event"
		if err := paho.WaitTokenTimeout(client.Publish(topic, 1, false, body), publishTimeout); err != nil {
			log.Printf("cannot publish to %s: %v", topic, err)
			http.Error(w, "cannot publish", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})

	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", listen, err)
	}
	// The parent reads this line to learn the port.
	fmt.Printf("listening on %s\n", l.Addr())

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("baseline server on %s failed: %w", l.Addr(), err)
	}
	return nil
}

// webhookLockID decodes only lock_id from a webhook body. LOQED sends it as a
// string in Integrations API webhooks and as a number in ones registered in
// the web app, so both are accepted.
func webhookLockID(body []byte) (string, error) {
	var v struct {
		LockID json.RawMessage `json:"lock_id"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("invalid JSON body: %v", err)
	}
	raw := bytes.TrimSpace(v.LockID)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("lock_id is missing")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", errors.New("lock_id is not a valid string")
		}
		if strings.ContainsAny(s, "/+#") {
			return "", errors.New("lock_id contains an MQTT topic separator or wildcard")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("lock_id is neither a string nor a number")
	}
	return n.String(), nil
}
