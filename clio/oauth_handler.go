package clio

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// OAuth paths served by OAuthHandler.
const (
	StartPath    = "/oauth/clio/start"
	CallbackPath = "/oauth/clio/callback"
)

const stateTTL = 10 * time.Minute

// OAuthHandler serves the browser side of connecting Clio: StartPath redirects to
// Clio's authorize page with a fresh random state, CallbackPath checks the state
// (single use, ten minutes), exchanges the code, stores the tokens and shows the
// connected account from who_am_i. Mount it on the server's mux for both paths.
type OAuthHandler struct {
	Conn   *Connection
	Client *Client // uses Conn as its Authorizer; for who_am_i
	Logger *slog.Logger
	Now    func() time.Time
	// OnDone, when set, is called once per callback with the account or the error.
	OnDone func(u *User, err error)

	mu     sync.Mutex
	states map[string]time.Time
}

// Begin returns a new authorize URL whose state the callback will accept.
func (h *OAuthHandler) Begin() (string, error) {
	st, err := NewState()
	if err != nil {
		return "", err
	}
	now := h.now()
	h.mu.Lock()
	if h.states == nil {
		h.states = map[string]time.Time{}
	}
	for k, t := range h.states {
		if now.Sub(t) > stateTTL {
			delete(h.states, k)
		}
	}
	h.states[st] = now
	h.mu.Unlock()
	return h.Conn.AuthCodeURL(st), nil
}

func (h *OAuthHandler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *OAuthHandler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// checkState consumes state; it is valid once, within stateTTL.
func (h *OAuthHandler) checkState(state string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.states[state]
	if ok {
		delete(h.states, state)
	}
	return ok && state != "" && h.now().Sub(t) <= stateTTL
}

func (h *OAuthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case StartPath:
		u, err := h.Begin()
		if err != nil {
			http.Error(w, "cannot start the clio connection", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
	case CallbackPath:
		u, err := h.callback(r.Context(), r)
		if h.OnDone != nil {
			h.OnDone(u, err)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			h.logger().Warn("clio oauth callback failed", "err", err)
			code := http.StatusBadGateway
			if errors.Is(err, ErrBadState) || errors.Is(err, ErrAccessDenied) {
				code = http.StatusBadRequest
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, "<!doctype html><title>matterline</title><p>Clio was not connected: %s</p>\n", html.EscapeString(err.Error()))
			return
		}
		fmt.Fprintf(w, "<!doctype html><title>matterline</title><p>Clio connected as %s (user %d). You can close this page.</p>\n",
			html.EscapeString(u.Name), u.ID)
	default:
		http.NotFound(w, r)
	}
}

func (h *OAuthHandler) callback(ctx context.Context, r *http.Request) (*User, error) {
	if r.Method != http.MethodGet {
		return nil, errors.New("clio oauth: callback must be a GET")
	}
	q := r.URL.Query()
	if !h.checkState(q.Get("state")) {
		return nil, ErrBadState
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return nil, ErrAccessDenied
		}
		return nil, fmt.Errorf("clio oauth: authorize failed: %s", truncate(e, 80))
	}
	code := q.Get("code")
	if code == "" {
		return nil, errors.New("clio oauth: callback without code")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.Conn.Exchange(ctx, code); err != nil {
		return nil, err
	}
	u, _, err := h.Client.Users.WhoAmI(ctx)
	if err != nil {
		return nil, fmt.Errorf("clio oauth: who_am_i: %w", err)
	}
	if err := h.Conn.SetAccount(ctx, u); err != nil {
		return nil, err
	}
	h.logger().Info("clio account connected", "user_id", u.ID, "region", h.Conn.Region())
	return u, nil
}
