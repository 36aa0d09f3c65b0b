package mqtt

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Paho writes every packet with a write system call of its own. A bridge that
// publishes several messages per webhook spends much of its CPU time in those
// calls, and so does the broker reading them. coalescedConn queues what Paho
// writes and hands it to the kernel from one goroutine: a write that arrives
// while the previous one is in the kernel joins the next call. An idle
// connection writes at once, so nothing waits for a timer as it would with
// Nagle's algorithm.
type coalescedConn struct {
	net.Conn

	mu      sync.Mutex
	pending []byte
	spare   []byte
	err     error // first write error; every later Write returns it
	closed  bool
	wake    chan struct{}
	drained chan struct{} // closed when the writer goroutine ends
}

// errConnClosed is returned by Write after Close.
var errConnClosed = errors.New("mqtt: connection closed")

func newCoalescedConn(conn net.Conn) *coalescedConn {
	c := &coalescedConn{Conn: conn, wake: make(chan struct{}, 1), drained: make(chan struct{})}
	go c.run()
	return c
}

// Write queues p. Errors of earlier writes are returned here, which is how
// Paho learns that the connection is gone.
func (c *coalescedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closed:
		c.mu.Unlock()
		return 0, errConnClosed
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()

	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *coalescedConn) run() {
	defer close(c.drained)
	for range c.wake {
		for {
			c.mu.Lock()
			if len(c.pending) == 0 || c.err != nil {
				closed := c.closed
				c.mu.Unlock()
				if closed {
					return
				}
				break
			}
			batch := c.pending
			c.pending = c.spare[:0]
			c.mu.Unlock()

			_, err := c.Conn.Write(batch)

			c.mu.Lock()
			c.spare = batch
			if err != nil && c.err == nil {
				c.err = err
			}
			c.mu.Unlock()
			if err != nil {
				// A broken connection must also stop Paho's reader.
				c.Conn.Close()
			}
		}
	}
}

// Close writes what is queued, within the write deadline the caller set or
// one second, then closes the connection.
func (c *coalescedConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.Conn.Close()
	}
	c.closed = true
	c.mu.Unlock()

	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case <-c.drained:
	case <-time.After(2 * time.Second):
	}
	return c.Conn.Close()
}

// dialCoalesced opens plain TCP connections for Paho with writes coalesced.
// Other schemes keep Paho's own dialer.
func dialCoalesced(timeout time.Duration) paho.OpenConnectionFunc {
	return func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		return newCoalescedConn(conn), nil
	}
}
