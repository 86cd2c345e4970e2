package main

// Adapters between the packages' consumer-defined interfaces: sip asks a Router,
// httpapi asks Calls, CDR and Messages (its Rules come from httpapi.RuleStore).
// Each adapter only translates.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/matterline/matterline/httpapi"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/sip"
)

// router adapts the routing store (live-reloaded rules) to sip.Router.
type router struct {
	store *routing.Store
	now   func() time.Time
}

func (r router) Decide(_ context.Context, call sip.CallInfo, intent routing.Intent) routing.Decision {
	return r.store.Decide(call.Lookup, intent, r.now())
}

// Extensions lets the menu collect multi-digit extensions (sip.ExtensionLister).
func (r router) Extensions(context.Context) []string { return r.store.Rules().Extensions() }

func (r router) Fallback(_ context.Context, _ sip.CallInfo, rule string) routing.Decision {
	return r.store.Fallback(rule, r.now())
}

// callsAPI adapts the SIP server to httpapi.Calls.
type callsAPI struct{ srv *sip.Server }

func (a callsAPI) List(context.Context) ([]httpapi.Call, error) {
	snaps := a.srv.Registry().List()
	out := make([]httpapi.Call, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, apiCall(s))
	}
	return out, nil
}

func (a callsAPI) Get(_ context.Context, id string) (httpapi.Call, error) {
	s, ok := a.srv.Registry().Get(id)
	if !ok {
		return httpapi.Call{}, fmt.Errorf("call %q: %w", id, httpapi.ErrCallNotFound)
	}
	return apiCall(s), nil
}

func (a callsAPI) Transfer(ctx context.Context, id string, intent routing.Intent) (routing.Decision, error) {
	d, err := a.srv.Transfer(ctx, id, intent)
	switch {
	case errors.Is(err, sip.ErrCallNotFound):
		return d, fmt.Errorf("%v: %w", err, httpapi.ErrCallNotFound)
	case errors.Is(err, sip.ErrCallState):
		return d, fmt.Errorf("%v: %w", err, httpapi.ErrCallState)
	}
	return d, err
}

func (a callsAPI) Hangup(ctx context.Context, id string) error {
	if _, ok := a.srv.Registry().Get(id); !ok {
		return fmt.Errorf("call %q: %w", id, httpapi.ErrCallNotFound)
	}
	return a.srv.Hangup(context.WithoutCancel(ctx), id)
}

func apiCall(s sip.CallSnapshot) httpapi.Call {
	c := httpapi.Call{ID: s.ID, Caller: s.Caller, Called: s.Callee, State: s.State.String(), Started: s.Started,
		Decision: s.Decision}
	if s.LookupDone {
		c.Lookup = s.Lookup
	}
	return c
}

// cdrAPI and messagesAPI adapt the records stores to httpapi.
type cdrAPI struct{ store *records.CallStore }

func (a cdrAPI) List(ctx context.Context, since time.Time, limit int) ([]records.CallRecord, error) {
	return a.store.List(ctx, records.Filter{Since: since, Limit: limit})
}

type messagesAPI struct{ store *records.MessageStore }

func (a messagesAPI) List(ctx context.Context, since time.Time, limit int) ([]records.Message, error) {
	return a.store.List(ctx, records.MessageFilter{Since: since, Limit: limit})
}
