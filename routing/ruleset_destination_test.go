package routing

import (
	"testing"
	"time"
)

func TestRuleByDestination(t *testing.T) {
	set, err := NewRuleSet([]Rule{
		{Name: "felix", Destination: "+12175550101", Mode: ModeWarm, CallerID: CallerIDCaller, RingTimeout: 20 * time.Second, Unavailable: Unavailable{Kind: UnavailableHangup}, Enabled: true},
		{Name: "front desk", Destination: "205", Mode: ModeCold, CallerID: CallerIDCaller, RingTimeout: 20 * time.Second, Unavailable: Unavailable{Kind: UnavailableHangup}, Enabled: true},
		{Name: "uri", Destination: "sip:12175550199@pbx.example", Mode: ModeCold, CallerID: CallerIDCaller, RingTimeout: 20 * time.Second, Unavailable: Unavailable{Kind: UnavailableHangup}, Enabled: true},
	}, nil, Firm{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"+12175550101", "felix", true},
		{"12175550101", "felix", true},
		{"+1 (217) 555-0101", "felix", true},
		{"205", "front desk", true},
		{"+12175550102", "", false},
		{"12175550199", "", false}, // a URI destination never matches a number
		{"", "", false},
	} {
		got, ok := set.RuleByDestination(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RuleByDestination(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
