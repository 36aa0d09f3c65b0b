package mqtt

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// ErrNotConnected is returned when the connection to the broker is down, before the first
// connect and after Close.
var ErrNotConnected = errors.New("mqtt: not connected")

// errConnectionLost is returned when the connection dropped while waiting for an
// acknowledgement. The message may or may not have reached the broker.
var errConnectionLost = fmt.Errorf("%w: connection lost before the broker's acknowledgement arrived", ErrNotConnected)

// ErrAckTimeout is returned when the broker's acknowledgement did not arrive within
// Options.AckTimeout. The outcome is then unknown: after a reconnect Paho may still
// deliver the message.
var ErrAckTimeout = errors.New("mqtt: timed out waiting for the broker's acknowledgement")

// connectRetryInterval is the fixed pause between attempts of the first connect. Paho
// backs off on its own between reconnect attempts after a connection was lost, from one
// second up to Options.MaxReconnectInterval.
const connectRetryInterval = time.Second

// disconnectQuiesce is how long Close lets Paho finish in-flight work before it drops
// the connection, in milliseconds as Paho takes it.
const disconnectQuiesce = 250

// Message is a message received on a subscription. Handlers must not modify Payload,
// because overlapping subscriptions share it.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
}

// Handler processes a message of a subscription. Each subscription calls its handler
// from one goroutine in arrival order.
type Handler func(Message)

// Client is a connection to one MQTT broker that reconnects on its own. Its methods are
// safe for concurrent use.
type Client struct {
	opts    Options
	log     zerolog.Logger
	paho    paho.Client
	urlText string // the broker URL without its password, for logs and errors

	// ctx ends when Close stops the client's goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	events *fifo[connEvent]
	acks   *fifo[ackEntry]

	// abortAcks is closed when Close stops waiting for PUBACKs of PublishAsync.
	abortAcks chan struct{}

	// availability serializes publishing "online" with Close publishing "offline", so
	// "online" can never overwrite the final "offline".
	availability chan struct{}

	connected     chan struct{}
	connectedOnce sync.Once

	// reconnecting is closed when Paho starts a reconnect attempt, which ends the
	// waits for acknowledgements sent on the lost connection, and then replaced.
	reconnectingMu sync.Mutex
	reconnecting   chan struct{}

	mu             sync.RWMutex
	subs           map[string]*subscription
	onConnect      []func()
	onLost         []func(error)
	connectStarted bool
	closed         bool
	lastConnectErr error
	attempt        int

	closeOnce sync.Once
	closeErr  error
}

// connEvent is a connect (err == nil) or a connection loss reported by Paho.
type connEvent struct {
	lost bool
	err  error
}

// New checks opts, loads the TLS files and returns a client that is not yet connected.
// Close stops the goroutines it starts, also when Connect was never called.
func New(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := opts.brokerURL()
	if err != nil {
		return nil, err
	}
	tlsConfig, err := opts.tlsConfig(u)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:         opts,
		urlText:      u.Redacted(),
		ctx:          ctx,
		cancel:       cancel,
		events:       newFIFO[connEvent](),
		acks:         newFIFO[ackEntry](),
		abortAcks:    make(chan struct{}),
		availability: make(chan struct{}, 1),
		connected:    make(chan struct{}),
		reconnecting: make(chan struct{}),
		subs:         make(map[string]*subscription),
	}
	c.log = opts.Logger.With().Str("broker", c.urlText).Str("client_id", opts.ClientID).Logger()

	po := paho.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(connectRetryInterval).
		SetResumeSubs(false).
		SetConnectTimeout(opts.ConnectTimeout).
		SetMaxReconnectInterval(opts.MaxReconnectInterval).
		SetKeepAlive(opts.KeepAlive).
		SetWriteTimeout(opts.AckTimeout).
		SetDefaultPublishHandler(c.route).
		SetOnConnectHandler(func(paho.Client) { c.events.push(connEvent{}) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.events.push(connEvent{lost: true, err: err}) }).
		SetConnectionNotificationHandler(c.noteConnection).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { c.noteReconnecting() }).
		SetStore(discardStore{})
	if tlsConfig != nil {
		po.SetTLSConfig(tlsConfig)
	}
	if u.Scheme == "tcp" || u.Scheme == "mqtt" {
		po.SetCustomOpenConnectionFn(dialCoalesced(opts.ConnectTimeout))
	}
	if opts.WillTopic != "" {
		po.SetWill(opts.WillTopic, PayloadOffline, 1, true)
	}
	c.paho = paho.NewClient(po)

	c.wg.Add(2)
	go c.runEvents()
	go c.runAckWatcher()
	return c, nil
}

// OnConnect registers f to be called after every successful connect and reconnect, once
// the subscriptions are restored and "online" is published. Register before Connect.
// Callbacks run one at a time on a goroutine of the client and must not call Close.
func (c *Client) OnConnect(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onConnect = append(c.onConnect, f)
}

// OnConnectionLost registers f to be called with the cause each time the connection
// drops. It runs on the same goroutine as the OnConnect callbacks.
func (c *Client) OnConnectionLost(f func(error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onLost = append(c.onLost, f)
}

// Connect starts connecting and retries until the first connect succeeds, then returns
// nil. When ctx ends first, it stops trying and returns an error wrapping ctx.Err() and
// the last connection error; Close makes it return an error wrapping ErrNotConnected.
// Connect may be called once.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrNotConnected
	case c.connectStarted:
		c.mu.Unlock()
		return errors.New("mqtt: Connect called twice; the client reconnects on its own")
	}
	c.connectStarted = true
	c.mu.Unlock()

	c.log.Info().Msg("Connecting to the MQTT broker")
	token := c.paho.Connect()

	select {
	case <-c.connected:
		return nil
	case <-c.ctx.Done():
		return fmt.Errorf("failed to connect to MQTT broker %s: %w", c.urlText, ErrNotConnected)
	case <-token.Done():
		if err := token.Error(); err != nil {
			return fmt.Errorf("failed to connect to MQTT broker %s: %w", c.urlText, err)
		}
		// Paho is connected; the client still restores subscriptions and publishes
		// "online" before it reports the connect.
		select {
		case <-c.connected:
			return nil
		case <-c.ctx.Done():
			return fmt.Errorf("failed to connect to MQTT broker %s: %w", c.urlText, ErrNotConnected)
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}

	c.paho.Disconnect(0)

	c.mu.RLock()
	lastErr := c.lastConnectErr
	c.mu.RUnlock()
	if lastErr != nil {
		return fmt.Errorf("failed to connect to MQTT broker %s: %w (last attempt: %w)", c.urlText, ctx.Err(), lastErr)
	}
	return fmt.Errorf("failed to connect to MQTT broker %s: %w", c.urlText, ctx.Err())
}

// IsConnected reports whether the connection to the broker is open right now.
func (c *Client) IsConnected() bool {
	return c.paho.IsConnectionOpen()
}

// Connected returns a channel that is closed once the first connect has succeeded.
func (c *Client) Connected() <-chan struct{} {
	return c.connected
}

// noteConnection logs failed connection attempts. Paho calls it on its own goroutines,
// so it only logs. The first three failures of a series are logged, then every tenth.
func (c *Client) noteConnection(_ paho.Client, n paho.ConnectionNotification) {
	switch n := n.(type) {
	case paho.ConnectionNotificationConnecting:
		c.mu.Lock()
		c.attempt = n.Attempt + 1
		c.mu.Unlock()

	case paho.ConnectionNotificationFailed:
		c.mu.Lock()
		c.lastConnectErr = n.Reason
		attempt := c.attempt
		c.mu.Unlock()

		if attempt <= 3 || attempt%10 == 0 {
			c.log.Warn().Err(n.Reason).Int("attempt", attempt).Msg("Connection attempt to the MQTT broker failed; retrying")
		}
	}
}

// noteReconnecting ends the acknowledgement waits of the lost connection. Paho calls it
// before every reconnect attempt, so a new connection never exists at that moment.
func (c *Client) noteReconnecting() {
	c.reconnectingMu.Lock()
	defer c.reconnectingMu.Unlock()
	close(c.reconnecting)
	c.reconnecting = make(chan struct{})
}

// connectionLost returns a channel that is closed once the current connection is lost.
func (c *Client) connectionLost() <-chan struct{} {
	c.reconnectingMu.Lock()
	defer c.reconnectingMu.Unlock()
	return c.reconnecting
}

// runEvents handles connects and connection losses in the order Paho reported them.
func (c *Client) runEvents() {
	defer c.wg.Done()

	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.events.ready:
		}

		for _, ev := range c.events.takeAll() {
			if c.ctx.Err() != nil {
				return
			}
			if ev.lost {
				c.handleConnectionLost(ev.err)
			} else {
				c.handleConnect()
			}
		}
	}
}

// handleConnect restores the subscriptions, publishes "online" and calls the OnConnect
// callbacks. With a clean session the broker forgot every subscription, so all of them
// are sent again in one SUBSCRIBE packet.
func (c *Client) handleConnect() {
	c.log.Info().Msg("Connected to the MQTT broker")

	c.restoreSubscriptions()

	if err := c.publishOnline(); err != nil {
		c.log.Error().Err(err).Str("topic", c.opts.WillTopic).Msg("Failed to publish online availability")
	}

	c.connectedOnce.Do(func() { close(c.connected) })

	c.mu.RLock()
	callbacks := append([]func(){}, c.onConnect...)
	c.mu.RUnlock()
	for _, f := range callbacks {
		c.callSafely("OnConnect callback", f)
	}
}

func (c *Client) handleConnectionLost(err error) {
	c.log.Info().Err(err).Msg("Connection to the MQTT broker lost; reconnecting")

	c.mu.RLock()
	callbacks := append([]func(error){}, c.onLost...)
	c.mu.RUnlock()
	for _, f := range callbacks {
		c.callSafely("OnConnectionLost callback", func() { f(err) })
	}
}

// publishOnline publishes "online" retained on the will topic, unless Close has begun.
func (c *Client) publishOnline() error {
	if c.opts.WillTopic == "" {
		return nil
	}

	select {
	case c.availability <- struct{}{}:
	case <-c.ctx.Done():
		return nil
	}
	defer func() { <-c.availability }()

	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return nil
	}
	return c.publish(c.ctx, c.opts.WillTopic, []byte(PayloadOnline), true)
}

// callSafely runs a user callback and logs a panic instead of crashing the process.
func (c *Client) callSafely(what string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error().Interface("panic", v).Str("stack", string(debug.Stack())).Msgf("%s panicked", what)
		}
	}()
	f()
}

// Close publishes "offline" retained on the will topic, waits for the PUBACKs of
// pending PublishAsync calls, disconnects and stops the client's goroutines, all within
// ctx. Later calls return the first call's result.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *Client) close(ctx context.Context) error {
	var errs []error

	// Taking the availability slot waits for a connect sequence that is publishing
	// "online" right now, so "offline" is sent after it.
	select {
	case c.availability <- struct{}{}:
		defer func() { <-c.availability }()
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("cannot publish offline availability: %w", ctx.Err()))
	}
	c.mu.Lock()
	c.closed = true
	started := c.connectStarted
	c.mu.Unlock()

	if c.opts.WillTopic != "" && len(errs) == 0 && c.paho.IsConnectionOpen() {
		if err := c.publish(ctx, c.opts.WillTopic, []byte(PayloadOffline), true); err != nil {
			errs = append(errs, fmt.Errorf("cannot publish offline availability: %w", err))
		}
	}

	if err := c.drainAcks(ctx); err != nil {
		errs = append(errs, err)
	}

	if started {
		c.paho.Disconnect(disconnectQuiesce)
	}

	c.cancel()
	c.mu.Lock()
	for _, s := range c.subs {
		s.stop()
	}
	c.subs = map[string]*subscription{}
	c.mu.Unlock()

	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("cannot stop message handlers: %w", ctx.Err()))
	}

	c.log.Info().Msg("Disconnected from the MQTT broker")
	return errors.Join(errs...)
}
