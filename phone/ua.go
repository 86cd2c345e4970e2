package phone

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// UAConfig configures a UA. Zero values mean defaults.
type UAConfig struct {
	// Transport is "udp" (default), "tcp" or "tls".
	Transport string
	// TLS is the "tls" transport's configuration: the certificate the UA's
	// listener serves and the roots it trusts when it dials (sipgo sets
	// ServerName to the target host).
	TLS *tls.Config
	// Listen is the SIP address, "ip:port"; the ip is advertised in Contact, Via
	// and SDP and RTP is bound on it. Default "127.0.0.1:0" (a free port).
	Listen string
	// User is the Contact user. Default "phone".
	User string
	// Logger receives sipgo's logs. Default: discard.
	Logger *slog.Logger
	// OnRequest sees every incoming request first; returning true means it
	// answered the request itself (e.g. a PBX that answers REFER its own way).
	OnRequest func(req *sip.Request, tx sip.ServerTransaction) bool
	// Answer makes the UA answer new INVITEs as AnswerOptions says; each shows
	// up in Next. Nil: a new INVITE nobody handles gets 481.
	Answer *AnswerOptions
}

// UA is a scripted SIP phone for protocol-level tests: unlike Caller and Callee,
// which behave like a well-mannered phone, it lets a test drive each message
// (send the ACK late or never, CANCEL, re-INVITE with any SDP, INFO, UPDATE,
// BYE), keeps every response and every request the far end sent, and records
// its RTP raw (RTPPeer). Requests inside its calls are routed by Call-ID and
// answered 200 (SIPGO-NOTES: sipgo's client dialog cannot read them).
type UA struct {
	cfg UAConfig
	st  *stack

	mu       sync.Mutex
	calls    map[string]*Outgoing
	incoming map[string]*Incoming
	next     chan *Incoming
	closed   bool
	wg       sync.WaitGroup // INVITE handlers of answered calls
}

// NewUA starts a UA listening on cfg.Listen.
func NewUA(cfg UAConfig) (*UA, error) {
	if cfg.User == "" {
		cfg.User = "phone"
	}
	p := &UA{cfg: cfg, calls: map[string]*Outgoing{}, incoming: map[string]*Incoming{},
		next: make(chan *Incoming, incomingQueue*2)}
	_, err := startStack(stackConfig{userAgent: "matterline-ua", transport: cfg.Transport, listen: cfg.Listen,
		tls: cfg.TLS, log: cfg.Logger, setup: p.setup})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *UA) setup(st *stack) {
	p.st = st
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.OPTIONS, sip.NOTIFY,
		sip.REFER, sip.UPDATE, sip.MESSAGE} {
		st.srv.OnRequest(m, p.route)
	}
	st.srv.OnNoRoute(p.route)
}

// Addr is the UA's SIP address.
func (p *UA) Addr() netip.AddrPort { return p.st.addr }

// NewRTPPeer binds an RTP socket on the UA's address (e.g. to move a call's
// media with a re-INVITE).
func (p *UA) NewRTPPeer() (*RTPPeer, error) { return NewRTPPeer(p.st.ip) }

// Close ends every call's RTP and transactions, then the UA's SIP stack, and
// waits for the goroutines it started. It sends no BYE. Idempotent.
func (p *UA) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	calls := make([]*Outgoing, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	ins := make([]*Incoming, 0, len(p.incoming))
	for _, in := range p.incoming {
		ins = append(ins, in)
	}
	p.mu.Unlock()
	for _, c := range calls {
		c.Close()
	}
	for _, in := range ins {
		_ = in.RTP.Close()
	}
	p.st.stop()
	p.wg.Wait()
	p.st.sweep()
	return nil
}

func (p *UA) route(req *sip.Request, tx sip.ServerTransaction) {
	if p.cfg.OnRequest != nil && p.cfg.OnRequest(req, tx) {
		return
	}
	if p.cfg.Answer != nil && p.answerRoute(req, tx) {
		return
	}
	if req.IsAck() {
		return
	}
	var c *Outgoing
	if id := req.CallID(); id != nil {
		p.mu.Lock()
		c = p.calls[id.Value()]
		p.mu.Unlock()
	}
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.record(req)
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	if req.Method == sip.BYE {
		c.byeOnce.Do(func() { close(c.byeCh) })
	}
}

func (p *UA) contact() *sip.ContactHeader {
	return &sip.ContactHeader{Address: p.st.contact(p.cfg.User)}
}

// transportName is the Via transport of the UA's requests ("UDP", "TCP", "TLS").
func (p *UA) transportName() string { return strings.ToUpper(p.st.transport) }
