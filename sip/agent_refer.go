package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/routing"
)

// ErrAgentRefused: a transfer the agent asked for is not one the rules allow
// (REFER answered 403).
var ErrAgentRefused = errors.New("sip: agent transfer refused")

// DestinationMatcher is optionally implemented by a Router: the rule whose
// destination is number (normalized), so that an agent's REFER to that number
// becomes rule:NAME. Without it, only rule-NAME, staff-NAME and extensions are
// accepted from the agent.
type DestinationMatcher interface {
	RuleForDestination(ctx context.Context, number string) (rule string, ok bool)
}

// agentReleaseWait bounds how long the agent leg waits for the outcome of the
// transfer it asked for before its final NOTIFY (a warm transfer's ring timeout,
// the rule's message, a cold REFER's NOTIFYs).
const agentReleaseWait = 3 * time.Minute

// agentRefer is an accepted REFER of the agent.
type agentRefer struct {
	intent routing.Intent
	dec    routing.Decision
	subID  uint32 // the REFER's CSeq: the NOTIFYs' Event id (RFC 3515 §2.4.6)
}

// onAgentRefer serves a REFER from the agent leg (RFC 3515): the dialog and
// source checks every request of the leg goes through (a stranger gets 403),
// then the Refer-To must name something the rules allow (agentIntent) and the
// router must decide a transfer or an unavailable rule for it: 202. Anything
// else gets 403 and a log line; the caller stays with the agent.
func (c *call) onAgentRefer(l *outLeg, ev *reqEvent) (agentRefer, bool) {
	req := ev.req
	if l.gone || l.dlg.remoteTag == "" || !l.dlg.matches(req) {
		ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
		return agentRefer{}, false
	}
	if !c.admitInDialog(&l.side, ev) {
		return agentRefer{}, false
	}
	target := firstValue(headerValues(req, "Refer-To", "r"))
	intent, dec, err := c.agentIntent(l, target)
	if err != nil {
		l.log.Warn("agent refer refused", "refer_to", maskTarget(target), "error", err)
		ev.reply(c.srv, 403, "Forbidden")
		return agentRefer{}, false
	}
	ev.reply(c.srv, 202, "Accepted")
	l.log.Info("agent refer accepted", "intent", intent.String(), "action", dec.Action.String(), "rule", dec.Rule)
	return agentRefer{intent: intent, dec: dec, subID: req.CSeq().SeqNo}, true
}

// agentIntent turns what the agent asked for into an intent and its decision.
// target is a Refer-To value (<sip:rule-felix@our-host>, tel:+1...) or, from a
// stream agent (l nil), also a bare user part. Accepted user parts:
// rule-NAME (percent-decoded, names may contain spaces), staff-NAME, an
// extension of a rule, or a number equal to a rule's destination. A SIP URI must
// name one of our addresses. The decision must be a transfer or an unavailable
// rule; none (no such rule, disabled, not allowed) is refused.
func (c *call) agentIntent(l *outLeg, target string) (routing.Intent, routing.Decision, error) {
	user, err := c.agentTargetUser(l, target)
	if err != nil {
		return routing.Intent{}, routing.Decision{}, err
	}
	if c.srv.router == nil {
		return routing.Intent{}, routing.Decision{}, fmt.Errorf("%w: no router", ErrAgentRefused)
	}
	ctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
	defer cancel()
	var intents []routing.Intent
	lower := strings.ToLower(user)
	switch {
	case strings.HasPrefix(lower, "rule-") && len(user) > 5:
		intents = append(intents, routing.Intent{Kind: routing.IntentRule, Arg: user[5:]})
	case strings.HasPrefix(lower, "staff-") && len(user) > 6:
		intents = append(intents, routing.Intent{Kind: routing.IntentStaff, Arg: user[6:]})
	default:
		n := routing.NormalizeNumber(user)
		kind, err := routing.DestinationKindOf(n)
		if err != nil || !kind.IsNumber() {
			return routing.Intent{}, routing.Decision{}, fmt.Errorf("%w: not a rule, staff member, extension or number", ErrAgentRefused)
		}
		if el, ok := c.srv.router.(ExtensionLister); ok && slices.Contains(el.Extensions(ctx), n) {
			intents = append(intents, routing.Intent{Kind: routing.IntentExtension, Arg: n})
		}
		if dm, ok := c.srv.router.(DestinationMatcher); ok {
			if rule, ok := dm.RuleForDestination(ctx, n); ok {
				intents = append(intents, routing.Intent{Kind: routing.IntentRule, Arg: rule})
			}
		}
	}
	for _, in := range intents {
		dec := c.decide(ctx, c.srv.router, in)
		if dec.Action == routing.ActionTransfer || dec.Action == routing.ActionUnavailable {
			return in, dec, nil
		}
	}
	if len(intents) == 0 {
		return routing.Intent{}, routing.Decision{}, fmt.Errorf("%w: no rule has that destination or extension", ErrAgentRefused)
	}
	return routing.Intent{}, routing.Decision{}, fmt.Errorf("%w: routing decided none for %s", ErrAgentRefused, intents[0])
}

// agentTargetUser reads the user part of target: a sip:/sips: URI whose host is
// ours, a tel: URI, or (stream agents only) a bare user part.
func (c *call) agentTargetUser(l *outLeg, target string) (string, error) {
	t := strings.TrimSpace(target)
	if i := strings.IndexByte(t, '<'); i >= 0 {
		j := strings.IndexByte(t[i:], '>')
		if j < 0 {
			return "", fmt.Errorf("%w: unterminated refer-to", ErrAgentRefused)
		}
		t = t[i+1 : i+j]
	}
	if t == "" || len(t) > 512 {
		return "", fmt.Errorf("%w: empty or oversized target", ErrAgentRefused)
	}
	lower := strings.ToLower(t)
	var user string
	switch {
	case strings.HasPrefix(lower, "tel:"):
		user, _, _ = strings.Cut(t[4:], ";")
	case strings.HasPrefix(lower, "sip:"), strings.HasPrefix(lower, "sips:"):
		var u gosip.Uri
		if err := gosip.ParseUri(t, &u); err != nil || u.User == "" {
			return "", fmt.Errorf("%w: unreadable sip uri", ErrAgentRefused)
		}
		if !c.ourHost(l, u.Host) {
			return "", fmt.Errorf("%w: uri names another host", ErrAgentRefused)
		}
		if u.Headers != nil && u.Headers.Length() > 0 {
			return "", fmt.Errorf("%w: uri with headers", ErrAgentRefused)
		}
		user = u.User
	case l == nil && !strings.ContainsAny(t, ":@<>"):
		user = t
	default:
		return "", fmt.Errorf("%w: not a sip:, sips: or tel: uri", ErrAgentRefused)
	}
	dec, err := url.PathUnescape(user)
	if err != nil {
		return "", fmt.Errorf("%w: bad percent-encoding", ErrAgentRefused)
	}
	if dec != agentValue(dec) || dec == "" {
		return "", fmt.Errorf("%w: control characters in the user part", ErrAgentRefused)
	}
	return dec, nil
}

// ourHost reports whether host (of a Refer-To) is one of our addresses: the one
// the agent leg uses (advertised or bound), the external IP, or a listener's.
func (c *call) ourHost(l *outLeg, host string) bool {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false // names are not ours: we advertise addresses
	}
	a = a.Unmap()
	cands := []netip.Addr{c.advertise, c.laddr.Addr(), c.srv.cfg.ExternalIP}
	if l != nil {
		cands = append(cands, l.dlg.advertise, l.dlg.laddr.Addr())
	}
	for _, o := range cands {
		if o.IsValid() && o.Unmap() == a {
			return true
		}
	}
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		if ln.addr.Addr().Unmap() == a {
			return true
		}
	}
	return false
}

// maskTarget renders a refused Refer-To for the log: numbers masked.
func maskTarget(target string) string {
	v := agentValue(target)
	var digits int
	for _, r := range v {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits >= 5 {
		return "***" + strconv.Itoa(digits) + " digits"
	}
	return v
}

// detachAgent lets go of the agent leg after an accepted transfer: its releaser
// (a goroutine that owns the leg from now on) sends NOTIFY "SIP/2.0 100 Trying"
// in the REFER's subscription (subID 0: no REFER, no NOTIFY), waits for the
// code the returned report gives (the transfer's outcome), sends it as the final
// NOTIFY (Subscription-State terminated) and BYE, then frees the leg.
func (c *call) detachAgent(l *outLeg, subID uint32) (report func(int)) {
	if c.out == l {
		c.out = nil
	}
	l.bridged = false
	l.call = nil
	final := make(chan int, 1)
	report = func(code int) {
		select {
		case final <- code:
		default:
		}
	}
	done := c.done
	if !c.srv.spawn(func() { l.endAgent(subID, final, done) }) {
		l.release()
	}
	return report
}

// endAgent runs on the agent leg's releaser (detachAgent).
func (l *outLeg) endAgent(subID uint32, final <-chan int, callDone <-chan struct{}) {
	defer l.release()
	if subID != 0 {
		l.notifyRefer(subID, 100, false)
		code := 0
		wait := time.NewTimer(agentReleaseWait)
		defer wait.Stop()
		for code == 0 {
			select {
			case code = <-final:
			case ev := <-l.inbox:
				l.serveReleased(ev)
			case <-callDone:
				select {
				case code = <-final:
				default:
					code = 487
				}
			case <-wait.C:
				code = 408
			case <-l.srv.closing:
				code = 503
			}
		}
		l.notifyRefer(subID, code, true)
	}
	if !l.gone && !l.dlg.ended {
		bye := l.dlg.request(gosip.BYE)
		l.dlg.ended = true
		if _, err := l.srv.roundTrip(bye, byeTimeout); err != nil {
			l.log.Info("bye to the agent failed", "error", err)
		}
	}
	l.log.Info("agent leg released")
}

// serveReleased answers a request of the agent while its leg is being
// released: BYE 200 (nothing more is sent but the NOTIFYs), others 481.
func (l *outLeg) serveReleased(ev event) {
	r, ok := ev.(*reqEvent)
	if !ok {
		return
	}
	if r.req.Method == gosip.BYE && l.dlg.matches(r.req) {
		l.gone = true
		r.reply(l.srv, 200, "OK")
		return
	}
	r.reply(l.srv, 481, "Call/Transaction Does Not Exist")
}

// notifyRefer sends a NOTIFY of the agent's REFER subscription (RFC 3515
// §2.4.4-§2.4.5) with a message/sipfrag status line (RFC 3420).
func (l *outLeg) notifyRefer(subID uint32, code int, last bool) {
	if l.dlg.ended {
		return
	}
	req := l.dlg.request(gosip.NOTIFY)
	req.AppendHeader(gosip.NewHeader("Event", "refer;id="+strconv.FormatUint(uint64(subID), 10)))
	state := "active;expires=60"
	if last {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(gosip.NewHeader("Subscription-State", state))
	req.AppendHeader(gosip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, sipfragPhrase(code))))
	if _, err := l.srv.roundTrip(req, byeTimeout); err != nil {
		l.log.Info("notify to the agent failed", "sipfrag", code, "error", err)
		return
	}
	l.log.Info("notify to the agent", "sipfrag", code)
}

func sipfragPhrase(code int) string {
	switch code {
	case 100:
		return "Trying"
	case 200:
		return "OK"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Failed"
}
