package sip

import (
	"context"
	"errors"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// defaultWhisper is said to the callee when the rule has no whisper of its own.
const defaultWhisper = "Call from {caller_name}, matter {matter}."

// warm runs a warm transfer (full) or the bridged fallback of a failed REFER
// (!full: no whisper, no accept digit): INVITE the destination while the caller
// hears ringback, then whisper, wait for the accept digit, and bridge the media.
// It returns true when the call left the menu (bridged and since ended, or the
// caller hung up); false when the destination could not be reached (the outcome
// says why) and the unavailable handling follows.
func (c *call) warm(ctx context.Context, dec routing.Decision, full bool) bool {
	callerSess := c.session()
	if callerSess == nil {
		return true
	}
	leg, err := c.srv.dialOut(c, dec)
	if err != nil {
		c.log.Warn("outbound call not placed", "rule", dec.Rule, "error", err)
		c.setOutcome(records.OutcomeFailed)
		return false
	}
	if !c.attachLeg(leg) {
		leg.hangup()
		c.setOutcome(records.OutcomeAbandoned)
		return true
	}
	fail := func(o records.Outcome) bool {
		c.detachLeg(leg)
		leg.hangup()
		if ctx.Err() != nil || c.isEnding() {
			c.setOutcome(records.OutcomeAbandoned)
			return true
		}
		c.setOutcome(o)
		return false
	}

	// The caller hears ringback while the destination rings and listens to the
	// whisper.
	ringCtx, stopRing := context.WithCancel(ctx)
	ringDone := make(chan struct{})
	go func() {
		defer close(ringDone)
		_ = callerSess.PlayLoop(ringCtx, media.Ringback(0))
	}()
	stopRinging := func() {
		stopRing()
		<-ringDone
	}

	ring := routing.DefaultRingTimeout
	if dec.Def != nil && dec.Def.RingTimeout > 0 {
		ring = dec.Def.RingTimeout
	}
	switch res := leg.waitAnswer(ctx, ring); res {
	case answerOK:
	case answerBusy:
		stopRinging()
		return fail(records.OutcomeBusy)
	case answerDeclined:
		stopRinging()
		return fail(records.OutcomeDeclined)
	case answerNoAnswer:
		stopRinging()
		return fail(records.OutcomeNoAnswer)
	case answerAbandoned:
		stopRinging()
		return fail(records.OutcomeAbandoned)
	default:
		stopRinging()
		return fail(records.OutcomeFailed)
	}

	if full && !c.whisperAndAccept(ctx, leg, dec) {
		stopRinging()
		c.log.Info("callee did not accept", "rule", dec.Rule)
		return fail(records.OutcomeDeclined)
	}
	stopRinging()
	legSess := leg.session()
	bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	br, err := media.NewBridge(bctx, callerSess, legSess, media.BridgeOptions{Logger: c.log})
	cancel()
	if err != nil {
		c.log.Warn("bridge failed", "error", err)
		return fail(records.OutcomeFailed)
	}
	c.setOutcome(records.OutcomeBridged)
	c.mu.Lock()
	c.bridged = true
	c.mu.Unlock()
	c.setState(StateBridged)
	c.log.Info("bridged", "rule", dec.Rule, "caller_codec", callerSess.Codec().Name, "callee_codec", legSess.Codec().Name)
	defer br.Stop()
	for {
		select {
		case <-ctx.Done():
			return true // end() hangs up the leg
		case <-leg.bye:
			br.Stop()
			c.end(EndCalleeBye, true)
			return true
		case <-legSess.Timeout():
			c.log.Info("callee rtp inactivity timeout")
			c.end(EndRTPTimeout, true)
			return true
		case <-br.Done():
			if ctx.Err() == nil {
				c.end(EndError, true)
			}
			return true
		case hold := <-leg.holds:
			c.reinviteCaller(ctx, hold)
		case hold := <-c.holds:
			leg.setHold(hold)
		}
	}
}

// whisperAndAccept whispers to the callee (the rule's template, rendered with the
// caller's name and matter number, spoken by TTS; else a built-in prompt) and, when
// the rule has an accept digit, waits for it (RFC 4733 or INFO) until
// Config.AcceptTimeout after the whisper. Another digit, the timeout or the
// callee's BYE is a decline.
func (c *call) whisperAndAccept(ctx context.Context, leg *outLeg, dec routing.Decision) bool {
	sess := leg.session()
	if sess == nil {
		return false
	}
	accept := ""
	if dec.Def != nil {
		accept = dec.Def.AcceptDigit
	}
	prompt := c.whisperPrompt(ctx, dec)
	playCtx, stopPlay := context.WithCancel(ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		if prompt != nil {
			_ = sess.Play(playCtx, prompt)
		}
	}()
	defer func() {
		stopPlay()
		<-played
	}()
	playing := (<-chan struct{})(played)
	var timeout <-chan time.Time
	for {
		select {
		case <-playing:
			if accept == "" {
				return true
			}
			playing = nil
			t := time.NewTimer(c.srv.cfg.AcceptTimeout)
			defer t.Stop()
			timeout = t.C
		case d, ok := <-sess.DTMF():
			if !ok {
				return false
			}
			if accept == "" {
				continue
			}
			c.log.Info("callee pressed", "digit", string(d.Key), "source", d.Source)
			return string(d.Key) == accept
		case <-timeout:
			c.log.Info("no accept digit from the callee", "after", c.srv.cfg.AcceptTimeout)
			return false
		case <-leg.bye:
			return false
		case <-sess.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (c *call) whisperPrompt(ctx context.Context, dec routing.Decision) *media.Prompt {
	tmpl := defaultWhisper
	if dec.Def != nil && dec.Def.Whisper != "" {
		tmpl = dec.Def.Whisper
	}
	if c.srv.tts != nil {
		info := c.info()
		name, matter := "", ""
		if info.Lookup.Contact != nil {
			name = info.Lookup.Contact.Name
		}
		if info.Lookup.Matter != nil {
			matter = info.Lookup.Matter.DisplayNumber
		}
		p, err := c.srv.tts.Render(ctx, routing.RenderWhisper(tmpl, name, matter))
		if err == nil {
			return p
		}
		if !errors.Is(err, media.ErrNoTTS) {
			c.log.Warn("whisper tts failed", "error", err)
		}
	}
	if p := c.srv.prompts.Get(media.PromptPleaseHold); p != nil {
		return p
	}
	return c.srv.prompts.Get(media.PromptTransferring)
}

// attachLeg makes leg the call's outbound leg; false when the call is ending.
func (c *call) attachLeg(leg *outLeg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		return false
	}
	c.out = leg
	return true
}

func (c *call) detachLeg(leg *outLeg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == leg {
		c.out = nil
		c.bridged = false
	}
}

// endTransfer runs in end(): an answered outbound leg gets its BYE now (BYE before
// media); a ringing one is cancelled by the transfer itself, which sees the call's
// context end (only one reader may follow the INVITE transaction).
func (c *call) endTransfer() {
	c.mu.Lock()
	leg := c.out
	c.mu.Unlock()
	if leg == nil {
		return
	}
	leg.mu.Lock()
	answered := leg.state == legAnswered
	leg.mu.Unlock()
	if answered {
		leg.hangup()
	}
}

// notifyHold tells a running bridge that the caller put the call on hold or
// resumed it (reinvite.go); c.mu is held.
func (c *call) notifyHold(hold bool) {
	if !c.bridged {
		return
	}
	select {
	case c.holds <- hold:
	default:
	}
}

// reinviteCaller reflects the callee's hold (our direction sendonly) or resume
// (sendrecv) to the caller with a re-INVITE in the caller's dialog (RFC 3264 §8.4)
// and ACKs its 2xx.
func (c *call) reinviteCaller(ctx context.Context, hold bool) {
	c.mu.Lock()
	dlg, target := c.dlg, c.remoteTarget
	if dlg == nil || c.ending {
		c.mu.Unlock()
		return
	}
	if target == nil {
		target = dlg.InviteRequest.Contact().Address.Clone()
	}
	dir := media.DirSendRecv
	if hold {
		dir = media.DirSendOnly
	}
	c.local.Direction = dir
	c.local.Version++
	body := media.BuildSDP(c.local)
	c.mu.Unlock()
	req := gosip.NewRequest(gosip.INVITE, *target)
	req.SetTransport(c.transport)
	c.srv.prepareOutgoing(req, c)
	req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	rctx, cancel := context.WithTimeout(ctx, byeTimeout)
	defer cancel()
	tx, err := dlg.TransactionRequest(rctx, req)
	if err != nil {
		c.log.Info("hold re-invite to caller failed", "error", err)
		return
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if res.IsSuccess() {
				ack := gosip.NewRequest(gosip.ACK, *target)
				ack.SetTransport(c.transport)
				c.srv.prepareOutgoing(ack, c)
				ack.AppendHeader(&gosip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: gosip.ACK})
				ack.SetBody(nil)
				if err := dlg.WriteRequest(ack); err != nil {
					c.log.Info("ack to caller failed", "error", err)
				}
			}
			c.log.Info("hold reflected to caller", "hold", hold, "status", res.StatusCode)
			return
		case <-tx.Done():
			return
		case <-rctx.Done():
			return
		}
	}
}
