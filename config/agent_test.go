package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateAgent(t *testing.T) {
	for _, tc := range []struct {
		a   Agent
		err string // part of the error; empty = valid
	}{
		{Agent{Mode: "off"}, ""},
		{Agent{Mode: "first", StreamURL: "ws://127.0.0.1:9000/agent"}, ""},
		{Agent{Mode: "fallback", StreamURL: "wss://agent.example.com/s"}, ""},
		{Agent{Mode: "first", URI: "sips:agent@example.com;transport=tls"}, ""},
		{Agent{Mode: "sometimes"}, "agent.mode"},
		{Agent{Mode: "first"}, "agent.mode"},
		{Agent{Mode: "first", StreamURL: "ws://agent.example.com/s"}, "agent.stream_url"},
		{Agent{Mode: "first", StreamURL: "http://127.0.0.1/"}, "agent.stream_url"},
		{Agent{Mode: "first", URI: "sip:a@b", StreamURL: "ws://127.0.0.1:1/"}, "not both"},
	} {
		c := Default()
		c.Agent = tc.a
		err := c.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.a, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%+v: error %v, want one naming %s", tc.a, err, tc.err)
		}
	}
}
