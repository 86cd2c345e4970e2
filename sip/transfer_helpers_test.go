package sip

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

const (
	testCaller  = "+12175552171"
	testService = "+15550000000"
)

// memCDR keeps call records in memory, one row per call like records.CallStore:
// a write for the same ID and CallID replaces the row, except that an in-progress
// record never replaces a finished one.
type memCDR struct {
	mu   sync.Mutex
	recs []records.CallRecord
}

func (m *memCDR) Upsert(ctx context.Context, rec records.CallRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.recs {
		if r.ID == rec.ID && r.CallID == rec.CallID {
			if rec.Outcome != records.OutcomeInProgress || r.Outcome == records.OutcomeInProgress {
				m.recs[i] = rec
			}
			return nil
		}
	}
	m.recs = append(m.recs, rec)
	return nil
}

// rows returns the rows of SIP Call-ID callID.
func (m *memCDR) rows(callID string) []records.CallRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []records.CallRecord
	for _, r := range m.recs {
		if r.CallID == callID {
			out = append(out, r)
		}
	}
	return out
}

// wait returns the one record of SIP Call-ID callID once the call has ended
// (failing on a second row).
func (m *memCDR) wait(t testing.TB, callID string) records.CallRecord {
	t.Helper()
	var out records.CallRecord
	eventually(t, 10*time.Second, "call record", func() bool {
		rows := m.rows(callID)
		if len(rows) > 1 {
			t.Fatalf("%d call records for one call", len(rows))
		}
		if len(rows) == 0 || rows[0].Outcome == records.OutcomeInProgress {
			return false
		}
		out = rows[0]
		return true
	})
	return out
}

func transferConfig() Config {
	cfg := defaultTestConfig()
	cfg.ReferTimeout = 2 * time.Second
	cfg.AcceptTimeout = 1500 * time.Millisecond
	cfg.CancelWait = time.Second
	cfg.MessageMax = 4 * time.Second
	cfg.MessageSilence = 600 * time.Millisecond
	cfg.ServiceNumber = testService
	return cfg
}

func newCallee(t testing.TB, co phone.AnswerOptions) *phone.UA {
	t.Helper()
	c, err := phone.NewUA(phone.UAConfig{Logger: testLogger(t), Answer: &co})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func calleeURI(c *phone.UA, user string) string {
	return fmt.Sprintf("sip:%s@%s", user, c.Addr())
}

func (e *testEnv) newPhoneWith(o phone.UAConfig) *phone.UA {
	e.t.Helper()
	o.Logger = testLogger(e.t)
	p, err := phone.NewUA(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

// transferDecision is a matched transfer decision for rule.
func transferDecision(rule *routing.Rule) routing.Decision {
	return routing.Decision{Action: routing.ActionTransfer, Rule: rule.Name, Mode: rule.Mode,
		Destination: rule.Destination, CallerID: rule.CallerID, Reason: routing.ReasonMatched,
		Unavailable: rule.Unavailable, Def: rule}
}

// dialTransfer places a call from p, waits for the greeting and presses 1.
func (e *testEnv) dialTransfer(p *phone.UA, o phone.InviteOptions) *phone.Outgoing {
	e.t.Helper()
	if o.From == "" {
		o.From = testCaller
	}
	c, res := e.call(p, o)
	if res.StatusCode != 200 {
		e.t.Fatalf("invite: %d", res.StatusCode)
	}
	if !c.RTP.WaitPackets(3, 5*time.Second) {
		e.t.Fatal("no greeting")
	}
	if err := c.SendDTMF('1'); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitState waits until the call with SIP Call-ID callID is in state st.
func (e *testEnv) waitState(callID string, st CallState) {
	e.t.Helper()
	eventually(e.t, 10*time.Second, "state "+st.String(), func() bool {
		for _, s := range e.srv.Registry().List() {
			if s.SIPCallID == callID {
				return s.State == st
			}
		}
		return false
	})
}

// audioFill is the constant G.711 byte of a level in codec pt.
func audioFill(pt uint8, level int16) byte {
	if pt == 8 {
		return media.EncodeAlaw(level)
	}
	return media.EncodeUlaw(level)
}

// checkBridgeAudio sends 100 packets each way at the same time and checks that at
// least 99 arrive on the other side with the expected (transcoded) payload.
func checkBridgeAudio(t testing.TB, c *phone.Outgoing, callerPT uint8, in *phone.Incoming) {
	t.Helper()
	calleePT := in.AudioPT()
	const n = 100
	callerFill, calleeFill := audioFill(callerPT, -2500), audioFill(calleePT, -4500)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- c.RTP.SendAudio(callerPT, callerFill, n) }()
	go func() { defer wg.Done(); errs <- in.RTP.SendAudio(calleePT, calleeFill, n) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	atCallee, atCaller := audioFill(calleePT, -2500), audioFill(callerPT, -4500)
	if callerPT != calleePT { // the bridge transcodes byte for byte
		if calleePT == 8 {
			atCallee = media.UlawToAlaw(callerFill)
			atCaller = media.AlawToUlaw(calleeFill)
		} else {
			atCallee = media.AlawToUlaw(callerFill)
			atCaller = media.UlawToAlaw(calleeFill)
		}
	}
	var gotCallee, gotCaller int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		gotCallee = in.RTP.CountPayload(calleePT, atCallee)
		gotCaller = c.RTP.CountPayload(callerPT, atCaller)
		if gotCallee >= n && gotCaller >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gotCallee < n*99/100 || gotCaller < n*99/100 {
		t.Fatalf("bridged audio: callee got %d/%d, caller got %d/%d (loss over 1%%)", gotCallee, n, gotCaller, n)
	}
}

// referPBX is a PBX phone that answers REFER with status and, after a 202, sends
// the NOTIFYs with the sipfrag lines.
type referPBX struct {
	phone  *phone.UA
	call   atomic.Pointer[phone.Outgoing]
	refers chan *gosip.Request
}

func (e *testEnv) newReferPBX(status int, sipfrags ...string) *referPBX {
	r := &referPBX{refers: make(chan *gosip.Request, 4)}
	r.phone = e.newPhoneWith(phone.UAConfig{OnRequest: func(req *gosip.Request, tx gosip.ServerTransaction) bool {
		if req.Method != gosip.REFER {
			return false
		}
		r.refers <- req
		_ = tx.Respond(gosip.NewResponseFromRequest(req, status, "Whatever", nil))
		if status != 202 {
			return true
		}
		go func() {
			c := r.call.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i, frag := range sipfrags {
				ev := gosip.NewHeader("Event", "refer")
				state := "active;expires=60"
				if i == len(sipfrags)-1 {
					ev = gosip.NewHeader("o", "refer") // compact form (RFC 3265 §7.2)
					state = "terminated;reason=noresource"
				}
				_, _ = c.Request(ctx, gosip.NOTIFY, "message/sipfrag", []byte(frag+"\r\n"), ev,
					gosip.NewHeader("Subscription-State", state))
			}
		}()
		return true
	}})
	return r
}

func (r *referPBX) dial(e *testEnv) *phone.Outgoing {
	e.t.Helper()
	c, res := e.call(r.phone, phone.InviteOptions{From: testCaller})
	if res.StatusCode != 200 {
		e.t.Fatalf("invite: %d", res.StatusCode)
	}
	r.call.Store(c)
	if !c.RTP.WaitPackets(3, 5*time.Second) {
		e.t.Fatal("no greeting")
	}
	if err := c.SendDTMF('1'); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func headerValue(req *gosip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}
