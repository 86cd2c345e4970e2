package phone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// Default timeouts.
const (
	// DefaultAnswerTimeout bounds a Caller's wait for the final response.
	DefaultAnswerTimeout = 30 * time.Second
	// DefaultAckTimeout bounds a Callee's wait for the ACK of its 200.
	DefaultAckTimeout = 5 * time.Second
	// DefaultRequestTimeout bounds an in-dialog request (BYE, INFO, NOTIFY).
	DefaultRequestTimeout = 5 * time.Second
	// readyWait bounds how long a request that arrives right behind the 200 OK
	// waits for the call to be set up.
	readyWait = time.Second
)

// ErrClosed is returned by a phone that was closed.
var ErrClosed = errors.New("phone: closed")

// agentConfig is what Caller and Callee share.
type agentConfig struct {
	name    string // "caller", "attorney"
	listen  string // UDP host:port
	user    string // Contact user
	ports   *media.PortAllocator
	log     *slog.Logger
	onEvent func(Event)
	// onInvite handles a new (out-of-dialog) INVITE; nil answers 403.
	onInvite func(a *agent, req *sip.Request, tx sip.ServerTransaction)
	// onRefer answers a REFER inside call c; nil declines it (603).
	onRefer func(a *agent, c *Call, req *sip.Request, tx sip.ServerTransaction)
}

// agent is one sipgo user agent on one UDP socket, with the phone's calls by
// Call-ID (SIPGO-NOTES: route in-dialog requests yourself).
type agent struct {
	cfg    agentConfig
	log    *slog.Logger
	st     *stack
	ip     netip.Addr
	addr   netip.AddrPort
	client *sipgo.Client
	dua    *sipgo.DialogUA

	mu     sync.Mutex
	calls  map[string]*Call
	closed bool
	wg     sync.WaitGroup // handler work that must end before Close returns
}

func newAgent(cfg agentConfig) (*agent, error) {
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	a := &agent{cfg: cfg, log: cfg.log.With("phone", cfg.name), calls: map[string]*Call{}}
	_, err := startStack(stackConfig{userAgent: "matterline-phone", transport: "udp", listen: cfg.listen,
		log: a.log.With("component", "sipgo"), setup: a.setup})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// setup keeps the stack and installs the agent's request handlers.
func (a *agent) setup(st *stack) {
	a.st, a.ip, a.addr, a.client = st, st.ip, st.addr, st.client
	a.dua = &sipgo.DialogUA{Client: a.client, ContactHDR: sip.ContactHeader{Address: st.contact(a.cfg.user)}}
	srv := st.srv
	srv.OnInvite(a.handleInvite)
	srv.OnAck(a.handleAck)
	srv.OnBye(a.handleBye)
	for _, m := range []sip.RequestMethod{sip.INFO, sip.UPDATE, sip.REFER, sip.NOTIFY, sip.OPTIONS, sip.MESSAGE} {
		srv.OnRequest(m, a.handleInDialog)
	}
	srv.OnNoRoute(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil))
	})
}

// emit reports an event to the configured callback.
func (a *agent) emit(kind EventKind, callID, detail string) {
	if a.cfg.onEvent == nil {
		return
	}
	a.cfg.onEvent(Event{Time: time.Now(), Phone: a.cfg.name, Kind: kind, CallID: callID, Detail: detail})
}

// add registers c by Call-ID; false when the agent is closed.
func (a *agent) add(c *Call) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.calls[c.id] = c
	return true
}

func (a *agent) remove(c *Call) {
	a.mu.Lock()
	if a.calls[c.id] == c {
		delete(a.calls, c.id)
	}
	a.mu.Unlock()
}

// lookup finds the call of req and waits briefly until it is set up (a request
// right behind the 200 OK).
func (a *agent) lookup(req *sip.Request) *Call {
	id := req.CallID()
	if id == nil {
		return nil
	}
	a.mu.Lock()
	c := a.calls[id.Value()]
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-c.ready:
		return c
	case <-c.done:
		return nil
	case <-t.C:
		return nil
	}
}

// track runs f as work Close waits for; false when closed.
func (a *agent) track(f func()) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		f()
	}()
	return true
}

func (a *agent) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
		c := a.lookup(req)
		if c == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		c.answerOffer(req, tx, "re-INVITE")
		return
	}
	if a.cfg.onInvite == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	a.mu.Lock()
	closed := a.closed
	if !closed {
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if closed {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return
	}
	defer a.wg.Done()
	a.cfg.onInvite(a, req, tx)
}

func (a *agent) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil {
		return
	}
	a.mu.Lock()
	c := a.calls[id.Value()]
	a.mu.Unlock()
	if c != nil && c.uas != nil {
		_ = c.uas.ReadAck(req, tx)
	}
}

func (a *agent) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	c := a.lookup(req)
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.byeReceived(req, tx)
}

func (a *agent) handleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	c := a.lookup(req)
	if c == nil {
		if req.Method == sip.OPTIONS {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	switch req.Method {
	case sip.UPDATE:
		c.answerOffer(req, tx, "UPDATE")
	case sip.INFO:
		c.infoReceived(req, tx)
	case sip.REFER:
		if a.cfg.onRefer == nil {
			a.emit(EventRefer, c.id, "REFER to "+referTo(req)+" declined (603)")
			_ = tx.Respond(sip.NewResponseFromRequest(req, 603, "Declined", nil))
			return
		}
		a.cfg.onRefer(a, c, req, tx)
	case sip.NOTIFY:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		event := ""
		if h := req.GetHeader("Event"); h != nil {
			event = h.Value()
		}
		first, _, _ := strings.Cut(string(req.Body()), "\r\n")
		a.emit(EventNotify, c.id, fmt.Sprintf("event %s: %s", event, strings.TrimSpace(first)))
	default: // OPTIONS, MESSAGE
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
}

// close ends every call (BYE first), then the SIP stack; it waits for the
// handlers and goroutines the phone started.
func (a *agent) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	calls := make([]*Call, 0, len(a.calls))
	for _, c := range a.calls {
		calls = append(calls, c)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = c.Hangup(ctx)
		}()
	}
	wg.Wait()
	a.st.stop()
	a.wg.Wait()
	a.st.sweep()
}

// openRTP binds the call's RTP socket: from the port allocator when one is
// configured, else an ephemeral port on the phone's address. release gives the
// port back after the socket is closed.
func (a *agent) openRTP() (conn *net.UDPConn, release func(), err error) {
	if a.cfg.ports != nil {
		conn, err = a.cfg.ports.Listen(a.ip)
		if err != nil {
			return nil, nil, fmt.Errorf("phone: rtp port: %w", err)
		}
		port := conn.LocalAddr().(*net.UDPAddr).Port
		return conn, func() { a.cfg.ports.Release(port) }, nil
	}
	conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, 0)))
	if err != nil {
		return nil, nil, fmt.Errorf("phone: rtp port: %w", err)
	}
	return conn, func() {}, nil
}

// referTo is the Refer-To of req (also in its compact form r).
func referTo(req *sip.Request) string {
	for _, name := range []string{"Refer-To", "r"} {
		if h := req.GetHeader(name); h != nil {
			return strings.TrimSpace(h.Value())
		}
	}
	return ""
}

// userOf is the user part of a name-addr header value ("" when unparsable).
func userOf(value string) string {
	var u sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(value, &u, &params); err != nil {
		return ""
	}
	return u.User
}
