package clio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook lifetimes (CLIO-API.md: 3 days by default, 31 at most).
const (
	webhookLifetime    = 30 * 24 * time.Hour
	webhookRenewBefore = 7 * 24 * time.Hour
	handshakeWait      = 15 * time.Second
)

// webhookModels are the hooks the index registers and their events.
var webhookModels = []struct {
	model  string
	events []string
	fields string
}{
	{"contact", []string{"created", "updated", "deleted"}, IndexContactFields},
	{"matter", []string{"created", "updated", "deleted", "matter_opened", "matter_pended", "matter_closed"}, IndexMatterFields},
}

// Webhook is a Clio webhook as the API returns it.
type Webhook struct {
	ID        int64     `json:"id"`
	URL       string    `json:"url"`
	Model     string    `json:"model"`
	Events    []string  `json:"events"`
	Fields    string    `json:"fields"`
	Status    string    `json:"status"`
	ExpiresAt Timestamp `json:"expires_at"`
}

// WebhooksService is /api/v4/webhooks.json.
type WebhooksService struct{ c *Client }

// Webhooks returns the webhooks service of c.
func (c *Client) Webhooks() *WebhooksService { return &WebhooksService{c} }

// WebhookInput is the body of a create or an update.
type WebhookInput struct {
	URL       string    `json:"url,omitempty"`
	Model     string    `json:"model,omitempty"`
	Events    []string  `json:"events,omitempty"`
	Fields    string    `json:"fields,omitempty"`
	ExpiresAt time.Time `json:"-"`
}

func (in WebhookInput) body() ([]byte, error) {
	type alias WebhookInput
	v := struct {
		alias
		ExpiresAt string `json:"expires_at,omitempty"`
	}{alias: alias(in)}
	if !in.ExpiresAt.IsZero() {
		v.ExpiresAt = in.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return json.Marshal(map[string]any{"data": v})
}

// Create registers a webhook: POST webhooks.json. Clio then performs the
// X-Hook-Secret handshake against the URL.
func (s *WebhooksService) Create(ctx context.Context, in WebhookInput) (*Webhook, error) {
	body, err := in.body()
	if err != nil {
		return nil, err
	}
	var out itemBody[Webhook]
	if _, err := s.c.do(ctx, http.MethodPost, s.c.apiURL("webhooks.json", url.Values{"fields": {"id,url,model,events,fields,status,expires_at"}}), body, &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// Update changes a webhook: PATCH webhooks/{id}.json (renewal: a new ExpiresAt).
func (s *WebhooksService) Update(ctx context.Context, id int64, in WebhookInput) (*Webhook, error) {
	body, err := in.body()
	if err != nil {
		return nil, err
	}
	var out itemBody[Webhook]
	if _, err := s.c.do(ctx, http.MethodPatch, s.c.apiURL("webhooks/"+strconv.FormatInt(id, 10)+".json", url.Values{"fields": {"id,url,model,events,fields,status,expires_at"}}), body, &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// Delete removes a webhook: DELETE webhooks/{id}.json.
func (s *WebhooksService) Delete(ctx context.Context, id int64) error {
	_, err := s.c.do(ctx, http.MethodDelete, s.c.apiURL("webhooks/"+strconv.FormatInt(id, 10)+".json", nil), nil, nil)
	return err
}

// CheckWebhookURL accepts an https URL, or an http one whose host is loopback
// (tests and the demo's fake Clio).
func CheckWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("clio: webhook url %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("clio: webhook url %q: http:// only for loopback hosts; Clio delivers to https only", raw)
	}
	return fmt.Errorf("clio: webhook url %q: want https://", raw)
}

// EnsureWebhooks registers the contact and matter hooks at u (creating missing
// ones, answering their handshake through wr, replacing hooks registered at
// another URL) and renews those expiring within a week. Call it at start and
// then periodically (hourly is plenty).
func (ix *Index) EnsureWebhooks(ctx context.Context, wr *WebhookReceiver, u string) error {
	if err := CheckWebhookURL(u); err != nil {
		return err
	}
	if ix.o.Client == nil {
		return ErrNotConnected
	}
	api := ix.o.Client.Webhooks()
	stored, err := ix.loadHooks(ctx)
	if err != nil {
		return err
	}
	byModel := map[string]webhookHook{}
	for _, h := range stored {
		byModel[h.Model] = h
	}
	var out []webhookHook
	var errs []error
	for _, wm := range webhookModels {
		h, ok := byModel[wm.model]
		now := ix.now()
		if ok && h.URL != u {
			if err := api.Delete(ctx, h.ID); err != nil && !isNotFound(err) {
				ix.log.Warn("clio webhook: old hook not deleted", "id", h.ID, "err", err)
			}
			ok = false
		}
		if ok && now.Before(h.ExpiresAt) {
			if h.ExpiresAt.Sub(now) < webhookRenewBefore {
				exp := now.Add(webhookLifetime).Truncate(time.Second)
				_, err := api.Update(ctx, h.ID, WebhookInput{ExpiresAt: exp})
				switch {
				case err == nil:
					h.ExpiresAt = exp
					ix.log.Info("clio webhook renewed", "model", h.Model, "id", h.ID, "expires_at", exp)
				case isNotFound(err):
					ok = false
				default:
					errs = append(errs, fmt.Errorf("renew %s webhook: %w", wm.model, err))
				}
			}
			if ok {
				out = append(out, h)
				continue
			}
		}
		// Create, and take the secret from the handshake.
		exp := now.Add(webhookLifetime).Truncate(time.Second)
		drain(wr.secrets)
		wr.arm(now.Add(handshakeWait))
		created, err := api.Create(ctx, WebhookInput{URL: u, Model: wm.model, Events: wm.events, Fields: wm.fields, ExpiresAt: exp})
		if err != nil {
			wr.arm(time.Time{})
			errs = append(errs, fmt.Errorf("create %s webhook: %w", wm.model, err))
			continue
		}
		t := time.NewTimer(handshakeWait)
		var secret string
		select {
		case secret = <-wr.secrets:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		wr.arm(time.Time{})
		if secret == "" {
			_ = api.Delete(context.WithoutCancel(ctx), created.ID)
			errs = append(errs, fmt.Errorf("%s webhook: no handshake from clio within %s (is %s reachable from the internet, and its host in http.allowed_hosts?)", wm.model, handshakeWait, u))
			continue
		}
		h = webhookHook{ID: created.ID, Model: wm.model, URL: u, Secret: secret, ExpiresAt: exp}
		out = append(out, h)
		wr.setHooks(append(append([]webhookHook(nil), out...), hooksExcept(stored, out)...))
		ix.log.Info("clio webhook registered", "model", wm.model, "id", created.ID, "expires_at", exp)
	}
	wr.setHooks(out)
	if err := ix.saveHooks(ctx, out); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func hooksExcept(all, have []webhookHook) []webhookHook {
	var out []webhookHook
	for _, h := range all {
		dup := false
		for _, x := range have {
			dup = dup || x.Model == h.Model
		}
		if !dup {
			out = append(out, h)
		}
	}
	return out
}

func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func (ix *Index) loadHooks(ctx context.Context) ([]webhookHook, error) {
	var hs []webhookHook
	if err := ix.st.getState(ctx, hooksKey, &hs); err != nil {
		return nil, err
	}
	for i := range hs {
		s, err := ix.st.sealer.open("webhook_secret", hs[i].Secret)
		if err != nil {
			return nil, err
		}
		hs[i].Secret = s
	}
	return hs, nil
}

func (ix *Index) saveHooks(ctx context.Context, hs []webhookHook) error {
	out := make([]webhookHook, len(hs))
	copy(out, hs)
	if ix.st.sealer != nil {
		for i := range out {
			s, err := ix.st.sealer.seal("webhook_secret", out[i].Secret)
			if err != nil {
				return err
			}
			out[i].Secret = s
		}
	}
	return putState(ctx, ix.st.db, hooksKey, out)
}
