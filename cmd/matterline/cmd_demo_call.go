package main

// `matterline demo --call`: the demo with a scripted call through it, for someone
// with no softphone. Two built-in test phones (package phone) play the caller and
// the attorney; every step is printed with its time since the start, and the run
// ends on its own (bounded by demoCallLimit) with exit status 0 only when every
// step happened, including audio both ways through the bridge.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/sip"
)

// The scripted call: who calls (the demo Clio's Ada Quist), who answers (the
// demo rule felix's destination), and the tones the two "voices" play, far apart
// from each other, from ringback (440+480 Hz) and from the hold music's notes.
const (
	demoCaller        = "+12175552171"
	demoCallerName    = "Ada Quist"
	demoAttorney      = "+12175550101"
	demoAcceptDigit   = '1'
	demoMenuDigit     = '1'
	demoCallerVoiceHz = 1500
	demoAttorneyHz    = 820
	// demoCallLimit bounds the whole run; demoStepLimit each wait of the script.
	demoCallLimit = 60 * time.Second
	demoStepLimit = 15 * time.Second
	// demoRingDelay is how long the attorney's phone rings before it answers.
	demoRingDelay = time.Second
)

// demoCall runs the demo server with the attorney's phone at its outbound proxy,
// places the scripted call, prints each step, and stops. cfg is the demo
// configuration (demoConfig) and dir its throw-away directory.
func demoCall(ctx context.Context, s stdio, cfg *config.Config, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, demoCallLimit)
	defer cancel()
	p := &stepPrinter{w: s.out, start: time.Now()}

	st, err := openDemoStage(dir, cfg)
	if err != nil {
		return err
	}
	defer st.close()
	if err := st.start(ctx, cfg, p); err != nil {
		return err
	}
	a, caller, attorney := st.a, st.caller, st.attorney
	p.step("matterline", "demo server up: SIP %s, HTTP %s, sandbox Clio, sample rules", strings.Join(a.sip.Addrs(), " "), a.HTTPAddr())
	p.step("attorney", "phone of Felix Dubinsky (%s) listening on %s, the outbound proxy", demoAttorney, attorney.Addr())

	sc := &demoScript{p: p, a: a, caller: caller, attorney: attorney}
	runErr := sc.run(ctx)
	if runErr == nil {
		runErr = showDemoCalls(ctx, p, cfg, dir, a)
	}

	return st.finish(s, p, runErr, "demo call OK: "+sc.summary)
}

// showDemoCalls writes the demo's configuration file, as plain `matterline demo`
// does, and lists the last call with `matterline calls` and that file while the
// server still runs: what an admin would see from another terminal.
func showDemoCalls(ctx context.Context, p *stepPrinter, cfg *config.Config, dir string, a *app) error {
	pg, err := newPlayground(cfg, dir, a.sip.Addrs(), a.HTTPAddr())
	if err != nil {
		return &stepError{step: "matterline calls", err: err}
	}
	args := []string{"calls", "--limit", "1", "-config", pg.configPath}
	var out, errb bytes.Buffer
	if code := runWith(ctx, args, stdio{&out, &errb}, discovery{}); code != 0 {
		return &stepError{step: "matterline calls", err: fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(errb.String()))}
	}
	p.step("matterline", "as `matterline %s` lists it with the demo's configuration file:", strings.Join(args[:3], " "))
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		p.step("matterline", "  %s", l)
	}
	return nil
}

// stepError names the step of the script that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string {
	return fmt.Sprintf("demo call failed at step %q: %v", e.step, e.err)
}
func (e *stepError) Unwrap() error { return e.err }

// demoScript is one scripted call, step by step.
type demoScript struct {
	p        *stepPrinter
	a        *app
	caller   *phone.Caller
	attorney *phone.Callee
	summary  string
}

func (sc *demoScript) run(ctx context.Context) error {
	p := sc.p
	fail := func(step string, err error) error { return &stepError{step: step, err: err} }
	target := "sip:demo@" + strings.TrimPrefix(sc.a.sip.Addrs()[0], "udp://")

	// 1. The call is answered.
	dctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	call, err := sc.caller.Dial(dctx, target, phone.DialOptions{})
	cancel()
	if err != nil {
		return fail("call answered", err)
	}
	defer func() { _ = call.Hangup(context.WithoutCancel(ctx)) }()

	// 2. The lookup result, as the server's call registry holds it.
	snap, err := waitLookup(ctx, sc.a.sip.Registry(), call.ID())
	if err != nil {
		return fail("lookup", err)
	}
	res := snap.Lookup
	if res.Status != lookup.StatusFound || res.Contact == nil || res.Matter == nil || res.Staff == nil {
		return fail("lookup", fmt.Errorf("caller not recognised: status %s %s", res.Status, res.Reason))
	}
	p.step("matterline", "lookup: found %s (Clio contact %d), matter %s, responsible staff %s",
		res.Contact.Name, res.Contact.ID, res.Matter.DisplayNumber, res.Staff.Name)

	// 3. The greeting, then the caller presses 1 for the attorney.
	h, err := listen(ctx, call, phone.Sound{For: time.Second})
	if err != nil {
		return fail("greeting heard", err)
	}
	p.stepAt(h.Last, "caller", "greeting heard (%s of speech, %.0f dBFS)", h.Duration(), h.Level)
	pressed := time.Now()
	if err := call.SendDTMF(ctx, demoMenuDigit); err != nil {
		return fail("caller presses 1", err)
	}
	// The caller talks from now on; the attorney must hear it only once bridged.
	if err := call.StartVoice(demoCallerVoiceHz); err != nil {
		return fail("caller presses 1", err)
	}

	// 4. The message before the transfer: a new prompt after the digit.
	h, err = listen(ctx, call, phone.Sound{NewTalkspurt: true, Since: pressed, For: 700 * time.Millisecond})
	if err != nil {
		return fail("message before transfer heard", err)
	}
	p.stepAt(h.Last, "caller", "message before transfer heard (%s of speech)", h.Duration())

	// Ringback while the attorney's phone rings (reported when heard).
	ringCtx, stopRing := context.WithCancel(ctx)
	ringDone := make(chan struct{})
	go func() {
		defer close(ringDone)
		if h, err := call.Listen(ringCtx, phone.Sound{Tones: []float64{440, 480}, For: 300 * time.Millisecond}); err == nil {
			p.stepAt(h.Last, "caller", "hears ringback (440+480 Hz)")
		}
	}()
	defer func() {
		stopRing()
		<-ringDone
	}()

	// 5. The attorney's phone rings and answers; the attorney hears the whisper.
	actx, cancel := context.WithTimeout(ctx, demoStepLimit)
	leg, err := sc.attorney.Next(actx)
	cancel()
	if err != nil {
		return fail("attorney's phone rings", err)
	}
	defer func() { _ = leg.Hangup(context.WithoutCancel(ctx)) }()
	if info := leg.Info(); info.From != demoCaller && info.PAssertedIdentity != demoCaller {
		return fail("attorney's phone rings", fmt.Errorf("caller id %q (P-Asserted-Identity %q), want %s",
			info.From, info.PAssertedIdentity, demoCaller))
	}
	h, err = listen(ctx, leg, phone.Sound{For: time.Second})
	if err != nil {
		return fail("attorney hears the whisper", err)
	}
	const pause = 400 * time.Millisecond
	qctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	_ = leg.WaitQuiet(qctx, pause) // let the whisper finish
	cancel()
	p.step("attorney", "whisper heard (%.1fs of speech, %.0f dBFS)", (time.Since(h.First) - pause).Seconds(), h.Level)

	// 6. The attorney accepts and talks.
	if err := leg.SendDTMF(ctx, demoAcceptDigit); err != nil {
		return fail("attorney presses 1", err)
	}
	if err := leg.StartVoice(demoAttorneyHz); err != nil {
		return fail("attorney presses 1", err)
	}

	// 7. Bridged: each hears the other's tone.
	hCaller, hAttorney, errCaller, errAttorney := hearEachOther(ctx, call, leg)
	stopRing()
	if errCaller != nil {
		return fail("caller hears the attorney", errCaller)
	}
	if errAttorney != nil {
		return fail("attorney hears the caller", errAttorney)
	}
	heard := []func(){
		func() {
			p.stepAt(hCaller.First, "caller", "bridged: caller hears the attorney (%d Hz tone, purity %.2f, %.0f dBFS)",
				demoAttorneyHz, hCaller.Purity, hCaller.Level)
		},
		func() {
			p.stepAt(hAttorney.First, "attorney", "bridged: attorney hears the caller (%d Hz tone, purity %.2f, %.0f dBFS)",
				demoCallerVoiceHz, hAttorney.Purity, hAttorney.Level)
		},
	}
	if hAttorney.First.Before(hCaller.First) {
		heard[0], heard[1] = heard[1], heard[0]
	}
	for _, f := range heard {
		f()
	}

	// 8. The caller hangs up; the bridge ends the attorney's leg too.
	talk := 800 * time.Millisecond
	select {
	case <-time.After(talk):
	case <-ctx.Done():
		return fail("caller hangs up", ctx.Err())
	}
	callerStats := call.Stats()
	if err := call.Hangup(ctx); err != nil {
		return fail("caller hangs up", err)
	}
	select {
	case <-leg.Done():
	case <-time.After(5 * time.Second):
		return fail("attorney's call ends", errors.New("no BYE reached the attorney's phone within 5s"))
	case <-ctx.Done():
		return fail("attorney's call ends", ctx.Err())
	}

	// 9. The call record.
	rec, err := waitRecord(ctx, sc.a.calls, call.ID())
	if err != nil {
		return fail("call record written", err)
	}
	p.step("matterline", "call record: outcome %s, rule %s (%s) to %s, lookup %s, ended %s, %s long",
		rec.Outcome, rec.Rule, rec.Mode, rec.Destination, rec.Lookup, rec.EndReason,
		rec.End.Sub(rec.Start).Round(time.Millisecond))
	if rec.Outcome != records.OutcomeBridged {
		return fail("call record written", fmt.Errorf("outcome %s, want bridged", rec.Outcome))
	}
	sc.summary = fmt.Sprintf("answered, %s found, warm transfer to %s accepted, audio both ways (RTP caller in %d / out %d packets) in %s",
		res.Contact.Name, res.Staff.Name, callerStats.PacketsIn, callerStats.PacketsOut, p.since(time.Now()))
	return nil
}

// listen is one listening step of the script, bounded by demoStepLimit.
func listen(ctx context.Context, c *phone.Call, s phone.Sound) (phone.Heard, error) {
	ctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	defer cancel()
	return c.Listen(ctx, s)
}

// hearEachOther listens on both ends of a bridged demo call at once: the
// caller for the attorney's tone, the attorney for the caller's.
func hearEachOther(ctx context.Context, call, leg *phone.Call) (hCaller, hAttorney phone.Heard, errCaller, errAttorney error) {
	ctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		hCaller, errCaller = call.Listen(ctx, phone.Sound{Tones: []float64{demoAttorneyHz}, For: 600 * time.Millisecond})
	}()
	go func() {
		defer wg.Done()
		hAttorney, errAttorney = leg.Listen(ctx, phone.Sound{Tones: []float64{demoCallerVoiceHz}, For: 600 * time.Millisecond})
	}()
	wg.Wait()
	return hCaller, hAttorney, errCaller, errAttorney
}

// waitLookup waits until the server's registry has the lookup result of the call
// with SIP Call-ID sipCallID.
func waitLookup(ctx context.Context, reg *sip.Registry, sipCallID string) (sip.CallSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		for _, s := range reg.List() {
			if s.SIPCallID == sipCallID && s.LookupDone {
				return s, nil
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return sip.CallSnapshot{}, fmt.Errorf("no lookup result for the call: %w", ctx.Err())
		}
	}
}

// waitIdle waits until the server has no call left, at most d.
func waitIdle(reg *sip.Registry, d time.Duration) {
	deadline := time.Now().Add(d)
	for reg.Count() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRecord waits until the final call record of the SIP Call-ID is stored (not
// the row written at the INVITE, which is in progress).
func waitRecord(ctx context.Context, st *records.CallStore, sipCallID string) (records.CallRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		recs, err := st.List(ctx, records.Filter{Limit: 20})
		if err == nil {
			for _, r := range recs {
				if r.CallID == sipCallID && r.Outcome != records.OutcomeInProgress {
					return r, nil
				}
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return records.CallRecord{}, fmt.Errorf("no call record stored: %w", ctx.Err())
		}
	}
}

// stepPrinter prints one line per step: the time since the start, who, what.
// Safe for concurrent use (the phones report from their own goroutines).
type stepPrinter struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func (p *stepPrinter) since(t time.Time) string {
	return fmt.Sprintf("%.3fs", t.Sub(p.start).Seconds())
}

func (p *stepPrinter) step(who, format string, args ...any) {
	p.stepAt(time.Now(), who, format, args...)
}

func (p *stepPrinter) stepAt(t time.Time, who, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%8s  %-10s %s\n", p.since(t), who, fmt.Sprintf(format, args...))
}

// phoneEvent prints the phones' signalling steps worth showing.
func (p *stepPrinter) phoneEvent(ev phone.Event) {
	var text string
	switch ev.Kind {
	case phone.EventInviteSent:
		text = "INVITE sent " + ev.Detail
	case phone.EventResponse, phone.EventRejected:
		text = ev.Detail
	case phone.EventAnswered:
		text = "call answered: " + ev.Detail
	case phone.EventInviteReceived:
		text = "phone rings: INVITE " + ev.Detail
	case phone.EventAnswerSent:
		text = "answers: " + ev.Detail
	case phone.EventDTMFSent:
		text = "presses " + ev.Detail
	case phone.EventByeSent:
		text = "hangs up: BYE sent"
	case phone.EventByeReceived:
		text = "BYE received, " + ev.Detail
	case phone.EventRefer, phone.EventReinvite, phone.EventCancelled:
		text = ev.Detail
	default:
		return
	}
	p.stepAt(ev.Time, ev.Phone, "%s", text)
}

// showLogTail writes the last n lines of the server log to w.
func showLogTail(w io.Writer, path string, n int) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	fmt.Fprintf(w, "last lines of the server log:\n%s\n", strings.Join(lines, "\n"))
}
