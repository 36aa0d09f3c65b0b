package harness

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// mosquittoImage is the Docker image used when no local mosquitto binary exists.
const mosquittoImage = "eclipse-mosquitto:2"

// containerTimeout bounds pulling, creating, starting and stopping the container.
const containerTimeout = 2 * time.Minute

// containerBroker runs Mosquitto in Docker through testcontainers-go. The container's
// port 1883 is bound to the broker's fixed host port, so a restarted container keeps
// the address.
//
// NOTE: this path has only been compiled, never run: the machines this project was
// built on have no Docker engine.
type containerBroker struct {
	broker *Broker
	ctr    *testcontainers.DockerContainer
	up     bool
}

func (c *containerBroker) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()

	if c.ctr != nil {
		if err := c.ctr.Start(ctx); err != nil {
			return fmt.Errorf("cannot restart the %s container: %w", mosquittoImage, err)
		}
		c.up = true
		return nil
	}

	const confDir = "/mosquitto/config"
	conf, err := c.broker.writeConfig(1883, "0.0.0.0", confDir, false)
	if err != nil {
		return err
	}
	files := []testcontainers.ContainerFile{{HostFilePath: conf, ContainerFilePath: confDir + "/mosquitto.conf", FileMode: 0o644}}
	if c.broker.opts.Username != "" {
		files = append(files, testcontainers.ContainerFile{HostFilePath: filepath.Join(c.broker.dir, "passwd"), ContainerFilePath: confDir + "/passwd", FileMode: 0o644})
	}

	port := network.MustParsePort("1883/tcp")
	binding := network.PortBinding{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(c.broker.port)}

	ctr, err := testcontainers.Run(ctx, mosquittoImage,
		testcontainers.WithExposedPorts("1883/tcp"),
		testcontainers.WithFiles(files...),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port: {binding}}
		}),
		testcontainers.WithWaitStrategy(wait.ForListeningPort("1883/tcp")),
	)
	if ctr != nil {
		c.ctr = ctr
		c.broker.tb.Cleanup(func() {
			c.up = false
			testcontainers.CleanupContainer(c.broker.tb, ctr)
		})
	}
	if err != nil {
		return fmt.Errorf("no mosquitto binary in PATH or /usr/sbin, and cannot start the %s container with testcontainers: %w", mosquittoImage, err)
	}
	c.up = true
	return nil
}

// stop stops the container. A kill uses a zero grace period, so Docker sends SIGKILL
// right after SIGTERM.
func (c *containerBroker) stop(kill bool) error {
	if !c.up {
		return nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()

	grace := stopTimeout
	if kill {
		grace = 0
	}
	if err := c.ctr.Stop(ctx, &grace); err != nil {
		return fmt.Errorf("cannot stop the %s container: %w", mosquittoImage, err)
	}
	c.up = false
	return nil
}

func (c *containerBroker) running() bool {
	return c.up
}
