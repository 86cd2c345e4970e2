package main

import "context"

// RuleForDestination lets an agent's REFER to a rule's number become rule:NAME
// (sip.DestinationMatcher).
func (r router) RuleForDestination(_ context.Context, number string) (string, bool) {
	return r.store.Rules().RuleByDestination(number)
}
