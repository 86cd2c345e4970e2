package clio

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook deliveries (CLIO-API.md "Webhooks (§9)"). The receiver answers the
// X-Hook-Secret handshake only while the Registrar waits for one, verifies the
// X-Hook-Signature of every delivery (hex HMAC-SHA256 of the raw body with the
// hook's secret), acknowledges at once and applies the event to the Index from
// a bounded queue.

// Receiver defaults.
const (
	DefaultWebhookQueue   = 1024
	DefaultWebhookMaxBody = 1 << 20
	badLogEvery           = 10 * time.Second
)

// webhookHook is a registered hook and its secret, as stored.
type webhookHook struct {
	ID        int64     `json:"id"`
	Model     string    `json:"model"`
	URL       string    `json:"url"`
	Secret    string    `json:"secret"` // sealed in the database when a key is set
	ExpiresAt time.Time `json:"expires_at"`
}

// delivery is one verified webhook request waiting to be applied.
type delivery struct {
	model string
	body  []byte
}

// WebhookReceiver is the http.Handler of POST /webhooks/clio. Run applies the
// queued deliveries; its owner stops it by cancelling Run's context.
type WebhookReceiver struct {
	ix      *Index
	log     *slog.Logger
	now     func() time.Time
	maxBody int64
	queue   chan delivery

	mu         sync.Mutex
	hooks      []webhookHook
	armedUntil time.Time
	secrets    chan string // handshake secrets for the waiting Registrar
	lastBadLog time.Time
	suppressed int

	stats struct{ accepted, rejected, applied, dropped, failed atomic.Uint64 }
}

// WebhookOptions configure NewWebhookReceiver; zero values mean defaults.
type WebhookOptions struct {
	Queue   int
	MaxBody int64
	Logger  *slog.Logger
	Now     func() time.Time
}

// NewWebhookReceiver returns the receiver that keeps ix fresh, with the secrets
// of the hooks stored in ix's database.
func NewWebhookReceiver(ctx context.Context, ix *Index, o WebhookOptions) (*WebhookReceiver, error) {
	if o.Queue <= 0 {
		o.Queue = DefaultWebhookQueue
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultWebhookMaxBody
	}
	wr := &WebhookReceiver{ix: ix, log: o.Logger, now: o.Now, maxBody: o.MaxBody,
		queue: make(chan delivery, o.Queue), secrets: make(chan string, 4)}
	if wr.log == nil {
		wr.log = slog.New(slog.DiscardHandler)
	}
	if wr.now == nil {
		wr.now = time.Now
	}
	hooks, err := ix.loadHooks(ctx)
	if err != nil {
		return nil, err
	}
	wr.hooks = hooks
	return wr, nil
}

func (wr *WebhookReceiver) setHooks(hs []webhookHook) {
	wr.mu.Lock()
	wr.hooks = append([]webhookHook(nil), hs...)
	wr.mu.Unlock()
}

// arm accepts handshakes until `until` (the Registrar is creating a hook).
func (wr *WebhookReceiver) arm(until time.Time) {
	wr.mu.Lock()
	wr.armedUntil = until
	wr.mu.Unlock()
}

// ServeHTTP answers a handshake or queues a verified delivery.
func (wr *WebhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if secret := r.Header.Get("X-Hook-Secret"); secret != "" {
		wr.handshake(w, secret)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, wr.maxBody+1))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	if int64(len(body)) > wr.maxBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("X-Hook-Signature")
	hook, ok := wr.verify(body, sig)
	if !ok {
		wr.stats.rejected.Add(1)
		reason := "wrong signature"
		if sig == "" {
			reason = "no signature"
		}
		wr.badLog("clio webhook rejected: "+reason, r)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	select {
	case wr.queue <- delivery{model: hook.Model, body: body}:
		wr.stats.accepted.Add(1)
		w.WriteHeader(http.StatusOK)
	default:
		// Clio retries a failed delivery (from 2 minutes, 5 times).
		wr.stats.dropped.Add(1)
		wr.log.Warn("clio webhook queue full: delivery refused, clio will retry")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
}

// handshake echoes X-Hook-Secret while a Registrar waits for one; at any other
// time a handshake is refused (anyone can POST one: accepting it would let them
// sign deliveries).
func (wr *WebhookReceiver) handshake(w http.ResponseWriter, secret string) {
	wr.mu.Lock()
	armed := wr.now().Before(wr.armedUntil)
	if armed {
		wr.armedUntil = time.Time{} // one handshake per arming
	}
	wr.mu.Unlock()
	if !armed {
		wr.stats.rejected.Add(1)
		wr.badLog("clio webhook handshake refused: no webhook registration is waiting", nil)
		http.Error(w, "no registration pending", http.StatusUnauthorized)
		return
	}
	select {
	case wr.secrets <- secret:
	default:
	}
	w.Header().Set("X-Hook-Secret", secret)
	w.WriteHeader(http.StatusOK)
}

// verify checks sig against the secret of every registered hook (two: contacts
// and matters), in constant time per secret.
func (wr *WebhookReceiver) verify(body []byte, sig string) (webhookHook, bool) {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return webhookHook{}, false
	}
	wr.mu.Lock()
	hooks := wr.hooks
	wr.mu.Unlock()
	for _, h := range hooks {
		m := hmac.New(sha256.New, []byte(h.Secret))
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return h, true
		}
	}
	return webhookHook{}, false
}

// badLog logs a rejected request at most once per badLogEvery, with the count
// of the ones left out.
func (wr *WebhookReceiver) badLog(msg string, r *http.Request) {
	wr.mu.Lock()
	now := wr.now()
	if now.Sub(wr.lastBadLog) < badLogEvery {
		wr.suppressed++
		wr.mu.Unlock()
		return
	}
	n := wr.suppressed
	wr.lastBadLog, wr.suppressed = now, 0
	wr.mu.Unlock()
	attrs := []any{"suppressed_since_last", n}
	if r != nil {
		attrs = append(attrs, "remote", r.RemoteAddr)
	}
	wr.log.Warn(msg, attrs...)
}

// Run applies queued deliveries to the index until ctx ends.
func (wr *WebhookReceiver) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-wr.queue:
			if err := wr.apply(ctx, d); err != nil {
				wr.stats.failed.Add(1)
				wr.log.Warn("clio webhook not applied", "model", d.model, "err", err)
				continue
			}
			wr.stats.applied.Add(1)
		}
	}
}

// apply stores one delivery: created and updated records replace the stored
// ones, deleted ones are removed; a matter whose status no longer counts
// (matter_closed) leaves the index.
func (wr *WebhookReceiver) apply(ctx context.Context, d delivery) error {
	var env struct {
		Data json.RawMessage `json:"data"`
		Meta struct {
			Event string `json:"event"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(d.body, &env); err != nil {
		return errors.Join(ErrBadResponse, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch d.model {
	case "contact":
		var c Contact
		if err := json.Unmarshal(env.Data, &c); err != nil || c.ID == 0 {
			return errors.Join(ErrBadResponse, err)
		}
		if env.Meta.Event == "deleted" {
			return wr.ix.remove(wctx, []int64{c.ID}, nil)
		}
		return wr.ix.apply(wctx, []Contact{c}, nil, nil)
	case "matter":
		var m Matter
		if err := json.Unmarshal(env.Data, &m); err != nil || m.ID == 0 {
			return errors.Join(ErrBadResponse, err)
		}
		if env.Meta.Event == "deleted" {
			return wr.ix.remove(wctx, nil, []int64{m.ID})
		}
		return wr.ix.apply(wctx, nil, []Matter{m}, nil)
	}
	return nil
}

// WebhookStats are the receiver's counters.
type WebhookStats struct {
	Accepted, Rejected, Applied, Dropped, Failed uint64
}

// Stats returns the receiver's counters.
func (wr *WebhookReceiver) Stats() WebhookStats {
	return WebhookStats{Accepted: wr.stats.accepted.Load(), Rejected: wr.stats.rejected.Load(),
		Applied: wr.stats.applied.Load(), Dropped: wr.stats.dropped.Load(), Failed: wr.stats.failed.Load()}
}

// Pending is the number of deliveries queued and not yet applied.
func (wr *WebhookReceiver) Pending() int { return len(wr.queue) }
