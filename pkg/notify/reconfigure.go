package notify

import "time"

// withDefaults returns c with the defaults in its zero (or negative) fields.
func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	return c
}

// Reconfigure changes the delivery settings of a running Dispatcher:
// Timeout, Secret, MinBackoff and MaxBackoff (zero fields take the
// defaults). Nothing queued is lost: an attempt in flight finishes with the
// settings it started with, and every later attempt, retries of events
// queued before the call included, uses the new ones. An event keeps the URL
// it was enqueued with.
//
// QueueSize, Client and Logger are not changed: the queue bound is fixed for
// the Dispatcher's life, since lowering it would have to drop events already
// queued.
func (d *Dispatcher) Reconfigure(cfg Config) {
	cfg = cfg.withDefaults()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Timeout = cfg.Timeout
	d.cfg.Secret = cfg.Secret
	d.cfg.MinBackoff = cfg.MinBackoff
	d.cfg.MaxBackoff = cfg.MaxBackoff
	// A key sleeping out a backoff longer than the new cap retries now.
	now := time.Now()
	for _, k := range d.keys {
		if it := k.q.head; it != nil && it.notBefore.Sub(now) > cfg.MaxBackoff {
			it.notBefore = now
			select {
			case k.wake <- struct{}{}:
			default:
			}
		}
	}
}
