package sip

import (
	"context"
	"errors"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// defaultWhisper is said to the callee when the rule has no whisper of its own.
const defaultWhisper = "Call from {caller_name}, matter {matter}."

// maxWarmTries bounds the outbound calls one call may place: a caller who keeps
// pressing the menu key of a failing transfer gets the unavailable handling.
const maxWarmTries = 3

// warm runs a warm transfer (full) or the bridged fallback of a failed REFER
// (!full: no whisper, no accept digit): INVITE the destination while the caller
// hears ringback (or the destination's early media), then whisper, wait for the
// accept digit, and bridge the media. It returns true when the call left the menu
// (bridged and since ended, or the caller hung up); false when the destination
// could not be reached (the outcome says why) and the unavailable handling
// follows.
func (c *call) warm(dec routing.Decision, full, withMessage bool) bool {
	callerSess := c.session()
	if callerSess == nil {
		return true
	}
	if c.warmTries >= maxWarmTries {
		c.log.Warn("outbound call not placed: too many attempts on this call", "rule", dec.Rule, "attempts", c.warmTries)
		c.setOutcome(records.OutcomeFailed)
		return false
	}
	c.warmTries++
	leg, err := c.dialOut(dec)
	if err != nil {
		c.log.Warn("outbound call not placed", "rule", dec.Rule, "error", err)
		c.setOutcome(records.OutcomeFailed)
		return false
	}
	c.out = leg
	fail := func(o records.Outcome) bool {
		c.stopRingback()
		c.dropLeg()
		// The caller hears the rule's message to its end before what comes
		// next (unavailable handling, a fallback rule).
		c.finishMessage()
		if c.ending() {
			c.setOutcome(records.OutcomeAbandoned)
			return true
		}
		c.setOutcome(o)
		return false
	}

	// The INVITE is out: the caller hears the rule's message meanwhile, then
	// ringback (or the destination's early media).
	if withMessage {
		c.startMessage(dec, leg)
	} else {
		c.startRingback()
	}
	ring := routing.DefaultRingTimeout
	if dec.Def != nil && dec.Def.RingTimeout > 0 {
		ring = dec.Def.RingTimeout
	}
	switch res := c.waitAnswer(leg, ring); res {
	case answerOK:
	case answerBusy:
		return fail(records.OutcomeBusy)
	case answerDeclined:
		return fail(records.OutcomeDeclined)
	case answerNoAnswer:
		return fail(records.OutcomeNoAnswer)
	case answerAbandoned:
		return fail(records.OutcomeAbandoned)
	default:
		return fail(records.OutcomeFailed)
	}

	// The whisper waits for the end of the caller's message.
	if !c.waitMessage(leg) {
		return fail(records.OutcomeDeclined)
	}
	if full && !c.whisperAndAccept(leg, dec) {
		c.log.Info("callee did not accept", "rule", dec.Rule)
		return fail(records.OutcomeDeclined)
	}
	c.stopRingback()
	bctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	br, err := media.NewBridge(bctx, callerSess, leg.sess, media.BridgeOptions{Logger: c.log})
	cancel()
	if err != nil {
		c.log.Warn("bridge failed", "error", err)
		return fail(records.OutcomeFailed)
	}
	defer br.Stop()
	c.setOutcome(records.OutcomeBridged)
	leg.bridged, c.in.bridged = true, true
	c.setState(StateBridged)
	c.log.Info("bridged", "rule", dec.Rule, "caller_codec", callerSess.Codec().Name, "callee_codec", leg.sess.Codec().Name)
	// A hold that started before the bridge is reflected now.
	if c.in.peerHeld {
		c.reflectHold(&leg.side, true)
	}
	if leg.peerHeld {
		c.reflectHold(&c.in.side, true)
	}
	for {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case ev := <-leg.inbox:
			c.handleLeg(leg, ev)
		case <-leg.sess.Timeout():
			c.log.Info("callee rtp inactivity timeout")
			c.finish(EndRTPTimeout)
		case <-br.Done():
			c.finish(EndError)
		case <-c.ctx.Done():
			return true // teardown hangs up the leg
		}
	}
}

// waitAnswer follows the leg's INVITE until its final response, the ring timeout
// or the caller leaving; provisional responses, challenges and early media are
// handled on the way (onInviteResponse).
func (c *call) waitAnswer(leg *outLeg, ring time.Duration) answerResult {
	timer := time.NewTimer(ring)
	defer timer.Stop()
	for {
		select {
		case <-c.msgDone:
			c.messageEnded(leg)
		case ev := <-c.events:
			c.handle(ev)
		case ev := <-leg.inbox:
			switch e := ev.(type) {
			case responseEvent:
				if e.tx == leg.inv && !leg.final {
					if res, done := leg.onInviteResponse(c, e.res); done {
						return res
					}
					continue
				}
			case txDoneEvent:
				if e.tx == leg.inv && !leg.final {
					leg.final = true
					leg.log.Info("outbound invite failed", "error", e.err)
					return answerFailed
				}
			}
			c.handleLeg(leg, ev)
		case <-timer.C:
			leg.log.Info("ring timeout", "after", ring)
			return answerNoAnswer
		case <-c.ctx.Done():
			return answerAbandoned
		}
	}
}

// startMessage plays the rule's message to the caller (its text spoken, else
// its audio file, else the built-in "transferring" prompt) on its own goroutine
// while the outbound leg rings; msgDone closes when it ends.
func (c *call) startMessage(dec routing.Decision, leg *outLeg) {
	sess := c.session()
	if sess == nil {
		c.startRingback()
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	def := dec.Def
	c.srv.goTracked(func() {
		defer close(done)
		p := c.ruleMessage(def, func(text string) (*media.Prompt, error) { return c.srv.tts.Render(ctx, text) })
		if p == nil {
			p = c.srv.prompts.Get(media.PromptTransferring)
		}
		if p != nil {
			_ = sess.Play(ctx, p)
		}
	})
	c.msgDone = done
	c.msgStop = func() {
		cancel()
		<-done
	}
}

// messageEnded follows the end of the rule's message while the leg rings: the
// destination's early media if it sent some meanwhile, else ringback.
func (c *call) messageEnded(leg *outLeg) {
	c.msgDone, c.msgStop = nil, nil
	if leg.earlyWaits && !leg.final {
		leg.relayEarly(c)
		return
	}
	c.startRingback()
}

// waitMessage waits, serving events, until the rule's message has ended; false
// when the callee or the caller left meanwhile.
func (c *call) waitMessage(leg *outLeg) bool {
	for c.msgDone != nil {
		select {
		case <-c.msgDone:
			c.msgDone, c.msgStop = nil, nil
			leg.earlyWaits = false
			// Ringback while the callee hears the whisper.
			c.startRingback()
		case ev := <-c.events:
			c.handle(ev)
		case ev := <-leg.inbox:
			c.handleLeg(leg, ev)
			if leg.gone {
				return false
			}
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// finishMessage waits, serving events, until the rule's message has ended (cut
// short when the call ends meanwhile).
func (c *call) finishMessage() {
	for c.msgDone != nil {
		select {
		case <-c.msgDone:
		case ev := <-c.events:
			c.handle(ev)
			continue
		case <-c.ctx.Done():
			c.msgStop()
		}
		c.msgDone, c.msgStop = nil, nil
	}
}

// dropLeg lets go of the outbound leg: BYE when answered, else its reaper
// cancels it.
func (c *call) dropLeg() {
	if c.out == nil {
		return
	}
	leg := c.out
	c.out = nil
	if c.in != nil {
		c.in.bridged = false
	}
	leg.hangup(c)
}

// startRingback plays ringback to the caller until stopRingback.
func (c *call) startRingback() {
	sess := c.session()
	if sess == nil || c.ringStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	c.srv.goTracked(func() {
		defer close(done)
		_ = sess.PlayLoop(ctx, media.Ringback(0))
	})
	c.ringStop = func() {
		cancel()
		<-done
	}
}

func (c *call) stopRingback() {
	if c.ringStop != nil {
		c.ringStop()
		c.ringStop = nil
	}
}

// whisperAndAccept whispers to the callee (the rule's template, rendered with the
// caller's name and matter number, spoken by TTS; else a built-in prompt) and, when
// the rule has an accept digit, waits for it (RFC 4733 or INFO) until
// Config.AcceptTimeout after the whisper. Another digit, the timeout or the
// callee's BYE is a decline.
func (c *call) whisperAndAccept(leg *outLeg, dec routing.Decision) bool {
	sess := leg.sess
	accept := ""
	if dec.Def != nil {
		accept = dec.Def.AcceptDigit
	}
	prompt := c.whisperPrompt(dec)
	playCtx, stopPlay := context.WithCancel(c.ctx)
	played := make(chan struct{})
	c.srv.goTracked(func() {
		defer close(played)
		if prompt != nil {
			_ = sess.Play(playCtx, prompt)
		}
	})
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
			accepted := string(d.Key) == accept
			// Digits may be PINs: the digit itself only at debug.
			c.log.Debug("callee pressed", "digit", string(d.Key))
			c.log.Info("callee answered the whisper", "accepted", accepted, "source", d.Source)
			return accepted
		case <-timeout:
			c.log.Info("no accept digit from the callee", "after", c.srv.cfg.AcceptTimeout)
			return false
		case ev := <-c.events:
			c.handle(ev)
		case ev := <-leg.inbox:
			c.handleLeg(leg, ev)
			if leg.gone {
				return false
			}
		case <-sess.Done():
			return false
		case <-c.ctx.Done():
			return false
		}
	}
}

func (c *call) whisperPrompt(dec routing.Decision) *media.Prompt {
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
		p, err := c.speak(routing.RenderWhisper(tmpl, name, matter))
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
