package httpapi

import (
	"net/http"
)

// ClioWebhookPath is where Clio delivers webhook events (clio.webhook_url must
// reach it).
const ClioWebhookPath = "/webhooks/clio"

// clioWebhook passes Clio's webhook deliveries to Options.ClioWebhook. The route
// carries no bearer token (Clio cannot send one): the handler authenticates each
// delivery by its X-Hook-Signature and answers the X-Hook-Secret handshake only
// while a registration waits for it. The Host check still applies, so the
// public name Clio posts to must be accepted (the server adds the host of
// clio.webhook_url to the allowed hosts). The body is capped at
// Options.MaxBodyBytes.
func (s *Server) clioWebhook(w http.ResponseWriter, r *http.Request) {
	if s.opts.ClioWebhook == nil {
		notImplemented(w, "clio webhooks (clio.index)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	s.opts.ClioWebhook.ServeHTTP(w, r)
}
