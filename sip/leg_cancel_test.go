package sip

import (
	"net"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// rawCallee is a UDP SIP peer written by hand: it rings, and when the CANCEL
// comes it answers the INVITE 200 instead of 487 (the race of RFC 3261 §9.1),
// then records the ACK and BYE that must follow.
type rawCallee struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []gosip.RequestMethod
	done chan struct{}
}

func newRawCallee(t *testing.T) *rawCallee {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rawCallee{conn: conn, done: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-r.done })
	go r.serve()
	return r
}

func (r *rawCallee) addr() string { return r.conn.LocalAddr().String() }

func (r *rawCallee) methods() []gosip.RequestMethod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gosip.RequestMethod(nil), r.got...)
}

func (r *rawCallee) serve() {
	defer close(r.done)
	buf := make([]byte, 8192)
	var invite *gosip.Request
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := gosip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		req, ok := msg.(*gosip.Request)
		if !ok {
			continue
		}
		r.mu.Lock()
		r.got = append(r.got, req.Method)
		r.mu.Unlock()
		send := func(res *gosip.Response) { _, _ = r.conn.WriteToUDP([]byte(res.String()), from) }
		switch req.Method {
		case gosip.INVITE:
			if invite != nil {
				continue // a retransmission
			}
			invite = req
			req.To().Params.Add("tag", "rawtag")
			send(gosip.NewResponseFromRequest(req, 180, "Ringing", nil))
		case gosip.CANCEL:
			send(gosip.NewResponseFromRequest(req, 200, "OK", nil))
			local := r.conn.LocalAddr().(*net.UDPAddr)
			body := phone.Offer(local.AddrPort(), phone.OfferOptions{})
			ok := gosip.NewResponseFromRequest(invite, 200, "OK", body)
			ok.AppendHeader(&gosip.ContactHeader{Address: gosip.Uri{Scheme: "sip", User: "raw", Host: "127.0.0.1", Port: local.Port}})
			ok.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
			send(ok)
		case gosip.BYE:
			send(gosip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	}
}

// A 2xx that crosses our CANCEL is ACKed and BYEd (SIPGO-NOTES: sipgo does neither).
func TestCancelCrossedBy200IsAckedAndByed(t *testing.T) {
	t.Parallel()
	raw := newRawCallee(t)
	cdr := &memCDR{}
	rule := warmRule("felix", "sip:101@"+raw.addr(), "")
	rule.RingTimeout = time.Second
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	eventually(t, 8*time.Second, "cancel, ack and bye at the callee", func() bool {
		m := raw.methods()
		return len(m) >= 4 && m[0] == gosip.INVITE && m[1] == gosip.CANCEL &&
			contains(m, gosip.ACK) && contains(m, gosip.BYE)
	})
	// Unavailable handling hangup after the no answer.
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeNoAnswer {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

func contains(ms []gosip.RequestMethod, m gosip.RequestMethod) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}
