package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipRig plays both ends of every matterline call on one sipgo user agent
// listening on the agent address: the callers (UAC: INVITE, ACK, BYE) and the
// SIP agent matterline dials (UAS: answers with a PCMU SDP).
type sipRig struct {
	target    sip.Uri // matterline
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	dua       *sipgo.DialogUA
	pc        net.PacketConn
	addr      netip.AddrPort
	serveDone chan struct{}

	mu     sync.Mutex
	agents []*agentLeg          // by call index
	byCall map[string]*agentLeg // by the agent INVITE's Call-ID
	eps    []*endpoint          // all endpoints, by id
	stray  int                  // agent INVITEs that matched no call
}

// agentLeg is matterline's leg toward the agent, answered by the rig.
type agentLeg struct {
	k     int
	sdp   []byte // our answer, for a re-INVITE
	acked chan struct{}
	once  sync.Once
}

// callerLeg is a caller's dialog toward matterline.
type callerLeg struct {
	dlg *sipgo.DialogClientSession
}

// listenWait bounds the wait for sipgo's UDP listener to come up.
const listenWait = 2 * time.Second

func startSIPRig(listen, target string, eps []*endpoint, calls int) (*sipRig, error) {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("relaygen: agent address %q: want a loopback ip:port", listen)
	}
	tp, err := netip.ParseAddrPort(target)
	if err != nil || !tp.Addr().IsLoopback() {
		return nil, fmt.Errorf("relaygen: sip target %q: want a loopback ip:port", target)
	}
	r := &sipRig{
		target:    sip.Uri{Scheme: "sip", User: "bench", Host: tp.Addr().String(), Port: int(tp.Port())},
		serveDone: make(chan struct{}),
		agents:    make([]*agentLeg, calls),
		byCall:    map[string]*agentLeg{},
		eps:       eps,
	}
	log := slog.New(slog.DiscardHandler)
	host := ap.Addr().String()
	r.ua, err = sipgo.NewUA(sipgo.WithUserAgent("relaygen"), sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		return nil, fmt.Errorf("relaygen: user agent: %w", err)
	}
	if r.srv, err = sipgo.NewServer(r.ua, sipgo.WithServerLogger(log)); err != nil {
		_ = r.ua.Close()
		return nil, fmt.Errorf("relaygen: sip server: %w", err)
	}
	if r.pc, err = net.ListenPacket("udp", listen); err != nil {
		_ = r.ua.Close()
		return nil, fmt.Errorf("relaygen: sip listen: %w", err)
	}
	r.addr = r.pc.LocalAddr().(*net.UDPAddr).AddrPort()
	r.client, err = sipgo.NewClient(r.ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname(host),
		sipgo.WithClientConnectionAddr(r.addr.String()))
	if err != nil {
		_ = r.pc.Close()
		_ = r.ua.Close()
		return nil, fmt.Errorf("relaygen: sip client: %w", err)
	}
	contact := sip.Uri{Scheme: "sip", User: "relaygen", Host: host, Port: int(r.addr.Port())}
	r.dua = &sipgo.DialogUA{Client: r.client, ContactHDR: sip.ContactHeader{Address: contact}}
	r.srv.OnInvite(r.onInvite)
	r.srv.OnAck(r.onAck)
	r.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	r.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() {
		defer close(r.serveDone)
		_ = r.srv.ServeUDP(r.pc)
	}()
	// SIPGO-NOTES: a request sent before the listener is registered (and in the
	// pool) makes sipgo bind the port again.
	deadline := time.Now().Add(listenWait)
	tl := r.ua.TransportLayer()
	for len(tl.ListenPorts("udp")) == 0 || tl.Pool("udp").Size() == 0 {
		if time.Now().After(deadline) {
			r.close()
			return nil, errors.New("relaygen: sip listener did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return r, nil
}

// close stops the user agent and the listener.
func (r *sipRig) close() {
	_ = r.ua.Close()
	_ = r.pc.Close()
	<-r.serveDone
}

// callerNumber is the From user of call k; matterline shows it to the agent
// (caller ID "caller"), which is how an agent INVITE finds its call.
func callerNumber(k int) string { return fmt.Sprintf("+1217%07d", k) }

// callIndex reads k back from the agent INVITE's From (or P-Asserted-Identity)
// user: the last 7 digits.
func callIndex(req *sip.Request, calls int) (int, bool) {
	users := []string{}
	if f := req.From(); f != nil {
		users = append(users, f.Address.User)
	}
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		users = append(users, h.Value())
	}
	for _, u := range users {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, u)
		if len(digits) < 7 {
			continue
		}
		k, err := strconv.Atoi(digits[len(digits)-7:])
		if err == nil && k < calls {
			return k, true
		}
	}
	return 0, false
}

// onInvite answers matterline's INVITE toward the agent with 200 and our SDP
// (the callee endpoint of the call the From names).
func (r *sipRig) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
		r.mu.Lock()
		leg := r.byCall[req.CallID().Value()]
		r.mu.Unlock()
		if leg == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		_ = tx.Respond(r.answer(req, leg.sdp, ""))
		return
	}
	k, ok := callIndex(req, len(r.agents))
	remote, err := sdpAudioAddr(req.Body())
	r.mu.Lock()
	if !ok || err != nil || r.agents[k] != nil {
		r.stray++
		r.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	ep := r.eps[2*k+1]
	ep.remote = remote
	leg := &agentLeg{k: k, acked: make(chan struct{}),
		sdp: []byte(buildSDP(sdpOptions{port: ep.port(), sessionID: uint64(2*k + 2)}))}
	r.agents[k] = leg
	r.byCall[req.CallID().Value()] = leg
	r.mu.Unlock()
	_ = tx.Respond(r.answer(req, leg.sdp, "agent-"+strconv.Itoa(k)))
}

// answer builds a 200 OK with SDP; tag is our To tag (empty: keep the
// request's, for a re-INVITE).
func (r *sipRig) answer(req *sip.Request, sdp []byte, tag string) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", sdp)
	if to := res.To(); to != nil && tag != "" {
		if to.Params == nil {
			to.Params = sip.NewParams()
		}
		to.Params.Add("tag", tag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: r.dua.ContactHDR.Address})
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	return res
}

func (r *sipRig) onAck(req *sip.Request, _ sip.ServerTransaction) {
	r.mu.Lock()
	leg := r.byCall[req.CallID().Value()]
	r.mu.Unlock()
	if leg != nil {
		leg.once.Do(func() { close(leg.acked) })
	}
}

// strays is the number of agent INVITEs that matched no call.
func (r *sipRig) strays() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stray
}

// agentAcked returns the channel closed when call k's agent leg is
// acknowledged (nil while matterline has not dialled it).
func (r *sipRig) agentAcked(k int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.agents[k]; l != nil {
		return l.acked
	}
	return nil
}

// dial places call k: INVITE with the caller endpoint's SDP, wait for 200,
// ACK. The caller endpoint's remote is matterline's RTP address from the answer.
func (r *sipRig) dial(ctx context.Context, k int, timeout time.Duration) (*callerLeg, error) {
	ep := r.eps[2*k]
	host := r.addr.Addr().String()
	req := sip.NewRequest(sip.INVITE, r.target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: callerNumber(k), Host: host}, Params: sip.NewParams()}
	from.Params.Add("tag", "caller-"+strconv.Itoa(k))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: r.target, Params: sip.NewParams()})
	callID := sip.CallIDHeader(fmt.Sprintf("relaygen-%d-%d@%s", k, time.Now().UnixNano(), host))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(&sip.ContactHeader{Address: r.dua.ContactHDR.Address})
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", fmt.Sprintf("<sip:%s@%s>", callerNumber(k), host)))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(buildSDP(sdpOptions{port: ep.port(), sessionID: uint64(2*k + 1), dtmf: true})))

	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dlg, err := r.dua.WriteInvite(wctx, req)
	if err != nil {
		return nil, fmt.Errorf("relaygen: call %d: invite: %w", k, err)
	}
	if err := dlg.WaitAnswer(wctx, sipgo.AnswerOptions{}); err != nil {
		_ = dlg.Close()
		return nil, fmt.Errorf("relaygen: call %d: no answer: %w", k, err)
	}
	leg := &callerLeg{dlg: dlg}
	remote, err := sdpAudioAddr(dlg.InviteResponse.Body())
	if err != nil {
		_ = dlg.Ack(ctx)
		r.hangup(ctx, leg)
		return nil, fmt.Errorf("relaygen: call %d: answer: %w", k, err)
	}
	ep.remote = remote
	if err := dlg.Ack(ctx); err != nil {
		r.hangup(ctx, leg)
		return nil, fmt.Errorf("relaygen: call %d: ack: %w", k, err)
	}
	return leg, nil
}

// byeTimeout bounds one BYE.
const byeTimeout = 3 * time.Second

// hangup sends BYE on a caller's dialog (from the listening socket, as sipgo
// does not apply the connection address to in-dialog requests).
func (r *sipRig) hangup(ctx context.Context, leg *callerLeg) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
	defer cancel()
	defer leg.dlg.Close()
	req := sip.NewRequest(sip.BYE, leg.dlg.InviteRequest.Recipient)
	if c := leg.dlg.InviteResponse.Contact(); c != nil {
		req.Recipient = c.Address
	}
	req.Laddr = sip.Addr{IP: r.addr.Addr().AsSlice(), Port: int(r.addr.Port())}
	res, err := leg.dlg.Do(bctx, req)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("relaygen: bye: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}
