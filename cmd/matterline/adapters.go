package main

// Adapters between the packages' consumer-defined interfaces: sip asks a Router,
// httpapi asks Calls, Rules, CDR and Messages. Each adapter only translates.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// rulesAPI adapts the routing store to httpapi.Rules, in the JSON form of
// `rules show --json` (routing.RuleDoc).
type rulesAPI struct{ store *routing.Store }

func (a rulesAPI) List(ctx context.Context) ([]json.RawMessage, error) {
	rules, err := a.store.ListRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(rules))
	for _, r := range rules {
		b, err := json.Marshal(routing.DocOf(r))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (a rulesAPI) Get(ctx context.Context, name string) (json.RawMessage, error) {
	rules, err := a.store.ListRules(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if strings.EqualFold(r.Name, name) {
			return json.Marshal(routing.DocOf(r))
		}
	}
	return nil, fmt.Errorf("rule %q: %w", name, httpapi.ErrRuleNotFound)
}

func (a rulesAPI) Create(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	r, err := decodeRule(raw, "")
	if err != nil {
		return nil, err
	}
	if err := a.store.Put(ctx, r, false); err != nil {
		return nil, ruleErr(err)
	}
	return a.Get(ctx, r.Name)
}

func (a rulesAPI) Put(ctx context.Context, name string, raw json.RawMessage) (json.RawMessage, error) {
	r, err := decodeRule(raw, name)
	if err != nil {
		return nil, err
	}
	err = a.store.Put(ctx, r, true)
	if errors.Is(err, routing.ErrNotFound) {
		err = a.store.Put(ctx, r, false)
	}
	if err != nil {
		return nil, ruleErr(err)
	}
	return a.Get(ctx, r.Name)
}

func (a rulesAPI) Delete(ctx context.Context, name string) error {
	if err := a.store.Delete(ctx, name); err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return fmt.Errorf("rule %q: %w", name, httpapi.ErrRuleNotFound)
		}
		return &httpapi.ValidationError{Field: "name", Message: err.Error()}
	}
	return nil
}

// decodeRule reads a RuleDoc strictly; a name in the path wins when the body has none.
func decodeRule(raw json.RawMessage, name string) (routing.Rule, error) {
	var doc routing.RuleDoc
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return routing.Rule{}, &httpapi.ValidationError{Field: "body", Message: err.Error()}
	}
	if doc.Name == "" {
		doc.Name = name
	}
	r, err := doc.Rule()
	if err != nil {
		return routing.Rule{}, ruleErr(err)
	}
	return r, nil
}

// ruleErr turns routing's field errors into the API's validation errors.
func ruleErr(err error) error {
	var fe *routing.FieldError
	if errors.As(err, &fe) {
		if fe.Field == "name" && strings.Contains(fe.Err.Error(), "duplicate name") {
			return fmt.Errorf("%v: %w", err, httpapi.ErrRuleExists)
		}
		return &httpapi.ValidationError{Field: fe.Field, Message: err.Error()}
	}
	return err
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
