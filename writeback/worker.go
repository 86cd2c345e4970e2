package writeback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/matterline/matterline/clio"
)

// PropertyName is the external property that carries matterline's call id on a
// communication, so a retry finds the one it posted before.
const PropertyName = "matterline_call_id"

// Options configure NewWorker; zero values mean defaults.
type Options struct {
	Outbox *Outbox
	Client *clio.Client
	// Budget is the rate budget shared with lookups (nil: no pacing beyond
	// Retry-After of write-back's own 429s).
	Budget *clio.Budget
	Logger *slog.Logger
	Now    func() time.Time
	// Count is called for every item that changes state: queued, done, failed
	// (for the metric matterline_clio_writeback_total{kind,state}).
	Count func(kind Kind, state string)
	// BaseBackoff is the first retry delay (default 10 s), doubled per attempt
	// up to MaxBackoff (default 30 min); MaxAttempts (default 12) failed sends
	// fail the item.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	MaxAttempts int
	// SendTimeout bounds one item's requests (default 2 min: a document upload).
	SendTimeout time.Duration
	// Idle is the longest sleep without a due item or a Kick (default 30 s).
	Idle time.Duration
}

// Worker sends outbox items in the background, one at a time. Start it once;
// Close stops it.
type Worker struct {
	o    Options
	log  *slog.Logger
	now  func() time.Time
	kick chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	started  sync.Once

	mu       sync.Mutex
	reported map[string]bool // resources whose 403 was reported
}

// NewWorker returns a worker over o.Outbox and o.Client.
func NewWorker(o Options) *Worker {
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 2 * time.Minute
	}
	if o.Idle <= 0 {
		o.Idle = 30 * time.Second
	}
	w := &Worker{o: o, log: o.Logger, now: o.Now, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), reported: map[string]bool{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	return w
}

// Enqueue stores a call's items and wakes the worker. It never calls Clio.
func (w *Worker) Enqueue(ctx context.Context, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	added, err := w.o.Outbox.Enqueue(ctx, items)
	if err != nil {
		return err
	}
	for _, it := range added {
		w.count(it.Kind, "queued")
	}
	w.Kick()
	return nil
}

// Kick wakes the worker to look for due items now.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Start runs the worker's goroutine (once); pending items of an earlier run
// resume.
func (w *Worker) Start() {
	w.started.Do(func() { go w.run() })
}

// Close stops the worker and waits for it (an item being sent is abandoned and
// stays pending). It is idempotent.
func (w *Worker) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	w.started.Do(func() { close(w.done) }) // never started: nothing to wait for
	<-w.done
	return nil
}

// Done is closed when the worker has stopped.
func (w *Worker) Done() <-chan struct{} { return w.done }

func (w *Worker) count(k Kind, state string) {
	if w.o.Count != nil {
		w.o.Count(k, state)
	}
}

func (w *Worker) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		wait := w.step(ctx)
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// step sends at most one item and returns how long to sleep before the next
// step (0: go on at once).
func (w *Worker) step(ctx context.Context) time.Duration {
	if w.o.Budget != nil {
		if ok, wait := w.o.Budget.Allow(); !ok {
			return min(wait, w.o.Idle)
		}
	}
	now := w.now()
	it, ok, err := w.o.Outbox.next(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("clio write-back: outbox read failed", "err", err)
		}
		return w.o.Idle
	}
	if !ok {
		due, err := w.o.Outbox.nextDue(ctx)
		if err != nil || due.IsZero() {
			return w.o.Idle
		}
		return min(max(due.Sub(now), 10*time.Millisecond), w.o.Idle)
	}
	sctx, cancel := context.WithTimeout(ctx, w.o.SendTimeout)
	clioID, serr := w.send(sctx, &it)
	cancel()
	if ctx.Err() != nil {
		return 0 // stopping: the item stays pending and resumes on the next start
	}
	w.settle(ctx, it, clioID, serr)
	return 0
}

// settle records the outcome of one send.
func (w *Worker) settle(ctx context.Context, it Item, clioID int64, err error) {
	now := w.now()
	var rl *clio.RateLimitError
	switch {
	case err == nil:
		it.State, it.ClioID, it.Error = StateDone, clioID, ""
		it.Attempts++
		w.log.Info("clio write-back done", "item", it.ID, "call_id", it.CallID, "kind", it.Kind.String(), "clio_id", clioID)
	case errors.As(err, &rl):
		// Not a failed attempt: Clio asked to wait. Everyone waits it out.
		wait := max(rl.RetryAfter, time.Second)
		if w.o.Budget != nil {
			w.o.Budget.NoteRetryAfter(now.Add(wait))
		}
		it.NextAt, it.Error = now.Add(wait), err.Error()
		w.log.Info("clio write-back rate limited", "item", it.ID, "kind", it.Kind.String(), "retry_after", wait)
	default:
		it.Attempts++
		it.Error = truncate(err.Error(), 500)
		if reason, permanent := w.permanent(it.Kind, err); permanent {
			it.State, it.Error = StateFailed, reason
		} else if it.Attempts >= w.o.MaxAttempts {
			it.State = StateFailed
			it.Error = fmt.Sprintf("gave up after %d attempts: %s", it.Attempts, it.Error)
			w.log.Error("clio write-back failed", "item", it.ID, "call_id", it.CallID, "kind", it.Kind.String(), "err", it.Error)
		} else {
			it.NextAt = now.Add(w.backoff(it.Attempts))
			w.log.Warn("clio write-back will retry", "item", it.ID, "kind", it.Kind.String(),
				"attempts", it.Attempts, "next", it.NextAt, "err", err)
		}
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if uerr := w.o.Outbox.update(uctx, it); uerr != nil {
		w.log.Error("clio write-back: outbox not updated", "item", it.ID, "err", uerr)
		return
	}
	switch it.State {
	case StateDone:
		w.count(it.Kind, "done")
	case StateFailed:
		w.count(it.Kind, "failed")
	}
}

// permanent says whether err cannot be cured by retrying, and then the reason
// stored on the item. A 403 names the permission and is logged once per
// resource.
func (w *Worker) permanent(k Kind, err error) (string, bool) {
	var ae *clio.APIError
	var fe *fileError
	switch {
	case errors.As(err, &fe):
		return err.Error(), true
	case !errors.As(err, &ae):
		return "", false
	case ae.Status == 403:
		perm := clio.Permission(k.Resource())
		reason := fmt.Sprintf("Clio app lacks %s read/write: grant the %s permission to the app in Clio's developer portal and reconnect, or give the connected user access to the matter (%s)",
			perm, perm, ae.Error())
		w.mu.Lock()
		first := !w.reported[k.Resource()]
		w.reported[k.Resource()] = true
		w.mu.Unlock()
		if first {
			w.log.Error("clio write-back forbidden: Clio app lacks "+perm+" read/write", "kind", k.String(), "err", ae.Error())
		}
		return reason, true
	case ae.Type == "UploadTimeoutError", ae.Status == 401, ae.Status == 408, ae.Status == 409, ae.Status >= 500:
		return "", false
	case ae.Status >= 400:
		return "rejected by Clio: " + ae.Error(), true
	}
	return "", false
}

// backoff is BaseBackoff doubled per earlier attempt, capped, with up to 20%
// jitter so items do not retry in lockstep.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.o.BaseBackoff
	for i := 1; i < attempts && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxBackoff)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
