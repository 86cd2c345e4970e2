package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

var t0 = time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)

type fakeCalls struct {
	mu        sync.Mutex
	calls     map[string]Call
	intents   []routing.Intent
	hungUp    []string
	transferd map[string]bool
}

func newFakeCalls() *fakeCalls {
	return &fakeCalls{transferd: map[string]bool{}, calls: map[string]Call{
		"c1": {ID: "c1", Caller: "+12175552171", Called: "+13125550100", State: "answered", Started: t0,
			Lookup: lookup.Result{Status: lookup.StatusFound, Number: "+12175552171",
				Contact: &lookup.Contact{ID: 1001, Name: "Ada Quist"},
				Matter:  &lookup.Matter{ID: 2001, DisplayNumber: "00101-Quist"},
				Staff:   &lookup.Staff{ID: 501, Name: "Felix Dubinsky", Email: "felix@firm.example"}}},
		"ringing": {ID: "ringing", Caller: "+13125550199", State: "ringing", Started: t0},
	}}
}

func (f *fakeCalls) List(ctx context.Context) ([]Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeCalls) Get(ctx context.Context, id string) (Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.calls[id]
	if !ok {
		return Call{}, fmt.Errorf("registry: %w", ErrCallNotFound)
	}
	return c, nil
}

// Transfer: call c1 is transferable; "ringing" is not. Rule "closed" is outside
// hours, staff "Nobody" has no rule, rule "broken" fails internally.
func (f *fakeCalls) Transfer(ctx context.Context, id string, in routing.Intent) (routing.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.intents = append(f.intents, in)
	c, ok := f.calls[id]
	if !ok {
		return routing.Decision{}, ErrCallNotFound
	}
	if c.State != "answered" {
		return routing.Decision{}, fmt.Errorf("sip: call %s is %s: %w", id, c.State, ErrCallState)
	}
	switch {
	case in.Kind == routing.IntentRule && in.Arg == "closed":
		return routing.Decision{Action: routing.ActionUnavailable, Rule: "closed", Mode: routing.ModeWarm, Reason: routing.ReasonOutsideHours}, nil
	case in.Kind == routing.IntentStaff && in.Arg == "Nobody":
		return routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule}, nil
	case in.Kind == routing.IntentRule && in.Arg == "broken":
		return routing.Decision{}, errors.New("store: database is locked at /var/lib/matterline/matterline.db")
	}
	return routing.Decision{Action: routing.ActionTransfer, Rule: "felix", Mode: routing.ModeWarm,
		Destination: "+13125550101", CallerID: routing.CallerIDCaller, Reason: routing.ReasonMatched}, nil
}

func (f *fakeCalls) Hangup(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.calls[id]; !ok {
		return ErrCallNotFound
	}
	f.hungUp = append(f.hungUp, id)
	return nil
}

type fakeRules struct {
	mu    sync.Mutex
	rules map[string]json.RawMessage
}

func newFakeRules() *fakeRules {
	return &fakeRules{rules: map[string]json.RawMessage{
		"felix": json.RawMessage(`{"name":"felix","to":"+13125550101","mode":"warm"}`),
	}}
}

func (f *fakeRules) validate(rule json.RawMessage) (string, error) {
	var r struct {
		Name string `json:"name"`
		To   string `json:"to"`
	}
	if err := json.Unmarshal(rule, &r); err != nil {
		return "", &ValidationError{Message: err.Error()}
	}
	if r.To == "" {
		return "", fmt.Errorf("routing: %w", &ValidationError{Field: "to", Message: "a destination is required"})
	}
	return r.Name, nil
}

func (f *fakeRules) List(ctx context.Context) ([]json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.rules {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []json.RawMessage
	for _, n := range names {
		out = append(out, f.rules[n])
	}
	return out, nil
}

func (f *fakeRules) Get(ctx context.Context, name string) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rules[name]
	if !ok {
		return nil, ErrRuleNotFound
	}
	return r, nil
}

func (f *fakeRules) Create(ctx context.Context, rule json.RawMessage) (json.RawMessage, error) {
	name, err := f.validate(rule)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, &ValidationError{Field: "name", Message: "a name is required"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rules[name]; ok {
		return nil, ErrRuleExists
	}
	f.rules[name] = rule
	return rule, nil
}

func (f *fakeRules) Put(ctx context.Context, name string, rule json.RawMessage) (json.RawMessage, error) {
	if _, err := f.validate(rule); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[name] = rule
	return rule, nil
}

func (f *fakeRules) Delete(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rules[name]; !ok {
		return ErrRuleNotFound
	}
	delete(f.rules, name)
	return nil
}

type fakeCDR struct {
	gotSince time.Time
	gotLimit int
}

func (f *fakeCDR) List(ctx context.Context, since time.Time, limit int) ([]CallRecord, error) {
	f.gotSince, f.gotLimit = since, limit
	return []CallRecord{{ID: "c0", CallID: "sip-c0", Caller: "+12175552171", Start: t0, End: t0.Add(time.Minute),
		Lookup: lookup.StatusFound, ContactID: 1001, MatterID: 101, Intents: []string{"responsible"},
		Rule: "felix", Mode: routing.ModeCold, Outcome: records.OutcomeReferred}}, nil
}

type fakeMessages struct{}

func (fakeMessages) List(ctx context.Context, since time.Time, limit int) ([]Message, error) {
	return nil, nil
}

type fakeHealth struct {
	mu       sync.Mutex
	draining bool
}

func (f *fakeHealth) Draining() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.draining
}

func (f *fakeHealth) set(d bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.draining = d
}

type fakeTrace struct {
	mu sync.Mutex
	on bool
}

func (f *fakeTrace) Set(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on = on
}

func (f *fakeTrace) Enabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}
