package config

import (
	"fmt"

	"github.com/matterline/matterline/routing"
)

// Agent is the voice-AI agent (docs/operations.md "Voice-AI agent").
type Agent struct {
	// URI is the agent's SIP URI, e.g. sip:agent@10.0.0.5:5060 or
	// sips:agent@example.com;transport=tls.
	URI string `yaml:"uri"`
	// Mode is off, first (every call goes to the agent after the lookup) or
	// fallback (calls the menu cannot serve: the responsible rule closed, the
	// menu's attempts exhausted).
	Mode string `yaml:"mode"`
}

func (a Agent) validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	if err := oneOf(a.Mode, "off", "first", "fallback"); err != nil {
		return bad("agent.mode", "%v", err)
	}
	if a.URI != "" {
		if k, err := routing.DestinationKindOf(a.URI); err != nil || k != routing.DestURI {
			return bad("agent.uri", "want a sip: or sips: URI, got %q", a.URI)
		}
	}
	if a.Mode != "off" && a.URI == "" {
		return bad("agent.uri", "agent.mode %s needs agent.uri", a.Mode)
	}
	return nil
}
