package sip

import (
	"context"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// routerTimeout bounds one routing decision.
const routerTimeout = 2 * time.Second

// run is the call's life after the ACK: the watcher (RTP inactivity, session timer)
// and the menu on this goroutine.
func (c *call) run() {
	c.mu.Lock()
	c.flowActive = true
	c.mu.Unlock()
	defer c.flowDone()
	c.setState(StateInMenu)
	if !c.srv.spawn(c.watch) {
		c.end(EndShutdown, true)
		return
	}
	c.menu()
}

func (c *call) session() *media.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// watch ends the call on RTP inactivity (media suspends it while held) and on
// RFC 4028 session expiry without refresh.
func (c *call) watch() {
	sess := c.session()
	if sess == nil {
		return
	}
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	if iv := c.sessionInterval(); iv > 0 {
		expiry.Reset(expireAfter(iv))
	}
	for {
		select {
		case <-c.quit:
			return
		case <-sess.Timeout():
			c.log.Info("rtp inactivity timeout")
			c.end(EndRTPTimeout, true)
			return
		case <-c.refresh:
			expiry.Stop()
			if iv := c.sessionInterval(); iv > 0 {
				expiry.Reset(expireAfter(iv))
			}
		case <-expiry.C:
			c.log.Info("session expired without refresh")
			c.end(EndSessionExpired, true)
			return
		case <-sess.Done():
			c.end(EndError, true)
			return
		}
	}
}

// promptResult is how a prompt with digit collection ended.
type promptResult uint8

const (
	promptUnknown  promptResult = iota
	promptDigit                 // a digit arrived (barge-in or after the prompt)
	promptSilence               // MenuTimeout passed after the prompts without a digit
	promptGone                  // the call or its media ended
	promptInjected              // an intent arrived from Server.Transfer
)

// menu plays the greeting and serves digits: a mapped digit becomes an intent for
// the router; an unmapped one plays "invalid" and the menu again; MenuAttempts
// failures (unmapped digits or silences) end with goodbye and BYE.
func (c *call) menu() {
	ctx, cancel := c.quitContext()
	defer cancel()
	cfg := &c.srv.cfg
	failures := 0
	next := []string{media.PromptGreeting}
	for {
		d, res := c.prompt(ctx, next, cfg.MenuTimeout)
		next = []string{media.PromptGreeting}
		switch res {
		case promptGone:
			return
		case promptSilence:
			failures++
			c.log.Info("menu silence", "failures", failures)
		case promptInjected:
			c.mu.Lock()
			in := c.pending
			c.mu.Unlock()
			c.log.Info("intent from the api", "intent", in.intent.String())
			f := c.serveDecided(ctx, in.intent, in.dec)
			if f.left {
				return
			}
			next = f.next
			continue
		case promptDigit:
			intent, ok := c.collectIntent(ctx, d)
			if ctx.Err() != nil {
				return
			}
			if !ok {
				failures++
				c.log.Info("menu input not mapped", "digit", string(d.Key), "source", d.Source, "failures", failures)
				next = []string{media.PromptInvalid, media.PromptGreeting}
				break
			}
			c.log.Info("menu intent", "digit", string(d.Key), "source", d.Source, "intent", intent.String())
			c.notifyIntent(intent, menuIntentSource(intent))
			left, prompts := c.serveIntent(ctx, intent)
			if left {
				return
			}
			next = prompts
			continue
		}
		if failures >= cfg.MenuAttempts {
			c.log.Info("menu attempts exhausted")
			if p := c.srv.prompts.Get(media.PromptGoodbye); p != nil {
				if sess := c.session(); sess != nil {
					_ = sess.Play(ctx, p)
				}
			}
			c.end(EndMenuGoodbye, true)
			return
		}
	}
}

// prompt plays names in order while collecting one digit: a digit pressed during a
// prompt interrupts it (barge-in). The first digit is not read before the lookup
// result is attached or the lookup gave up. After the prompts, it waits up to
// silence for a digit.
func (c *call) prompt(ctx context.Context, names []string, silence time.Duration) (media.Digit, promptResult) {
	sess := c.session()
	if sess == nil {
		return media.Digit{}, promptGone
	}
	playCtx, stopPlay := context.WithCancel(ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		for _, n := range names {
			p := c.srv.prompts.Get(n)
			if p == nil {
				c.log.Warn("prompt missing", "prompt", n)
				continue
			}
			if err := sess.Play(playCtx, p); err != nil {
				return
			}
		}
	}()
	defer func() {
		stopPlay()
		<-played
	}()

	if !c.waitLookup(ctx) {
		return media.Digit{}, promptGone
	}
	dtmf := sess.DTMF()
	playing := (<-chan struct{})(played)
	var quiet <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return media.Digit{}, promptGone
		case <-sess.Done():
			return media.Digit{}, promptGone
		case d, ok := <-dtmf:
			if !ok {
				return media.Digit{}, promptGone
			}
			c.notifyDTMF(d.Source)
			return d, promptDigit
		case in := <-c.inject:
			c.mu.Lock()
			c.pending = in
			c.mu.Unlock()
			return media.Digit{}, promptInjected
		case <-playing:
			playing = nil
			t := time.NewTimer(silence)
			defer t.Stop()
			quiet = t.C
		case <-quiet:
			return media.Digit{}, promptSilence
		}
	}
}

// waitLookup blocks until the lookup result is in the registry or the lookup gave
// up (it is bounded by LookupTimeout; the extra second guards a Lookup that ignores
// its context). False when the call ends meanwhile.
func (c *call) waitLookup(ctx context.Context) bool {
	select {
	case <-c.lookup:
		return true
	default:
	}
	t := time.NewTimer(c.srv.cfg.LookupTimeout + time.Second)
	defer t.Stop()
	select {
	case <-c.lookup:
		return true
	case <-t.C:
		c.log.Warn("menu stopped waiting for the caller lookup")
		return true
	case <-ctx.Done():
		return false
	}
}

// serveIntent asks the router and executes the decision (execute: transfer,
// unavailable handling, fallbacks); everything that cannot be served plays
// nobody_available (outside_hours when closed) and returns to the menu. left
// reports that the call left the menu.
func (c *call) serveIntent(ctx context.Context, intent routing.Intent) (left bool, next []string) {
	c.mu.Lock()
	c.intents = append(c.intents, intent)
	c.mu.Unlock()
	c.setState(StateRouting)
	defer func() {
		if !left {
			c.setState(StateInMenu)
		}
	}()

	var dec routing.Decision
	if r := c.srv.router; r != nil {
		dctx, cancel := context.WithTimeout(ctx, routerTimeout)
		dec = c.decide(dctx, r, intent)
		cancel()
	}
	c.log.Info("routing decision", "intent", intent.String(), "action", dec.Action.String(),
		"rule", dec.Rule, "mode", dec.Mode.String(), "reason", string(dec.Reason))
	c.notifyDecision(dec)
	if ctx.Err() != nil {
		return true, nil
	}
	f := c.execute(ctx, dec)
	return f.left, f.next
}

// serveDecided executes an intent decided elsewhere (Server.Transfer).
func (c *call) serveDecided(ctx context.Context, intent routing.Intent, dec routing.Decision) flow {
	c.notifyIntent(intent, IntentSourceAPI) // then the decision (observe.go)
	c.notifyDecision(dec)
	c.mu.Lock()
	c.intents = append(c.intents, intent)
	c.mu.Unlock()
	c.setState(StateRouting)
	f := c.execute(ctx, dec)
	if !f.left {
		c.setState(StateInMenu)
	}
	return f
}

func (c *call) decide(ctx context.Context, r Router, intent routing.Intent) (dec routing.Decision) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("router panicked", "panic", p)
			dec = routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonBadIntent}
		}
	}()
	return r.Decide(ctx, c.info(), intent)
}
