package refagent

// The SIP-leg variant: a phone.Callee on loopback that matterline calls as
// agent.uri. Per call it reads the lookup from the X-Matterline-* headers of
// the INVITE, speaks the same script as the stream variant into the call's
// RTP, then asks for the transfer with REFER (RFC 3515) to
// sip:staff-NAME@<the address the INVITE came from>, reports the NOTIFYs
// (message/sipfrag) and waits for matterline's BYE.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

// SIPConfig configures a SIPAgent. Zero values mean defaults.
type SIPConfig struct {
	// Listen is the UDP address for SIP. Default "127.0.0.1:0".
	Listen string
	// TTS speaks the script; nil or failing: a tone per sentence.
	TTS Speaker
	// OnEvent is told each step (for the demo's printout); may be nil. It is
	// called from the agent's goroutines: keep it fast.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// SIPAgent is the reference agent on a SIP leg.
type SIPAgent struct {
	cfg    SIPConfig
	callee *phone.Callee
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu  sync.Mutex
	ids map[string]string // SIP Call-ID -> X-Matterline-Call-Id
}

// sipHeaders are the X-Matterline-* headers and the script's parameter names
// (those of the stream variant's start message).
var sipHeaders = [...]struct{ header, param string }{
	{"X-Matterline-Lookup", "lookup"},
	{"X-Matterline-Contact-Id", "contact_id"},
	{"X-Matterline-Contact-Name", "contact_name"},
	{"X-Matterline-Matter-Id", "matter_id"},
	{"X-Matterline-Matter", "matter"},
	{"X-Matterline-Staff-Id", "staff_id"},
	{"X-Matterline-Staff", "staff"},
	{"X-Matterline-Open", "open"},
}

// StartSIP listens for SIP on cfg.Listen, answers every call and runs the
// script on it until Close.
func StartSIP(cfg SIPConfig) (*SIPAgent, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &SIPAgent{cfg: cfg, ids: map[string]string{}}
	callee, err := phone.NewCallee(phone.CalleeConfig{Name: "agent", Listen: cfg.Listen, Number: "agent",
		Logger: cfg.Logger, OnEvent: a.phoneEvent})
	if err != nil {
		return nil, fmt.Errorf("refagent: sip: %w", err)
	}
	a.callee = callee
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(1)
	go a.accept(ctx)
	return a, nil
}

// URI is the agent's SIP URI for agent.uri (sip:agent@127.0.0.1:PORT).
func (a *SIPAgent) URI() string { return "sip:agent@" + a.callee.Addr().String() }

// Close hangs up every call, stops the phone and waits for the scripts.
// Idempotent.
func (a *SIPAgent) Close() error {
	a.once.Do(func() {
		a.cancel()
		_ = a.callee.Close()
	})
	a.wg.Wait()
	return nil
}

// accept hands every answered call to its own script goroutine.
func (a *SIPAgent) accept(ctx context.Context) {
	defer a.wg.Done()
	for {
		call, err := a.callee.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue // Next's own timeout: keep waiting
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.serve(ctx, call)
		}()
	}
}

func (a *SIPAgent) event(callID, format string, args ...any) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(Event{Time: time.Now(), CallID: callID, Text: fmt.Sprintf(format, args...)})
	}
}

// phoneEvent reports the NOTIFYs of our REFER and matterline's BYE.
func (a *SIPAgent) phoneEvent(ev phone.Event) {
	a.mu.Lock()
	id, ok := a.ids[ev.CallID]
	a.mu.Unlock()
	if !ok {
		return
	}
	switch ev.Kind {
	case phone.EventNotify:
		a.event(id, "NOTIFY received (%s), answered 200", ev.Detail)
	case phone.EventByeReceived:
		a.event(id, "BYE received: matterline took the caller from the agent")
	}
}

// serve runs the script on one answered call.
func (a *SIPAgent) serve(ctx context.Context, call *phone.Call) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	defer func() { _ = call.Hangup(context.WithoutCancel(ctx)) }()
	callID := call.Header("X-Matterline-Call-Id")
	a.mu.Lock()
	a.ids[call.ID()] = callID
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.ids, call.ID())
		a.mu.Unlock()
	}()
	p := map[string]string{}
	for _, h := range sipHeaders {
		p[h.param] = call.Header(h.header)
	}
	src := call.Source()
	a.event(callID, "INVITE from %s answered for call %s: lookup %s, contact %q, matter %q, staff %q, open %s",
		src, callID, p["lookup"], p["contact_name"], p["matter"], p["staff"], p["open"])

	for _, line := range script(p) {
		prompt, how := a.speakPrompt(ctx, line)
		a.event(callID, "says (%s): %q", how, line)
		if err := call.Play(ctx, prompt); err != nil {
			a.event(callID, "the call ended while speaking: %v", err)
			return
		}
	}
	if p["staff"] == "" {
		a.event(callID, "no responsible staff known: hangs up (the caller returns to the menu)")
		return
	}
	if _, _, err := net.SplitHostPort(src); err != nil {
		a.event(callID, "cannot tell where the INVITE came from (%q): hangs up", src)
		return
	}
	target := "sip:staff-" + url.PathEscape(p["staff"]) + "@" + src
	res, err := call.Refer(ctx, target)
	if err != nil {
		a.event(callID, "REFER Refer-To <%s>: %v", target, err)
		return
	}
	a.event(callID, "REFER Refer-To <%s>: %d %s", target, res.StatusCode, res.Reason)
	if res.StatusCode/100 != 2 {
		return
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
	}
}

// speakPrompt renders a line as speak does, as a prompt for the call's RTP.
func (a *SIPAgent) speakPrompt(ctx context.Context, line string) (*media.Prompt, string) {
	if a.cfg.TTS != nil {
		p, err := a.cfg.TTS.Render(ctx, line)
		if err == nil && len(p.Samples) > 0 {
			return p, "speech"
		}
		if !errors.Is(err, media.ErrNoTTS) {
			a.cfg.Logger.Warn("refagent: tts failed", "error", err)
		}
	}
	return media.Tone(ToneHz, 600*time.Millisecond), "tone"
}
