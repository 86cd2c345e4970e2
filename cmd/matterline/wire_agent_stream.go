package main

import (
	"context"
	"log/slog"

	"github.com/matterline/matterline/agentstream"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/sip"
)

// agentStreamOption plugs the media-stream agent (agent.stream_url) into the
// SIP server; a no-op option when there is none or agent.mode is off.
func agentStreamOption(cfg *config.Config, log *slog.Logger) (sip.Option, error) {
	mode, err := sip.ParseAgentMode(cfg.Agent.Mode)
	if err != nil {
		return nil, err
	}
	if cfg.Agent.StreamURL == "" || mode == sip.AgentModeOff {
		return func(*sip.Server) {}, nil
	}
	d, err := agentstream.NewDialer(agentstream.Config{URL: cfg.Agent.StreamURL,
		Logger: log.With("component", "agentstream")})
	if err != nil {
		return nil, err
	}
	return sip.WithAgentStream(mode, agentStreamer{d: d}), nil
}

// agentStreamer adapts agentstream.Dialer to sip.AgentStreamer.
type agentStreamer struct{ d *agentstream.Dialer }

func (a agentStreamer) OpenStream(ctx context.Context, req sip.AgentStreamRequest) (sip.AgentStream, error) {
	params := make([]agentstream.Param, len(req.Params))
	for i, p := range req.Params {
		params[i] = agentstream.Param{Name: p.Name, Value: p.Value}
	}
	s, err := a.d.Open(ctx, agentstream.Request{CallID: req.Call.ID, Params: params, Media: req.Media})
	if err != nil {
		return nil, err
	}
	return agentStream{s}, nil
}

// agentStream adapts *agentstream.Stream to sip.AgentStream.
type agentStream struct{ *agentstream.Stream }

func (s agentStream) Reason() string { return s.Stream.Reason().String() }
