package config

import (
	"fmt"

	"github.com/matterline/matterline/agentstream"
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
	// StreamURL is the WebSocket of a Twilio-Media-Streams-style agent: ws://
	// only to a loopback host, wss:// otherwise. Set agent.uri or this, not both.
	StreamURL string `yaml:"stream_url"`
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
	if a.StreamURL != "" {
		if _, err := agentstream.CheckURL(a.StreamURL); err != nil {
			return bad("agent.stream_url", "%v", err)
		}
	}
	if a.URI != "" && a.StreamURL != "" {
		return bad("agent.stream_url", "set agent.uri (a SIP agent) or agent.stream_url (a media-stream agent), not both")
	}
	if a.Mode != "off" && a.URI == "" && a.StreamURL == "" {
		return bad("agent.mode", "%q needs agent.uri or agent.stream_url", a.Mode)
	}
	return nil
}
