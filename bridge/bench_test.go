package bridge

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// discardPublisher acknowledges every message at once. It stands in for the
// broker only in benchmarks, which measure the bridge's own CPU and memory
// per operation; the end-to-end tests and the load generator use a real
// broker.
type discardPublisher struct{}

func (discardPublisher) PublishAsync(_ string, _ []byte, _ bool, done func(error)) {
	if done != nil {
		done(nil)
	}
}

func (discardPublisher) Publish(context.Context, string, []byte, bool) error { return nil }
func (discardPublisher) IsConnected() bool                                   { return true }

var _ Publisher = discardPublisher{}

func newBenchBridge(b *testing.B) *Bridge {
	b.Helper()
	br, err := New(Options{BaseTopic: "loqed", WebhookSecret: "0123456789abcdef"}, discardPublisher{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	br.holding.Store(false)
	return br
}

// BenchmarkWebhookToTopics decodes one webhook and maps it to the lock's
// topics: the work of the webhook handler between reading the body and
// answering.
func BenchmarkWebhookToTopics(b *testing.B) {
	br := newBenchBridge(b)
	events := [][2]string{{"NIGHT_LOCK", "NIGHT_LOCK"}, {"LATCH", "DAY_LOCK"}, {"OPEN", "OPEN"}}
	bodies := make([][]byte, 64)
	for i := range bodies {
		e := events[i%len(events)]
		bodies[i] = []byte(`{"event_type":"STATE_CHANGED_` + e[0] + `","requested_state":"` + e[1] +
			`","lock_id":"Ab3dEf6hIj9kLm2nOp5q","key_local_id":"1","key_name_user":"bench-` + strconv.Itoa(i) +
			`","key_name_admin":"Alex Example","key_account_email":"alex@example.invalid","key_account_name":"Alex Example"}`)
	}
	at := time.Now()

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev, err := loqed.DecodeWebhook(bodies[i%len(bodies)])
		if err != nil {
			b.Fatal(err)
		}
		l, _, err := br.lockOrCreate(ev.LockID)
		if err != nil {
			b.Fatal(err)
		}
		// A distinct time per event keeps the dedup window from
		// swallowing the repeated bodies.
		l.applyEvent(&ev, at.Add(time.Duration(i)*time.Hour))
	}
}

// BenchmarkRouteCommand parses one command topic and payload: the work done
// for every command before it is queued.
func BenchmarkRouteCommand(b *testing.B) {
	tp := topics{base: "loqed"}
	payload := []byte(`{"state":"night_lock","id":"evening"}`)

	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ct, ok := tp.parseCommandTopic("loqed/Ab3dEf6hIj9kLm2nOp5q/set")
		if !ok || ct.kind != suffixSet {
			b.Fatal("topic not parsed")
		}
		if _, err := parseLockCommand(payload); err != nil {
			b.Fatal(err)
		}
	}
}
