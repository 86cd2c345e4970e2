package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// ReferURIScheme is how a number destination is written in Refer-To. The zero
// value means the default (sip).
type ReferURIScheme uint8

const (
	ReferURIDefault ReferURIScheme = iota
	ReferURISIP                    // sip:NUMBER@outbound-proxy-host[:port]
	ReferURITel                    // tel:NUMBER (RFC 3966), for trunks that want it
)

// ParseReferURIScheme reads sip.refer_uri ("sip", "tel"; "" = default).
func ParseReferURIScheme(s string) (ReferURIScheme, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return ReferURIDefault, nil
	case "sip":
		return ReferURISIP, nil
	case "tel":
		return ReferURITel, nil
	}
	return ReferURIDefault, fmt.Errorf("sip: refer_uri %q: want sip or tel", s)
}

// ServerMode is what the server does with an INVITE (sip.mode). The zero value
// means the default (b2bua).
type ServerMode uint8

const (
	ModeDefault  ServerMode = iota
	ModeB2BUA               // answer, menu, transfer
	ModeRedirect            // 302 to the responsible staff's destination when the rules allow
)

// ParseServerMode reads sip.mode ("b2bua", "redirect"; "" = default).
func ParseServerMode(s string) (ServerMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return ModeDefault, nil
	case "b2bua":
		return ModeB2BUA, nil
	case "redirect":
		return ModeRedirect, nil
	}
	return ModeDefault, fmt.Errorf("sip: mode %q: want b2bua or redirect", s)
}

// TransferFallback is what a failed cold transfer falls back to
// (transfer.fallback). The zero value means the default (bridge).
type TransferFallback uint8

const (
	FallbackDefault TransferFallback = iota
	FallbackBridge                   // call the destination from matterline and bridge
	FallbackNone                     // run the rule's unavailable handling
)

// ParseTransferFallback reads transfer.fallback ("bridge", "none"; "" = default).
func ParseTransferFallback(s string) (TransferFallback, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return FallbackDefault, nil
	case "bridge":
		return FallbackBridge, nil
	case "none":
		return FallbackNone, nil
	}
	return FallbackDefault, fmt.Errorf("sip: transfer fallback %q: want bridge or none", s)
}

// Transfer defaults.
const (
	DefaultReferTimeout   = 30 * time.Second
	DefaultMessageMax     = 2 * time.Minute
	DefaultMessageSilence = 5 * time.Second
	DefaultAcceptTimeout  = 10 * time.Second
	DefaultDigitTimeout   = 2 * time.Second
	DefaultCancelWait     = 4 * time.Second
	// maxFallbackHops bounds one intent's chain of rule:NAME fallbacks (routing
	// already refuses loops; this guards a Router that does not).
	maxFallbackHops = 8
)

func (c *Config) transferDefaults() error {
	if c.ReferURI == ReferURIDefault {
		c.ReferURI = ReferURISIP
	}
	if c.Mode == ModeDefault {
		c.Mode = ModeB2BUA
	}
	if c.TransferFallback == FallbackDefault {
		c.TransferFallback = FallbackBridge
	}
	if c.ReferTimeout <= 0 {
		c.ReferTimeout = DefaultReferTimeout
	}
	if c.MessageMax <= 0 {
		c.MessageMax = DefaultMessageMax
	}
	if c.MessageSilence == 0 {
		c.MessageSilence = DefaultMessageSilence
	}
	if c.AcceptTimeout <= 0 {
		c.AcceptTimeout = DefaultAcceptTimeout
	}
	if c.DigitTimeout <= 0 {
		c.DigitTimeout = DefaultDigitTimeout
	}
	if c.CancelWait <= 0 {
		c.CancelWait = DefaultCancelWait
	}
	c.ServiceNumber = cleanNumber(c.ServiceNumber)
	c.OutboundProxy = strings.TrimSpace(stripCRLF(c.OutboundProxy))
	if c.OutboundProxy != "" {
		if _, err := parseProxy(c.OutboundProxy); err != nil {
			return err
		}
	}
	return nil
}

// proxyAddr is a parsed outbound proxy.
type proxyAddr struct {
	host      string // host or IP literal (no brackets)
	port      int    // 5060 when absent
	transport string // "UDP", "TCP" or "TLS"
	secure    bool   // sips: (TLS)
}

func (p proxyAddr) hostPort() string {
	h := p.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return fmt.Sprintf("%s:%d", h, p.port)
}

// parseProxy reads "sip:host[:port][;transport=tcp|tls]", "sips:host[:port]"
// or "host[:port]".
func parseProxy(s string) (proxyAddr, error) {
	raw := s
	if l := strings.ToLower(s); !strings.HasPrefix(l, "sip:") && !strings.HasPrefix(l, "sips:") {
		s = "sip:" + s
	}
	var u gosip.Uri
	if err := gosip.ParseUri(s, &u); err != nil || u.Host == "" {
		return proxyAddr{}, fmt.Errorf("sip: outbound proxy %q: want sip:host[:port]", raw)
	}
	p := proxyAddr{host: strings.Trim(u.Host, "[]"), port: u.Port, transport: uriTransport(u),
		secure: strings.EqualFold(u.Scheme, "sips")}
	if p.port == 0 {
		p.port = gosip.DefaultPort(strings.ToLower(p.transport))
	}
	return p, nil
}

// uriTransport is how a target URI is dialled: TLS for sips: (RFC 3261 §26.2.2)
// and ;transport=tls, TCP for ;transport=tcp, else UDP.
func uriTransport(u gosip.Uri) string {
	tp := "UDP"
	if u.UriParams != nil {
		if t, ok := u.UriParams.Get("transport"); ok {
			switch strings.ToLower(t) {
			case "tcp":
				tp = "TCP"
			case "tls":
				tp = "TLS"
			}
		}
	}
	if strings.EqualFold(u.Scheme, "sips") {
		tp = "TLS"
	}
	return tp
}

// Errors of the transfer path.
var (
	// ErrCallState: the call is not in a state that can take a transfer (Server.Transfer).
	ErrCallState = errors.New("sip: call not in a transferable state")
	// ErrNoOutboundProxy: a number destination without sip.outbound_proxy.
	ErrNoOutboundProxy = errors.New("sip: number destination without outbound proxy")
	// ErrBadDestination: a destination routing should never have produced.
	ErrBadDestination = errors.New("sip: invalid transfer destination")
)

// transferTarget is where a decision's destination is dialled.
type transferTarget struct {
	uri   gosip.Uri // Request-URI / Refer-To (sip form)
	dest  string    // host:port the requests go to ("" = resolve from uri)
	tport string    // "UDP", "TCP" or "TLS"
	// number is the dialled number for number destinations ("" for URIs).
	number string
	// requireSRTP marks a destination that must get an RTP/SAVP offer (srtp.go);
	// sips: and transport=tls targets get one without it.
	requireSRTP bool
}

// targetFor turns a routing destination into a dial target. Numbers go to the
// outbound proxy as sip:NUMBER@proxy; SIP URIs are dialled as they are. The
// destination only ever comes from a routing decision (rules or configuration),
// never from the caller.
func (s *Server) targetFor(dest string) (transferTarget, error) {
	kind, err := routing.DestinationKindOf(dest)
	if err != nil {
		return transferTarget{}, fmt.Errorf("%w: %w", ErrBadDestination, err)
	}
	if kind.IsNumber() {
		if s.cfg.OutboundProxy == "" {
			return transferTarget{}, ErrNoOutboundProxy
		}
		p, err := parseProxy(s.cfg.OutboundProxy)
		if err != nil {
			return transferTarget{}, err
		}
		scheme := "sip"
		if p.secure {
			scheme = "sips"
		}
		return transferTarget{
			uri:    gosip.Uri{Scheme: scheme, User: dest, Host: p.host, Port: p.port},
			dest:   p.hostPort(),
			tport:  p.transport,
			number: dest,
		}, nil
	}
	var u gosip.Uri
	if err := gosip.ParseUri(dest, &u); err != nil || u.Host == "" {
		return transferTarget{}, fmt.Errorf("%w: %q", ErrBadDestination, dest)
	}
	return transferTarget{uri: u, tport: uriTransport(u)}, nil
}

// flow is how an intent's execution left the call.
type flow struct {
	left bool     // the call left the menu (transferred, ended, message taken)
	next []string // prompts before the menu when !left
}

func menuFlow(prompts ...string) flow {
	return flow{next: append(prompts, media.PromptGreeting)}
}

// execute carries out a routing decision on the call's goroutine: the message
// before the transfer, the transfer (cold with fallback, or warm), and on failure
// or unavailability the rule's unavailable handling, following rule:NAME
// fallbacks without visiting a rule twice.
func (c *call) execute(dec routing.Decision) flow {
	visited := map[string]bool{}
	failedPrompt := media.PromptNobody
	for hop := 0; hop < maxFallbackHops; hop++ {
		if dec.Rule != "" {
			key := strings.ToLower(dec.Rule)
			if visited[key] {
				c.log.Warn("fallback loop refused", "rule", dec.Rule)
				return menuFlow(media.PromptNobody)
			}
			visited[key] = true
		}
		switch dec.Action {
		case routing.ActionTransfer:
			c.noteDecision(dec)
			if c.srv.transferer != nil { // an external executor (tests, embedding)
				c.setState(StateTransferring)
				err := c.await(func(ctx context.Context) error {
					return c.srv.transferer.Transfer(ctx, TransferRequest{Call: c.info(), Decision: dec, Media: c.session()})
				})
				if err == nil {
					return flow{left: true}
				}
				c.log.Warn("transfer failed", "rule", dec.Rule, "error", err)
				return menuFlow(media.PromptNobody)
			}
			if c.transfer(dec) {
				return flow{left: true}
			}
			if c.ending() {
				return flow{left: true}
			}
			failedPrompt = media.PromptNobody
		case routing.ActionUnavailable:
			c.noteDecision(dec)
			p := media.PromptNobody
			if dec.Reason == routing.ReasonOutsideHours || dec.Reason == routing.ReasonClosedToday {
				p = media.PromptOutsideHours
			}
			c.playPrompts(p)
			failedPrompt = ""
		default: // none: no rule, no match, a refused fallback
			return menuFlow(media.PromptNobody)
		}
		if c.ending() {
			return flow{left: true}
		}
		switch dec.Unavailable.Kind {
		case routing.UnavailableMessage:
			c.takeMessage(dec)
			return flow{left: true}
		case routing.UnavailableHangup:
			c.playPrompts(media.PromptGoodbye)
			c.finish(EndOurBye)
			return flow{left: true}
		case routing.UnavailableRule:
			if c.srv.router == nil {
				return menuFlow(failedPrompt)
			}
			dctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
			next := c.fallback(dctx, dec.Rule)
			cancel()
			c.log.Info("fallback decision", "from", dec.Rule, "action", next.Action.String(),
				"rule", next.Rule, "reason", string(next.Reason))
			dec = next
			continue
		default: // menu, unknown
			if failedPrompt == "" {
				return flow{next: []string{media.PromptGreeting}}
			}
			return menuFlow(failedPrompt)
		}
	}
	return menuFlow(media.PromptNobody)
}

func (c *call) fallback(ctx context.Context, rule string) (dec routing.Decision) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("router fallback panicked", "panic", p)
			dec = routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonBadIntent}
		}
	}()
	return c.srv.router.Fallback(ctx, c.info(), rule)
}

// transfer runs one transfer decision; true when the call was handed off (REFER
// done, or bridged and since ended).
func (c *call) transfer(dec routing.Decision) bool {
	c.setState(StateTransferring)
	if dec.Mode != routing.ModeCold {
		// Warm: the INVITE goes out at once and the message plays while it
		// rings; the whisper waits for the answer and the message's end.
		return c.warm(dec, true, true)
	}
	// Cold: the REFER hands the caller over, so the message comes first.
	c.playBeforeTransfer(dec)
	if c.ending() {
		c.setOutcome(records.OutcomeAbandoned)
		return true
	}
	res := c.cold(dec)
	switch res {
	case referDone:
		return true
	case referAbandoned, referGone:
		c.setOutcome(records.OutcomeAbandoned)
		return true
	}
	if c.srv.cfg.TransferFallback == FallbackNone {
		c.setOutcome(records.OutcomeFailed)
		return false
	}
	c.log.Info("refer failed, bridging from matterline", "rule", dec.Rule)
	return c.warm(dec, false, false)
}

// playBeforeTransfer plays the rule's message: its text spoken (TTS) when
// available, else its audio file, else the built-in "transferring" prompt.
func (c *call) playBeforeTransfer(dec routing.Decision) {
	if p := c.ruleMessage(dec.Def, c.speak); p != nil {
		c.play(p)
		return
	}
	c.playPrompts(media.PromptTransferring)
}

// ruleMessage is the rule's message: its text rendered by speak when a TTS is
// set up, else its audio file; nil when it has neither (or neither works).
func (c *call) ruleMessage(def *routing.Rule, speak func(string) (*media.Prompt, error)) *media.Prompt {
	if def == nil {
		return nil
	}
	if def.Message != "" && c.srv.tts != nil {
		if p, err := speak(def.Message); err == nil {
			return p
		} else if !errors.Is(err, media.ErrNoTTS) {
			c.log.Warn("tts of the rule message failed", "rule", def.Name, "error", err)
		}
	}
	if def.MessageAudio != "" {
		p, err := media.LoadWAV(def.MessageAudio)
		if err == nil {
			return p
		}
		c.log.Warn("rule message audio unreadable", "rule", def.Name, "error", err)
	}
	return nil
}

// playPrompts plays built-in prompts by name to the caller; missing ones are
// skipped.
func (c *call) playPrompts(names ...string) {
	for _, n := range names {
		p := c.srv.prompts.Get(n)
		if p == nil {
			c.log.Debug("prompt missing", "prompt", n)
			continue
		}
		if err := c.play(p); err != nil {
			return
		}
	}
}

// play plays p to the caller while the call goes on serving events.
func (c *call) play(p *media.Prompt) error {
	sess := c.session()
	if sess == nil {
		return ErrCallNotFound
	}
	return c.await(func(ctx context.Context) error { return sess.Play(ctx, p) })
}

// speak renders text with the TTS while the call goes on serving events.
func (c *call) speak(text string) (p *media.Prompt, err error) {
	err = c.await(func(ctx context.Context) error {
		p, err = c.srv.tts.Render(ctx, text)
		return err
	})
	return p, err
}

// await runs f, a blocking step of the flow (a prompt, a recording, speech, an
// external transfer executor), on its own goroutine under the call's context
// while the call goes on serving events (a BYE meanwhile cancels f's context);
// it returns f's error when f returns.
func (c *call) await(f func(ctx context.Context) error) error {
	done := make(chan error, 1)
	c.srv.goTracked(func() { done <- f(c.ctx) })
	for {
		select {
		case err := <-done:
			return err
		case ev := <-c.events:
			c.handle(ev)
		}
	}
}

// noteDecision keeps the last decision that transferred or tried to, for the call
// record.
func (c *call) noteDecision(dec routing.Decision) {
	c.mu.Lock()
	c.dec = dec
	c.hasDec = true
	c.mu.Unlock()
}

// setOutcome sets the call record's transfer outcome (the last one wins).
func (c *call) setOutcome(o records.Outcome) {
	c.mu.Lock()
	c.outcome = o
	mode := c.dec.Mode
	c.mu.Unlock()
	c.notifyRecordOutcome(mode, o) // transfer_result event and metrics
	c.agentOutcome(o)              // the final NOTIFY of an agent's REFER (agent.go)
}

// Transfer injects intent into the live, answered call id as if the caller had
// dialled it from the menu, and returns the routing decision at once; the
// transfer itself runs on the call's own goroutine (not under ctx). Errors:
// ErrCallNotFound for an unknown call, ErrCallState when the call is not in the
// menu (ringing, already transferring, ending).
func (s *Server) Transfer(ctx context.Context, id string, intent routing.Intent) (routing.Decision, error) {
	c := s.reg.call(id)
	if c == nil {
		return routing.Decision{}, fmt.Errorf("transfer %s: %w", id, ErrCallNotFound)
	}
	c.mu.Lock()
	st := c.state
	if st == StateHeld {
		st = c.heldFrom
	}
	c.mu.Unlock()
	if st != StateInMenu && st != StateAgent { // a caller with a SIP or stream agent too
		return routing.Decision{}, fmt.Errorf("transfer %s (state %s): %w", id, st, ErrCallState)
	}
	var dec routing.Decision
	if s.router != nil {
		dctx, cancel := context.WithTimeout(ctx, routerTimeout)
		dec = c.decide(dctx, s.router, intent)
		cancel()
	} else {
		dec = routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule}
	}
	ev := &injectEvent{intent: intent, dec: dec, reply: make(chan error, 1)}
	if !c.post(ev) {
		return dec, fmt.Errorf("transfer %s: %w", id, ErrCallNotFound)
	}
	select {
	case err := <-ev.reply:
		if err != nil {
			return dec, fmt.Errorf("transfer %s: %w", id, err)
		}
		return dec, nil
	case <-c.done:
		return dec, fmt.Errorf("transfer %s: %w", id, ErrCallNotFound)
	case <-ctx.Done():
		return dec, ctx.Err()
	}
}

// injectEvent is an intent from the API with its decision, for the menu; reply
// gets nil when the menu takes it, ErrCallState otherwise.
type injectEvent struct {
	intent routing.Intent
	dec    routing.Decision
	reply  chan error
}
