package mqtt

import (
	"context"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ackEntry is a PublishAsync call waiting for its PUBACK. An entry without a token
// already has its outcome in err.
type ackEntry struct {
	token    paho.Token
	err      error
	deadline time.Time
	lost     <-chan struct{}
	done     func(error)
}

// Publish sends payload to topic with QoS 1 and waits for the broker's PUBACK.
//
// It returns ErrNotConnected at once while the connection is down. When the connection
// drops before the PUBACK, it returns an error wrapping ErrNotConnected, and the message
// may or may not have arrived because it is not resent. It returns ErrAckTimeout when no
// PUBACK arrived within Options.AckTimeout, and ctx.Err() when ctx ends first.
//
// Publish waits for one acknowledgement only. Callers that send several messages in a
// row should use PublishAsync, because a broker with Nagle's algorithm on (Mosquitto's
// default) holds back the second of two pipelined PUBACKs for about 40 ms.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	if c.isClosed() {
		return ErrNotConnected
	}
	return c.publish(ctx, topic, payload, retained)
}

func (c *Client) publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	lost := c.connectionLost()
	if !c.paho.IsConnectionOpen() {
		return ErrNotConnected
	}
	token := c.paho.Publish(topic, 1, retained, clone(payload))
	if err := c.waitToken(ctx, token, time.Now().Add(c.opts.AckTimeout), lost); err != nil {
		return fmt.Errorf("failed to publish to %q: %w", topic, err)
	}
	return nil
}

// PublishAsync sends payload to topic with QoS 1 without waiting for the PUBACK.
// Messages published from one goroutine go on the wire in call order.
//
// done, which may be nil, is called exactly once with the outcome, as Publish reports
// it: nil, ErrNotConnected, ErrAckTimeout or Paho's error. One goroutine of the client
// calls every done in call order, so done must return quickly. After Close, done runs
// on a goroutine of its own with ErrNotConnected.
func (c *Client) PublishAsync(topic string, payload []byte, retained bool, done func(error)) {
	if done == nil {
		done = func(error) {}
	}

	entry := ackEntry{done: done, err: ErrNotConnected, lost: c.connectionLost()}
	if c.paho.IsConnectionOpen() {
		entry.token = c.paho.Publish(topic, 1, retained, clone(payload))
		entry.deadline = time.Now().Add(c.opts.AckTimeout)
		entry.err = nil
	}

	// The check and the push share the lock so that no entry lands in the queue after
	// Close stopped the watcher.
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		go done(ErrNotConnected)
		return
	}
	c.acks.push(entry)
}

// runAckWatcher waits for the PUBACKs of PublishAsync calls in call order, which is the
// order a broker acknowledges QoS 1 messages on one connection.
func (c *Client) runAckWatcher() {
	defer c.wg.Done()

	for {
		select {
		case <-c.ctx.Done():
			// Close pushes no more entries once it cancels, and it has aborted the
			// waits, so whatever is left resolves at once.
			for _, e := range c.acks.takeAll() {
				c.resolve(e)
			}
			return
		case <-c.acks.ready:
		}

		for _, e := range c.acks.takeAll() {
			c.resolve(e)
		}
	}
}

func (c *Client) resolve(e ackEntry) {
	err := e.err
	if e.token != nil {
		err = c.waitToken(context.Background(), e.token, e.deadline, e.lost)
		if err != nil {
			err = fmt.Errorf("failed to publish: %w", err)
		}
	}
	c.callSafely("PublishAsync done callback", func() { e.done(err) })
}

// drainAcks waits until every PublishAsync entry queued so far is resolved. When ctx
// ends first it aborts the remaining waits, which then report ErrAckTimeout.
func (c *Client) drainAcks(ctx context.Context) error {
	drained := make(chan struct{})
	c.acks.push(ackEntry{done: func(error) { close(drained) }})

	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		close(c.abortAcks)
		return fmt.Errorf("cannot wait for pending PUBACKs: %w", ctx.Err())
	}
}

// waitToken waits for token until deadline, ctx, the loss of the connection or Close
// ends the wait, and maps Paho's errors to this package's.
func (c *Client) waitToken(ctx context.Context, token paho.Token, deadline time.Time, lost <-chan struct{}) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()

	select {
	case <-token.Done():
		if err := token.Error(); err != nil {
			if errors.Is(err, paho.ErrNotConnected) {
				return ErrNotConnected
			}
			return err
		}
		return nil
	case <-timer.C:
		return ErrAckTimeout
	case <-lost:
		return errConnectionLost
	case <-c.abortAcks:
		return ErrAckTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// clone copies a payload, because Paho keeps the slice until the message is on the wire
// and possibly longer for a resend after a reconnect.
func clone(b []byte) []byte {
	return append([]byte(nil), b...)
}
