// Package notify delivers Sluice's HTTP Notify webhooks.
//
// Each event is an HTTP POST of a JSON body (built by the caller) to a
// configured URL, as lalserver does (lal-compat.md §3.1). Unlike lalserver,
// which posts every event serially from one goroutine and drops it on any
// error, a Dispatcher:
//
//   - delivers the events of one ordering key (Event.Stream) strictly in
//     order, and different keys in parallel, with at most MaxConcurrent
//     requests in flight;
//   - retries connection errors, timeouts and 5xx responses with capped,
//     jittered exponential backoff for as long as the event is queued;
//   - bounds the queue (Config.QueueSize), coalescing pending on_update
//     events and then dropping the oldest pending event, always counted;
//   - identifies (X-Sluice-Event, X-Sluice-Event-Id), timestamps and
//     optionally signs (X-Sluice-Signature) every request;
//   - reuses connections (response bodies are drained and closed).
//
// Enqueue never blocks on I/O, so the media path can call it directly.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults applied by NewDispatcher to zero (or negative) Config fields.
const (
	// DefaultQueueSize is the default Config.QueueSize.
	DefaultQueueSize = 10000
	// DefaultTimeout is the default Config.Timeout.
	DefaultTimeout = 3 * time.Second
	// DefaultMinBackoff is the default Config.MinBackoff.
	DefaultMinBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff is the default Config.MaxBackoff.
	DefaultMaxBackoff = 10 * time.Second
)

// MaxConcurrent bounds the HTTP requests a Dispatcher has in flight at once,
// across all ordering keys. A key waiting for a slot holds no lock, and a key
// sleeping between retries holds no slot.
const MaxConcurrent = 256

// Request header names and values set on every delivery attempt.
const (
	// HeaderEvent carries Event.Name.
	HeaderEvent = "X-Sluice-Event"
	// HeaderEventID carries Event.ID; it is the same on every retry, so a
	// receiver can deduplicate (delivery is at-least-once).
	HeaderEventID = "X-Sluice-Event-Id"
	// HeaderTimestamp carries the Unix time in seconds of this attempt.
	HeaderTimestamp = "X-Sluice-Timestamp"
	// HeaderSignature carries Sign(secret, timestamp, body) when a secret is configured.
	HeaderSignature = "X-Sluice-Signature"
	// UserAgent is the User-Agent of every request.
	UserAgent = "sluice-notify"
)

// OnUpdate is the event name whose pending events are coalesced: enqueueing
// a new one replaces a pending one of the same Stream and URL.
const OnUpdate = "on_update"

const (
	maxDrain         = 64 << 10         // response bytes read before closing the body
	subscriberBuffer = 256              // events buffered per subscriber
	logEvery         = 10 * time.Second // rate limit of repeated warnings
)

// Event is one webhook to deliver.
type Event struct {
	Name   string // "on_pub_start", "on_update", ... (sent as X-Sluice-Event)
	URL    string // where to POST; "" = only published to subscribers, never posted
	Stream string // ordering key: events with the same Stream are delivered in order; "" = server-level events (their own key)
	Body   []byte // the JSON body, sent unchanged; must not be modified after Enqueue
	// set by the Dispatcher on Enqueue:
	ID   string    // unique id (16 random hex chars + "-" + counter), the same on every retry
	Time time.Time // when it was enqueued
}

// Config configures a Dispatcher. Zero fields take the defaults.
type Config struct {
	QueueSize  int           // bound on events pending across all streams, in flight included (default 10000)
	Timeout    time.Duration // per HTTP request, body drain included (default 3 s)
	Secret     string        // non-empty: sign every request (X-Sluice-Signature)
	MinBackoff time.Duration // first retry delay (default 200 ms)
	MaxBackoff time.Duration // cap (default 10 s)
	// Client is optional. The default client reuses connections
	// (MaxIdleConnsPerHost = MaxConcurrent) and does not follow redirects,
	// so a 3xx counts as Failed instead of being re-sent as a GET.
	Client *http.Client
	Logger *zap.Logger // nil = no logging
}

// Stats reports delivery counters.
type Stats struct {
	QueueDepth int                   `json:"queue_depth"` // events pending (waiting, backing off or in flight)
	Delivered  uint64                `json:"delivered"`   // 2xx received
	Retried    uint64                `json:"retried"`     // retry attempts made
	Failed     uint64                `json:"failed"`      // given up (4xx or other non-2xx non-5xx, or an unusable URL)
	Dropped    uint64                `json:"dropped"`     // lost to the queue bound (or Close)
	Coalesced  uint64                `json:"coalesced"`   // on_update events replaced by a newer one
	PerEvent   map[string]EventStats `json:"per_event"`   // by Event.Name
}

// EventStats holds the Stats counters of one event name.
type EventStats struct {
	QueueDepth int    `json:"queue_depth"`
	Delivered  uint64 `json:"delivered"`
	Retried    uint64 `json:"retried"`
	Failed     uint64 `json:"failed"`
	Dropped    uint64 `json:"dropped"`
	Coalesced  uint64 `json:"coalesced"`
}

// item is one pending event. It is linked into the global list (enqueue
// order, for dropping the oldest) and into its key's list (delivery order).
type item struct {
	ev        Event
	key       *keyQueue
	g, k      links
	inFlight  bool      // an HTTP attempt is running; cannot be dropped or coalesced
	attempts  int       // failed attempts so far
	notBefore time.Time // next attempt not before (backoff)
}

type links struct{ prev, next *item }

// list is an intrusive doubly linked list of items over either their g or k links.
type list struct {
	head, tail *item
	global     bool
}

func (l *list) links(it *item) *links {
	if l.global {
		return &it.g
	}
	return &it.k
}

func (l *list) pushBack(it *item) {
	n := l.links(it)
	n.prev, n.next = l.tail, nil
	if l.tail != nil {
		l.links(l.tail).next = it
	} else {
		l.head = it
	}
	l.tail = it
}

func (l *list) remove(it *item) {
	n := l.links(it)
	if n.prev != nil {
		l.links(n.prev).next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		l.links(n.next).prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// keyQueue is the pending events of one ordering key. It exists, with one
// worker goroutine, only while the key has pending events.
type keyQueue struct {
	name    string
	q       list
	updates map[string]*item // pending on_update by URL
	running bool             // a worker goroutine serves this key
	wake    chan struct{}    // cap 1: the head was removed by someone else
}

// subscription is one Subscribe channel.
type subscription struct {
	ch      chan Event
	dropped uint64
}

// Dispatcher delivers Events. Create it with NewDispatcher and stop it with Close.
type Dispatcher struct {
	cfg       Config
	client    *http.Client
	ownClient bool
	log       *zap.Logger
	idPrefix  string

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	dropSig  chan struct{} // cap 1: new queue-bound drops to log
	retryLog limiter
	failLog  limiter

	mu            sync.Mutex
	closed        bool
	keys          map[string]*keyQueue
	all           list // every pending item, oldest first
	pending       int
	seq           uint64
	idle          chan struct{} // closed while pending == 0
	idleClosed    bool
	st            EventStats // totals (QueueDepth unused)
	per           map[string]*EventStats
	unloggedDrops uint64
	subs          map[*subscription]struct{}
	subDropped    uint64
	flushing      int // Flush calls in progress: retries use MinBackoff
}

// NewDispatcher returns a running Dispatcher. It starts one background
// goroutine; delivery goroutines come and go with pending events.
func NewDispatcher(cfg Config) *Dispatcher {
	cfg = cfg.withDefaults()
	d := &Dispatcher{
		cfg:      cfg,
		client:   cfg.Client,
		log:      cfg.Logger,
		idPrefix: randomHex(8),
		sem:      make(chan struct{}, MaxConcurrent),
		dropSig:  make(chan struct{}, 1),
		retryLog: limiter{every: logEvery},
		failLog:  limiter{every: logEvery},
		keys:     make(map[string]*keyQueue),
		all:      list{global: true},
		per:      make(map[string]*EventStats),
		subs:     make(map[*subscription]struct{}),
		idle:     make(chan struct{}),
	}
	close(d.idle)
	d.idleClosed = true
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.client == nil {
		d.client = defaultClient()
		d.ownClient = true
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.dropLogger()
	return d
}

func defaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * MaxConcurrent
	tr.MaxIdleConnsPerHost = MaxConcurrent
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// Wants reports whether an event for url would go anywhere: url is set (a
// webhook) or someone is subscribed. Callers skip building the bodies of
// events nobody wants (on_update's lists every session).
func (d *Dispatcher) Wants(url string) bool {
	if url != "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs) > 0
}

// Enqueue queues ev and returns at once; it never blocks on I/O (it only
// takes a short internal lock), so the media path may call it. It sets ev.ID
// and ev.Time, publishes ev to subscribers, and, unless ev.URL is "", queues
// it for delivery. After Close the event is counted as Dropped.
func (d *Dispatcher) Enqueue(ev Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	ev.ID = d.idPrefix + "-" + strconv.FormatUint(d.seq, 10)
	ev.Time = time.Now()
	d.publish(ev)
	if d.closed {
		d.st.Dropped++
		d.stats(ev.Name).Dropped++
		return
	}
	if ev.URL == "" {
		return
	}
	k := d.keys[ev.Stream]
	if k == nil {
		k = &keyQueue{name: ev.Stream, wake: make(chan struct{}, 1)}
		d.keys[ev.Stream] = k
	}
	it := &item{ev: ev, key: k}
	d.add(it)
	if ev.Name == OnUpdate {
		if old := k.updates[ev.URL]; old != nil && !old.inFlight {
			d.removeWaiting(old)
			d.st.Coalesced++
			d.stats(OnUpdate).Coalesced++
		}
		if k.updates == nil {
			k.updates = make(map[string]*item)
		}
		k.updates[ev.URL] = it
	}
	for d.pending > d.cfg.QueueSize {
		victim := d.all.head
		for victim != nil && victim.inFlight {
			victim = victim.g.next
		}
		if victim == nil {
			break
		}
		d.removeWaiting(victim)
		d.st.Dropped++
		d.stats(victim.ev.Name).Dropped++
		d.unloggedDrops++
		select {
		case d.dropSig <- struct{}{}:
		default:
		}
	}
	switch {
	case k.running:
	case k.q.head == nil: // the new event itself was dropped
		delete(d.keys, k.name)
	default:
		k.running = true
		d.wg.Add(1)
		go d.run(k)
	}
}

// publish sends ev to every subscriber without blocking. d.mu is held.
func (d *Dispatcher) publish(ev Event) {
	for s := range d.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped++
			d.subDropped++
		}
	}
}

// stats returns the counters of one event name. d.mu is held.
func (d *Dispatcher) stats(name string) *EventStats {
	s := d.per[name]
	if s == nil {
		s = &EventStats{}
		d.per[name] = s
	}
	return s
}

// add queues it. d.mu is held.
func (d *Dispatcher) add(it *item) {
	d.all.pushBack(it)
	it.key.q.pushBack(it)
	d.pending++
	d.stats(it.ev.Name).QueueDepth++
	if d.idleClosed {
		d.idle = make(chan struct{})
		d.idleClosed = false
	}
}

// remove unqueues it. d.mu is held.
func (d *Dispatcher) remove(it *item) {
	k := it.key
	d.all.remove(it)
	k.q.remove(it)
	if it.ev.Name == OnUpdate && k.updates[it.ev.URL] == it {
		delete(k.updates, it.ev.URL)
	}
	d.pending--
	d.stats(it.ev.Name).QueueDepth--
	if d.pending == 0 && !d.idleClosed {
		close(d.idle)
		d.idleClosed = true
	}
}

// removeWaiting unqueues an item that is not in flight on behalf of someone
// other than its worker, waking the worker if it was sleeping on it. d.mu is held.
func (d *Dispatcher) removeWaiting(it *item) {
	wasHead := it.key.q.head == it
	d.remove(it)
	if wasHead {
		select {
		case it.key.wake <- struct{}{}:
		default:
		}
	}
}

type outcome int

const (
	delivered outcome = iota
	permanent         // not retried: Failed
	transient         // retried
)

// run delivers the events of key k in order until none is left.
func (d *Dispatcher) run(k *keyQueue) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		it := k.q.head
		if d.closed || it == nil {
			k.running = false
			if it == nil && d.keys[k.name] == k {
				delete(d.keys, k.name)
			}
			d.mu.Unlock()
			return
		}
		wait := time.Until(it.notBefore)
		d.mu.Unlock()

		if wait > 0 { // backing off: holds no semaphore slot
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-k.wake:
			case <-d.ctx.Done():
			}
			t.Stop()
			continue
		}
		select {
		case d.sem <- struct{}{}:
		case <-d.ctx.Done():
			continue
		}

		d.mu.Lock()
		if d.closed || k.q.head != it { // dropped or coalesced meanwhile
			d.mu.Unlock()
			<-d.sem
			continue
		}
		it.inFlight = true
		if it.attempts > 0 {
			d.st.Retried++
			d.stats(it.ev.Name).Retried++
		}
		ev := it.ev
		timeout, secret := d.cfg.Timeout, d.cfg.Secret
		d.mu.Unlock()

		res, status, err := d.attempt(&ev, timeout, secret)
		<-d.sem

		d.mu.Lock()
		it.inFlight = false
		var backoff time.Duration
		switch {
		case res == delivered:
			d.remove(it)
			d.st.Delivered++
			d.stats(ev.Name).Delivered++
		case res == permanent:
			d.remove(it)
			d.st.Failed++
			d.stats(ev.Name).Failed++
		case d.closed: // canceled by Close
			d.remove(it)
			d.st.Dropped++
			d.stats(ev.Name).Dropped++
		default:
			it.attempts++
			backoff = backoffDelay(it.attempts, d.cfg.MinBackoff, d.cfg.MaxBackoff)
			if d.flushing > 0 {
				backoff = d.cfg.MinBackoff
			}
			it.notBefore = time.Now().Add(backoff)
		}
		attempts := it.attempts
		closed := d.closed
		d.mu.Unlock()

		switch {
		case res == permanent:
			if ok, n := d.failLog.allow(); ok {
				d.log.Warn("notify: event not delivered, giving up",
					zap.String("event", ev.Name), zap.String("id", ev.ID), zap.String("url", ev.URL),
					zap.Int("status", status), zap.Error(err), zap.Int("suppressed", n))
			}
		case res == transient && !closed:
			if ok, n := d.retryLog.allow(); ok {
				d.log.Warn("notify: delivery failed, will retry",
					zap.String("event", ev.Name), zap.String("id", ev.ID), zap.String("url", ev.URL),
					zap.Int("status", status), zap.Error(err), zap.Int("attempt", attempts),
					zap.Duration("backoff", backoff), zap.Int("suppressed", n))
			} else {
				d.log.Debug("notify: delivery failed, will retry",
					zap.String("event", ev.Name), zap.String("id", ev.ID), zap.Int("status", status),
					zap.Error(err), zap.Int("attempt", attempts))
			}
		}
	}
}

// attempt makes one POST of ev with the settings current when it started.
// status is 0 when no response was received.
func (d *Dispatcher) attempt(ev *Event, timeout time.Duration, secret string) (res outcome, status int, err error) {
	u, err := url.Parse(ev.URL)
	if err != nil {
		return permanent, 0, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return permanent, 0, fmt.Errorf("notify: unsupported URL scheme %q", u.Scheme)
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ev.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return permanent, 0, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	h.Set(HeaderEvent, ev.Name)
	h.Set(HeaderEventID, ev.ID)
	h.Set(HeaderTimestamp, ts)
	if secret != "" {
		h.Set(HeaderSignature, Sign(secret, ts, ev.Body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return transient, 0, err
	}
	// Drain (bounded) and close so the connection goes back to the pool.
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return delivered, c, nil
	case c >= 500:
		return transient, c, fmt.Errorf("notify: HTTP %d", c)
	default:
		return permanent, c, fmt.Errorf("notify: HTTP %d", c)
	}
}

// backoffDelay is the wait before retry n (n >= 1): a random duration in
// [b/2, b] where b = min(minB·2^(n-1), maxB).
func backoffDelay(n int, minB, maxB time.Duration) time.Duration {
	b := minB
	for i := 1; i < n && b < maxB; i++ {
		b *= 2
	}
	if b > maxB || b <= 0 {
		b = maxB
	}
	half := b / 2
	return half + mrand.N(b-half+1)
}

// dropLogger logs queue-bound drops, at most once per logEvery, so that
// Enqueue itself never writes a log line.
func (d *Dispatcher) dropLogger() {
	defer d.wg.Done()
	for {
		select {
		case <-d.dropSig:
		case <-d.ctx.Done():
			return
		}
		d.mu.Lock()
		n, total, depth := d.unloggedDrops, d.st.Dropped, d.pending
		d.unloggedDrops = 0
		d.mu.Unlock()
		if n > 0 {
			d.log.Warn("notify: queue full, dropped the oldest pending events",
				zap.Uint64("dropped", n), zap.Uint64("dropped_total", total),
				zap.Int("queue_depth", depth), zap.Int("queue_size", d.cfg.QueueSize))
		}
		t := time.NewTimer(logEvery)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
			return
		}
	}
}

// Flush waits until every queued event has been delivered or given up (or
// dropped), or ctx ends (then it returns ctx.Err()). Events enqueued while
// Flush waits are waited for too.
func (d *Dispatcher) Flush(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	// Retry at once, and then at the shortest backoff, so that a receiver
	// that is back gets the queue before the deadline.
	d.flushing++
	now := time.Now()
	for _, k := range d.keys {
		if it := k.q.head; it != nil && it.notBefore.After(now) {
			it.notBefore = now
			select {
			case k.wake <- struct{}{}:
			default:
			}
		}
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.flushing--
		d.mu.Unlock()
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops delivery: pending events are abandoned and counted as Dropped,
// requests in flight are canceled (counted as Dropped unless they already
// succeeded), subscriber channels are closed, and Close waits for every
// goroutine of the Dispatcher to exit. It is safe to call more than once.
// Call Flush first to deliver what is queued.
func (d *Dispatcher) Close() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		var abandoned uint64
		for it := d.all.head; it != nil; {
			next := it.g.next
			if !it.inFlight {
				d.remove(it)
				d.st.Dropped++
				d.stats(it.ev.Name).Dropped++
				abandoned++
			}
			it = next
		}
		for s := range d.subs {
			close(s.ch)
			delete(d.subs, s)
		}
		unlogged := d.unloggedDrops
		d.unloggedDrops = 0
		d.mu.Unlock()

		d.cancel()
		d.wg.Wait()
		if d.ownClient {
			d.client.CloseIdleConnections()
		}
		if abandoned > 0 || unlogged > 0 {
			d.log.Warn("notify: closed with undelivered events",
				zap.Uint64("abandoned", abandoned), zap.Uint64("dropped_unlogged", unlogged))
		}
	})
}

// Stats reports delivery counters.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Stats{
		QueueDepth: d.pending,
		Delivered:  d.st.Delivered,
		Retried:    d.st.Retried,
		Failed:     d.st.Failed,
		Dropped:    d.st.Dropped,
		Coalesced:  d.st.Coalesced,
		PerEvent:   make(map[string]EventStats, len(d.per)),
	}
	for name, es := range d.per {
		s.PerEvent[name] = *es
	}
	return s
}

// Subscribe returns a channel of every event at the moment it is enqueued
// (with ID and Time set, before any coalescing or dropping), e.g. for a
// Server-Sent-Events endpoint, and a cancel func that unsubscribes and closes
// the channel. The channel buffers 256 events; when it is full, events are
// dropped for this subscriber only (see SubscriberDropped) and Enqueue never
// blocks. Close closes every subscriber channel. Event.Body is shared and must
// not be modified.
func (d *Dispatcher) Subscribe() (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, subscriberBuffer)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	d.subs[s] = struct{}{}
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			d.mu.Lock()
			_, ok := d.subs[s]
			if ok {
				delete(d.subs, s)
				close(s.ch)
			}
			n := s.dropped
			d.mu.Unlock()
			if n > 0 {
				d.log.Info("notify: subscriber missed events (too slow)", zap.Uint64("dropped", n))
			}
		})
	}
}

// SubscriberDropped reports how many events were not sent to subscribers
// because their channel was full, summed over all subscriptions.
func (d *Dispatcher) SubscriberDropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.subDropped
}

// limiter rate-limits repeated log lines.
type limiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many lines were suppressed since the last one.
func (l *limiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
