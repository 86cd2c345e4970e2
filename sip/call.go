package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// byeTimeout bounds sending our BYE during teardown.
const byeTimeout = 4 * time.Second

// call is one inbound call. Every SIP message of the call is handled on its own
// sipgo goroutine; mu serializes them (SIPGO-NOTES: ACK, BYE and re-INVITE race).
type call struct {
	id     string
	srv    *Server
	log    *slog.Logger
	quit   chan struct{} // closed when teardown starts
	done   chan struct{} // closed when teardown has finished
	lookup chan struct{} // closed when the lookup result is attached (or given up)

	// Set before the call is shared, read-only afterwards.
	sipCallID string
	caller    string
	callee    string
	started   time.Time
	transport string         // "UDP" or "TCP"
	source    string         // transport source of the INVITE (host:port)
	laddr     netip.AddrPort // our listener the INVITE most likely arrived on
	advertise netip.Addr     // address in Contact and SDP
	dialogID  string         // guarded by Registry.mu

	refresh chan struct{} // session refreshes (RFC 4028), buffered 1

	mu         sync.Mutex
	state      CallState
	answered   time.Time
	answeredOK bool // a 2xx to the initial INVITE went out
	confirmed  bool // its ACK arrived
	ending     bool
	byeIn      bool // the caller's BYE arrived: later requests of the dialog get 481
	endReason  EndReason
	lookupRes  lookup.Result
	lookupDone bool
	intents    []routing.Intent
	dlg        *sipgo.DialogServerSession
	inviteTx   gosip.ServerTransaction
	sess       *media.Session
	neg        media.Negotiated
	local      media.LocalSDP
	held       bool
	heldFrom   CallState
	pendingAck *pendingAck
	remoteCSeq uint32
	interval   time.Duration // negotiated session interval, 0 = no session timer
	// timerSupported: the caller supports RFC 4028 timers (Supported: timer).
	timerSupported bool
	// remoteTarget is the caller's Contact, refreshed by re-INVITE (RFC 3261
	// §12.2.2); nil means the INVITE's.
	remoteTarget *gosip.Uri

	obs callObs // observer notifications in order (observe.go)

	// Transfer state (transfer.go, refer.go, bridge_call.go, cdr.go).
	inject     chan injected // intents from Server.Transfer, buffered 1
	pending    injected      // the injected intent the menu is serving
	holds      chan bool     // caller hold (true) / resume (false) while bridged, buffered
	out        *outLeg       // the outbound leg of a warm or bridged transfer
	refer      *referSub     // the pending REFER's NOTIFY stream
	bridged    bool          // media bridged to out
	dec        routing.Decision
	hasDec     bool
	outcome    records.Outcome
	flowActive bool // run() (menu and transfer) is still running
	recorded   bool // the call record was written
}

// pendingAck is a 2xx to an INVITE waiting for its ACK (RFC 3261 §13.3.1.4).
type pendingAck struct {
	cseq  uint32
	ch    chan struct{} // closed on ACK or when the call ends
	acked bool          // guarded by call.mu
}

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setState moves the call to s; while the caller holds the call the state stays
// held and s is what it returns to on resume.
func (c *call) setState(s CallState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ending:
	case c.held:
		c.heldFrom = s
	default:
		c.state = s
	}
}

func (c *call) isEnding() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending || c.byeIn
}

// takeBye claims the caller's BYE: false when the call already ends or another
// BYE got there first, so a second BYE gets 481 even before teardown finished.
func (c *call) takeBye() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending || c.byeIn {
		return false
	}
	c.byeIn = true
	return true
}

func (c *call) snapshot() CallSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dec *routing.Decision
	if c.dec.Action != routing.ActionUnknown {
		d := c.dec
		d.Def = nil // the rule definition stays inside routing
		dec = &d
	}
	return CallSnapshot{
		Decision: dec,
		ID:       c.id, SIPCallID: c.sipCallID, Caller: c.caller, Callee: c.callee,
		State: c.state, Started: c.started, Answered: c.answered,
		Lookup: c.lookupRes, LookupDone: c.lookupDone,
		Intents:   append([]routing.Intent(nil), c.intents...),
		EndReason: c.endReason,
	}
}

func (c *call) info() CallInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CallInfo{ID: c.id, SIPCallID: c.sipCallID, Caller: c.caller, Callee: c.callee,
		Lookup: c.lookupRes, LookupDone: c.lookupDone}
}

// quitContext returns a context cancelled when the call starts ending.
func (c *call) quitContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// runLookup runs the caller lookup (started the moment the INVITE arrives) and
// attaches its result to the call, even when it arrives after the answer. A failed
// or slow lookup never stops the call.
func (c *call) runLookup() {
	var res lookup.Result
	switch {
	case c.srv.lookup == nil:
		res = lookup.Result{Status: lookup.StatusUnconfigured}
	case c.caller == "":
		res = lookup.Result{Status: lookup.StatusNotFound, Reason: "withheld"}
	default:
		ctx, cancel := c.quitContext()
		ctx, cancelT := context.WithTimeout(ctx, c.srv.cfg.LookupTimeout)
		res = c.safeLookup(ctx)
		if res.Status == lookup.StatusUnknown {
			res = lookup.Result{Status: lookup.StatusError, Reason: "no_result"}
			if ctx.Err() != nil {
				res.Reason = "timeout"
			}
		}
		cancelT()
		cancel()
	}
	c.mu.Lock()
	c.lookupRes = res
	c.lookupDone = true
	c.mu.Unlock()
	c.notifyLookup(res)
	close(c.lookup)
	attrs := []any{"status", res.Status.String(), "cached", res.Cached}
	if res.Reason != "" {
		attrs = append(attrs, "reason", res.Reason)
	}
	if res.Contact != nil {
		attrs = append(attrs, "contact_id", res.Contact.ID)
	}
	if res.Matter != nil {
		attrs = append(attrs, "matter_id", res.Matter.ID)
	}
	if res.Staff != nil {
		attrs = append(attrs, "staff_id", res.Staff.ID)
	}
	c.log.Info("caller lookup done", attrs...)
}

func (c *call) safeLookup(ctx context.Context) (res lookup.Result) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("caller lookup panicked", "panic", r)
			res = lookup.Result{Status: lookup.StatusError, Reason: "panic"}
		}
	}()
	return c.srv.lookup.Lookup(ctx, c.caller)
}

// end tears the call down once: BYE (when a 2xx went out and sendBye), then media,
// then the port (the session's OnClose), then the registry entry. It runs on the
// caller's goroutine, never under a request context, and returns when done; a second
// call returns at once.
func (c *call) end(reason EndReason, sendBye bool) {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return
	}
	c.ending = true
	if c.byeIn {
		// The caller's BYE is already in (its teardown was about to run): the
		// dialog is over, so no BYE of ours, and the caller ended the call.
		reason, sendBye = EndCallerBye, false
	}
	c.endReason = reason
	c.state = StateEnding
	close(c.quit)
	answered, confirmed := c.answeredOK, c.confirmed
	dlg, tx, sess := c.dlg, c.inviteTx, c.sess
	if p := c.pendingAck; p != nil {
		c.pendingAck = nil
		close(p.ch)
	}
	c.mu.Unlock()

	if sendBye && answered && dlg != nil {
		if err := c.sendBye(dlg); err != nil {
			c.log.Warn("bye failed", "error", err)
		}
		if !confirmed && tx != nil {
			tx.Terminate() // no ACK came: stop the INVITE transaction too
		}
	}
	c.endTransfer() // the outbound leg: BYE or CANCEL, then its media
	if sess != nil {
		st := sess.Stats()
		_ = sess.Close()
		c.notifyRTPStats(sess.Stats())
		c.log.Debug("media closed", "packets_in", st.PacketsIn, "packets_out", st.PacketsOut, "dropped", st.Dropped)
	}
	c.srv.reg.remove(c)
	c.mu.Lock()
	c.state = StateEnded
	write := !c.flowActive && !c.recorded
	c.recorded = c.recorded || write
	c.mu.Unlock()
	if write {
		c.writeRecord()
	}
	c.notifyEnded(reason)
	close(c.done)
	c.log.Info("call ended", "reason", reason.String(), "duration", time.Since(c.started).Round(time.Millisecond))
}

// sendBye sends our BYE from the listening socket (UDP) or over the caller's
// connection (TCP) and waits for its final response, bounded by byeTimeout. It
// goes through the dialog's TransactionRequest (From/To/CSeq/Route) rather than
// WriteBye, which skips the BYE once the INVITE transaction ended before the ACK.
func (c *call) sendBye(dlg *sipgo.DialogServerSession) error {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	c.mu.Lock()
	target := c.remoteTarget
	c.mu.Unlock()
	if target == nil {
		target = dlg.InviteRequest.Contact().Address.Clone() // read-only after ReadInvite
	}
	bye := gosip.NewRequest(gosip.BYE, *target)
	bye.SetTransport(c.transport)
	c.srv.prepareOutgoing(bye, c)
	bye.AppendHeader(gosip.NewHeader("User-Agent", c.srv.cfg.UserAgent))
	tx, err := dlg.TransactionRequest(ctx, bye)
	if err != nil {
		return fmt.Errorf("send bye: %w", err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				return fmt.Errorf("bye answered %d %s", res.StatusCode, res.Reason)
			}
			return nil
		case <-tx.Done():
			return fmt.Errorf("bye: %w", tx.Err())
		case <-ctx.Done():
			return fmt.Errorf("bye: %w", ctx.Err())
		}
	}
}
