package mqtt

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subackFailure is the SUBACK return code for a rejected subscription [MQTT-3.9.3].
const subackFailure = 0x80

// subscription is a topic filter with its handler, message queue and worker goroutine.
// A subscription made with SubscribeGroup has more filters in extra; a message that
// matches several of them is delivered once.
type subscription struct {
	filter  string
	extra   []string
	qos     byte
	handler Handler

	queue    *fifo[Message]
	stopped  chan struct{}
	stopOnce sync.Once
}

func (s *subscription) matches(topic string) bool {
	if TopicMatches(s.filter, topic) {
		return true
	}
	for _, f := range s.extra {
		if TopicMatches(f, topic) {
			return true
		}
	}
	return false
}

func (s *subscription) stop() {
	s.stopOnce.Do(func() { close(s.stopped) })
}

// Subscribe subscribes to filter with the given maximum QoS and calls h for every
// matching message. The subscription is remembered and restored after every reconnect.
// While the connection is open, Subscribe waits for the SUBACK and returns an error
// when the broker rejected the filter. While it is down, Subscribe returns nil at once
// and the subscription is made on the next connect, before the OnConnect callbacks run.
// Subscribing to the same filter again replaces its handler.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	return c.SubscribeGroup(ctx, []string{filter}, qos, h)
}

// SubscribeGroup subscribes to several filters in one SUBSCRIBE packet, with one
// handler that receives the messages of all of them in the order they arrive. The
// broker sends the retained messages of the filters before anything published after
// the SUBACK, so a group that includes a private marker topic can tell when every
// retained message has arrived. Unsubscribe with all of the group's filters removes it.
func (c *Client) SubscribeGroup(ctx context.Context, filters []string, qos byte, h Handler) error {
	if len(filters) == 0 {
		return fmt.Errorf("mqtt: missing topic filter")
	}
	for _, f := range filters {
		if !validFilter(f) {
			return fmt.Errorf("mqtt: invalid topic filter %q", f)
		}
	}
	filter := filters[0]
	if qos > 2 {
		return fmt.Errorf("mqtt: invalid QoS %d for topic filter %q; use 0, 1 or 2", qos, filter)
	}
	if h == nil {
		return fmt.Errorf("mqtt: missing handler for topic filter %q", filter)
	}

	sub := &subscription{
		filter:  filter,
		extra:   append([]string(nil), filters[1:]...),
		qos:     qos,
		handler: h,
		queue:   newFIFO[Message](),
		stopped: make(chan struct{}),
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNotConnected
	}
	previous := c.subs[filter]
	c.subs[filter] = sub
	c.wg.Add(1)
	go c.runSubscription(sub)
	c.mu.Unlock()

	if previous != nil {
		previous.stop()
	}

	if !c.paho.IsConnectionOpen() {
		return nil
	}

	request := make(map[string]byte, len(filters))
	for _, f := range filters {
		request[f] = qos
	}
	granted, err := c.subscribe(ctx, request)
	for _, f := range filters {
		if err == nil && granted[f] == subackFailure {
			err = fmt.Errorf("mqtt: broker rejected the subscription to %q; check the broker's access control list", f)
		}
	}
	if err != nil {
		c.forget(sub)
		return err
	}

	c.log.Info().Strs("filters", filters).Uint8("qos", granted[filter]).Msg("Subscribed")
	return nil
}

// subscribe sends one SUBSCRIBE packet for filters and returns the granted QoS per filter.
func (c *Client) subscribe(ctx context.Context, filters map[string]byte) (map[string]byte, error) {
	lost := c.connectionLost()
	token := c.paho.SubscribeMultiple(filters, nil)
	if err := c.waitToken(ctx, token, time.Now().Add(c.opts.AckTimeout), lost); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %v: %w", sortedKeys(filters), err)
	}
	return token.(*paho.SubscribeToken).Result(), nil
}

// forget removes sub unless a later Subscribe replaced it, and stops its worker.
func (c *Client) forget(sub *subscription) {
	c.mu.Lock()
	if c.subs[sub.filter] == sub {
		delete(c.subs, sub.filter)
	}
	c.mu.Unlock()
	sub.stop()
}

// Unsubscribe removes the subscriptions to filters. Messages still queued for them are
// dropped. While the connection is open it waits for the UNSUBACK.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	c.mu.Lock()
	for _, f := range filters {
		if s, ok := c.subs[f]; ok {
			s.stop()
			delete(c.subs, f)
		}
	}
	c.mu.Unlock()

	if len(filters) == 0 || !c.paho.IsConnectionOpen() {
		return nil
	}

	lost := c.connectionLost()
	token := c.paho.Unsubscribe(filters...)
	if err := c.waitToken(ctx, token, time.Now().Add(c.opts.AckTimeout), lost); err != nil {
		return fmt.Errorf("failed to unsubscribe from %q: %w", filters, err)
	}
	c.log.Info().Strs("filters", filters).Msg("Unsubscribed")
	return nil
}

// restoreSubscriptions sends every remembered subscription again after a connect.
func (c *Client) restoreSubscriptions() {
	c.mu.RLock()
	filters := make(map[string]byte, len(c.subs))
	for f, s := range c.subs {
		filters[f] = s.qos
		for _, x := range s.extra {
			filters[x] = s.qos
		}
	}
	c.mu.RUnlock()
	if len(filters) == 0 {
		return
	}

	granted, err := c.subscribe(c.ctx, filters)
	if err != nil {
		c.log.Error().Err(err).Msg("Failed to restore subscriptions")
		return
	}

	for _, f := range sortedKeys(filters) {
		qos, ok := granted[f]
		if !ok || qos == subackFailure {
			c.log.Error().Str("filter", f).Msg("Broker rejected a restored subscription; check the broker's access control list")
			continue
		}
		c.log.Info().Str("filter", f).Uint8("qos", qos).Msg("Subscribed")
	}
}

// route is Paho's handler for every incoming message. It runs on Paho's goroutine, so
// it only appends the message to the queue of each matching subscription.
func (c *Client) route(_ paho.Client, m paho.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), QoS: m.Qos()}

	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, s := range c.subs {
		if s.matches(msg.Topic) {
			s.queue.push(msg)
		}
	}
}

// runSubscription calls the handler of s for each queued message in arrival order.
func (c *Client) runSubscription(s *subscription) {
	defer c.wg.Done()

	for {
		select {
		case <-s.stopped:
			return
		case <-s.queue.ready:
		}

		for _, m := range s.queue.takeAll() {
			select {
			case <-s.stopped:
				return
			default:
			}
			c.deliver(s, m)
		}
	}
}

func (c *Client) deliver(s *subscription, m Message) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error().Interface("panic", v).Str("filter", s.filter).Str("topic", m.Topic).Msg("Message handler panicked; message dropped")
		}
	}()
	s.handler(m)
}

func sortedKeys(m map[string]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
