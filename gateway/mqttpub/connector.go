package mqttpub

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Connector gives another sterigate MQTT client (the archive) the
// publisher's connection settings: credentials, TLS, keepalive and
// timeouts, no paho auto-reconnect and no connect retry (their traps are in
// the package comment), so there is one place that knows how sterigate
// connects to a broker.
type Connector struct{ p *Publisher }

// NewConnector checks opts as New does and resolves its password and TLS
// files. Gateway and Site name the client in opts' checks only.
func NewConnector(opts Options) (*Connector, error) {
	p, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	return &Connector{p: p}, nil
}

// Brokers are the broker URLs, in failover order.
func (c *Connector) Brokers() []string { return c.p.opts.Brokers }

// ClientOptions are the settings of one connection to broker as clientID.
// They ask for a clean session; a caller that keeps one sets it.
func (c *Connector) ClientOptions(broker, clientID string) *paho.ClientOptions {
	return c.p.clientOptions(broker, clientID)
}

// Backoff is the reconnect delay after failures consecutive failures.
func (c *Connector) Backoff(failures int) time.Duration { return c.p.backoff(failures) }

// Wait waits for tok until timeout or ctx ends; paho's own Wait can hang
// forever.
func Wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	return waitToken(ctx, tok, timeout)
}
