package bridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's Prometheus metrics.
type metrics struct {
	webhooks         *prometheus.CounterVec
	events           *prometheus.CounterVec
	duplicates       prometheus.Counter
	published        prometheus.Counter
	publishFailures  prometheus.Counter
	eventsQueued     prometheus.Gauge
	eventsDropped    prometheus.Counter
	commands         *prometheus.CounterVec
	retainedCommands prometheus.Counter
	badCodes         prometheus.Counter
	budgetRemaining  prometheus.Gauge
	locks            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loqed2mqtt_webhooks_total",
			Help: "Webhook requests by HTTP status of the answer.",
		}, []string{"status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loqed2mqtt_events_total",
			Help: "Webhook events accepted, by kind.",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_events_duplicate_total",
			Help: "Webhook events ignored because the same event arrived within the dedup window.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_mqtt_published_total",
			Help: "MQTT messages of locks acknowledged by the broker.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_mqtt_publish_failures_total",
			Help: "MQTT messages of locks that did not reach the broker and wait for the next resync.",
		}),
		eventsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loqed2mqtt_events_queued",
			Help: "Event messages waiting for the broker's acknowledgement.",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_events_dropped_total",
			Help: "Event messages dropped because the queue of messages not yet acknowledged by the broker was full.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loqed2mqtt_commands_total",
			Help: "Command results by command, status and code.",
		}, []string{"command", "status", "code"}),
		retainedCommands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_commands_retained_total",
			Help: "Retained command messages ignored and cleared.",
		}),
		badCodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loqed2mqtt_commands_bad_code_total",
			Help: "Lock commands rejected for a missing or wrong COMMAND_PIN code.",
		}),
		budgetRemaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loqed2mqtt_api_list_budget_remaining",
			Help: "Lock list calls left in the current budget window.",
		}),
		locks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loqed2mqtt_locks",
			Help: "Locks the bridge knows.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.webhooks, m.events, m.duplicates, m.published, m.publishFailures, m.eventsQueued,
		m.eventsDropped, m.commands, m.retainedCommands, m.badCodes, m.budgetRemaining, m.locks,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("failed to register metrics: %w", err)
		}
	}
	return m, nil
}
