package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/matterline/matterline/routing"
)

// RuleStore serves Rules from the routing store in the routing.RuleJSON shape
// (the same object as `matterline rules show --json`): every stored row, valid
// or not, with "valid", "error" and "warnings". Input is read with
// routing.DecodeRuleJSON, so the read-only members are ignored and unknown ones
// refused (400 with the field).
type RuleStore struct {
	Store *routing.Store
}

var _ Rules = RuleStore{}

func (a RuleStore) List(ctx context.Context) ([]json.RawMessage, error) {
	sts, err := a.Store.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(sts))
	for _, st := range sts {
		b, err := json.Marshal(routing.JSONOf(st))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (a RuleStore) Get(ctx context.Context, name string) (json.RawMessage, error) {
	sts, err := a.Store.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range sts {
		if strings.EqualFold(st.Rule.Name, name) {
			return json.Marshal(routing.JSONOf(st))
		}
	}
	return nil, fmt.Errorf("rule %q: %w", name, ErrRuleNotFound)
}

func (a RuleStore) Create(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	r, err := decodeRule(raw, "")
	if err != nil {
		return nil, err
	}
	if err := a.Store.Put(ctx, r, false); err != nil {
		return nil, ruleErr(err)
	}
	return a.Get(ctx, r.Name)
}

func (a RuleStore) Put(ctx context.Context, name string, raw json.RawMessage) (json.RawMessage, error) {
	r, err := decodeRule(raw, name)
	if err != nil {
		return nil, err
	}
	err = a.Store.Put(ctx, r, true)
	if errors.Is(err, routing.ErrNotFound) {
		err = a.Store.Put(ctx, r, false)
	}
	if err != nil {
		return nil, ruleErr(err)
	}
	return a.Get(ctx, r.Name)
}

func (a RuleStore) Delete(ctx context.Context, name string) error {
	if err := a.Store.Delete(ctx, name); err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return fmt.Errorf("rule %q: %w", name, ErrRuleNotFound)
		}
		return &ValidationError{Field: "name", Message: err.Error()}
	}
	return nil
}

// decodeRule reads a rule object; the name in the path is used when the body
// has none.
func decodeRule(raw json.RawMessage, name string) (routing.Rule, error) {
	doc, err := routing.DecodeRuleJSON(raw)
	if err != nil {
		return routing.Rule{}, err
	}
	if doc.Name == "" {
		doc.Name = name
	}
	return doc.Rule()
}

// ruleErr marks a duplicate name as ErrRuleExists (409); other routing field
// errors answer 422 with their field (Server.fail).
func ruleErr(err error) error {
	var fe *routing.FieldError
	if errors.As(err, &fe) && fe.Field == "name" && strings.Contains(fe.Err.Error(), "duplicate name") {
		return fmt.Errorf("%v: %w", err, ErrRuleExists)
	}
	return err
}
