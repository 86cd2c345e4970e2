package sip

// Harness for interop_realpeers_test.go: a message tracer that keeps what
// matterline sent and received, a tone source for the Go RTP endpoint of
// sipp_callcore_helpers_test.go (PCMU sine plus RFC 4733 digits), audio checks
// on baresip and on decoded RTP, and a per-test leak check that counts only
// the goroutines this test started (pprof labels), so parallel tests do not
// disturb each other's baseline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matterline/matterline/internal/interop"
	"github.com/matterline/matterline/media"
)

const (
	callerHz   = 1000.0 // the caller's voice
	attorneyHz = 600.0  // the attorney's voice
	// peerTimeout bounds each wait for a peer (event, request, audio) on a
	// loaded 2-core machine.
	peerTimeout = 15 * time.Second
	// listenWindow is how much audio one HearsTone check analyses.
	listenWindow = 400 * time.Millisecond
)

// ---- goroutines of one test (pprof labels are inherited by new goroutines) ----

const leakLabel = "realpeers-test"

// labelTest labels the test goroutine, so that every goroutine it starts from
// now on (the server's listeners and their handlers, the peers' readers)
// carries the label, and returns the label's value.
func labelTest(t *testing.T) string {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(leakLabel, t.Name())))
	return t.Name()
}

// labelledGoroutines counts the live goroutines labelled with value, and
// returns their stacks for a failure message.
func labelledGoroutines(value string) (int, string) {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	want := fmt.Sprintf("%q:%q", leakLabel, value)
	n := 0
	var stacks strings.Builder
	var group []string
	flush := func() {
		if len(group) < 2 || !strings.Contains(group[1], want) {
			return
		}
		c, _ := strconv.Atoi(strings.Fields(group[0])[0])
		n += c
		stacks.WriteString(strings.Join(group, "\n") + "\n\n")
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, " @ 0x") {
			flush()
			group = group[:0]
		}
		if strings.TrimSpace(l) != "" {
			group = append(group, l)
		}
	}
	flush()
	return n, stacks.String()
}

// leakCheck waits until the server holds no call, no outbound leg and no RTP
// port, and this test's goroutines are back near baseline.
func (e *testEnv) leakCheck(t *testing.T, label string, baseline int) {
	t.Helper()
	e.waitIdle()
	if n := e.srv.legs.count(); n != 0 {
		t.Errorf("%d outbound legs left", n)
	}
	const slack = 3
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, stacks := labelledGoroutines(label)
		if n <= baseline+slack {
			t.Logf("goroutines of this test: %d (baseline %d)", n, baseline)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines of this test: %d, baseline %d (+%d)\n%s", n, baseline, slack, stacks)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- SIP messages matterline sent and received ----

// traceMsg is one traced message, parsed enough for the checks.
type traceMsg struct {
	At         time.Time
	Outbound   bool // sent by matterline
	Dst, Src   netip.AddrPort
	Method     string // "" for a response
	Status     int    // 0 for a request
	CallID     string
	CSeqMethod string
	CSeq       int
	ToTag      string
	Body       string
}

// msgLog is a MessageTracer that keeps every message.
type msgLog struct {
	mu   sync.Mutex
	msgs []traceMsg
}

// newMsgLog returns an empty log that is printed when the test fails.
func newMsgLog(t *testing.T) *msgLog {
	l := &msgLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("matterline's SIP messages:\n%s", l.dump())
		}
	})
	return l
}

func (l *msgLog) TraceSIP(m TracedMessage) {
	tm := traceMsg{At: m.Time, Outbound: m.Outbound, Dst: m.Dst, Src: m.Src}
	tm.CallID = m.CallID()
	head, body, _ := strings.Cut(strings.ReplaceAll(string(m.Data), "\r\n", "\n"), "\n\n")
	tm.Body = body
	lines := strings.Split(head, "\n")
	if f := strings.Fields(lines[0]); len(f) >= 2 {
		if f[0] == "SIP/2.0" {
			tm.Status, _ = strconv.Atoi(f[1])
		} else {
			tm.Method = f[0]
		}
	}
	for _, line := range lines[1:] {
		name, val, ok := strings.Cut(line, ":")
		if name = strings.TrimSpace(name); ok && (strings.EqualFold(name, "To") || name == "t") {
			tm.ToTag = headerTag(strings.TrimSpace(val))
		}
		if ok && strings.EqualFold(name, "CSeq") {
			if f := strings.Fields(val); len(f) == 2 {
				tm.CSeq, _ = strconv.Atoi(f[0])
				tm.CSeqMethod = f[1]
			}
		}
	}
	l.mu.Lock()
	l.msgs = append(l.msgs, tm)
	l.mu.Unlock()
}

func (l *msgLog) all() []traceMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]traceMsg(nil), l.msgs...)
}

func (l *msgLog) filter(keep func(traceMsg) bool) []traceMsg {
	var out []traceMsg
	for _, m := range l.all() {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// wait waits until a message matching keep has been traced and returns the
// first one.
func (l *msgLog) wait(t *testing.T, timeout time.Duration, what string, keep func(traceMsg) bool) traceMsg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ms := l.filter(keep); len(ms) > 0 {
			return ms[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("matterline did not send or receive %s within %v\n%s", what, timeout, l.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *msgLog) dump() string {
	var b strings.Builder
	for _, m := range l.all() {
		dir := "<-"
		peer := m.Src
		if m.Outbound {
			dir, peer = "->", m.Dst
		}
		what := m.Method
		if m.Status != 0 {
			what = strconv.Itoa(m.Status)
		}
		fmt.Fprintf(&b, "%s %s %s %s (CSeq %d %s, call-id %s)\n", m.At.Format("15:04:05.000"), dir, peer, what, m.CSeq, m.CSeqMethod, m.CallID)
	}
	return b.String()
}

// sdpDirection is the first direction attribute of an SDP body ("sendrecv"
// when none is written).
func sdpDirection(body string) string {
	for _, l := range strings.Split(body, "\n") {
		switch a := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "a=")); a {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a
		}
	}
	return "sendrecv"
}

// ---- audio ----

// waitHears waits (bounded) until ua hears freq in a listenWindow.
func waitHears(t *testing.T, ua *interop.Baresip, name string, freq float64) {
	t.Helper()
	var s []int16
	deadline := time.Now().Add(peerTimeout)
	for time.Now().Before(deadline) {
		if s = ua.HeardFor(listenWindow); interop.HearsTone(s, freq) {
			return
		}
	}
	path, _ := ua.HeardWAV()
	t.Fatalf("%s does not hear %v Hz within %v (last window: %d samples, level %.1f dBFS, share %.2f; all heard: %s)",
		name, freq, peerTimeout, len(s), interop.ToneLevel(s, freq, interop.SampleRate),
		interop.ToneShare(s, freq, interop.SampleRate), path)
}

// waitLoud waits until ua has heard, from sample index from on, anything
// above |level| (a prompt: the test prompts are constant levels, not tones).
func waitLoud(t *testing.T, ua *interop.Baresip, name string, from int, level int16) {
	t.Helper()
	deadline := time.Now().Add(peerTimeout)
	for time.Now().Before(deadline) {
		heard := ua.Heard()
		for _, v := range heard[min(from, len(heard)):] {
			if v > level || v < -level {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s heard nothing above %d within %v", name, level, peerTimeout)
}

// decodePCMU decodes the PCMU packets among pkts.
func decodePCMU(pkts []rtpPkt) []int16 {
	var out []int16
	for _, p := range pkts {
		if p.PT != 0 {
			continue
		}
		for _, b := range p.Payload {
			out = append(out, media.DecodeUlaw(b))
		}
	}
	return out
}

// ---- a talking Go RTP endpoint ----

// toneSource sends a PCMU sine from e every 20 ms (to where matterline sends
// from, as rtpEndpoint.sendPCMU does) while not muted, and RFC 4733 digits on
// request (payload type 101, as the scenario's offer says).
type toneSource struct {
	e     *rtpEndpoint
	muted atomic.Bool
	dtmf  chan byte
}

func (e *rtpEndpoint) sendTone(freq float64) *toneSource {
	s := &toneSource{e: e, dtmf: make(chan byte, 4)}
	e.wg.Add(1)
	go s.run(freq)
	return s
}

// digit sends one RFC 4733 event (key 0-9) of 200 ms.
func (s *toneSource) digit(key byte) { s.dtmf <- key }

func (s *toneSource) run(freq float64) {
	e := s.e
	defer e.wg.Done()
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	var seq uint16
	var ts uint32
	var n int // samples sent, for the phase
	pkt := make([]byte, 12+160)
	pkt[0] = 0x80
	binary.BigEndian.PutUint32(pkt[8:], 0x70e5a001)
	evFrames, evLeft, evTS := 0, 0, uint32(0)
	var evKey byte
	for {
		select {
		case <-e.stop:
			return
		case <-tk.C:
		}
		e.mu.Lock()
		dst := e.dst
		e.mu.Unlock()
		if dst == nil {
			continue
		}
		if evLeft == 0 {
			select {
			case evKey = <-s.dtmf:
				evFrames, evLeft, evTS = 0, 13, ts+160 // 10 frames, then 3 end packets
			default:
			}
		}
		seq++
		ts += 160
		binary.BigEndian.PutUint16(pkt[2:], seq)
		if evLeft > 0 {
			evFrames++
			evLeft--
			end := evLeft < 3
			marker := byte(0)
			if evFrames == 1 {
				marker = 0x80
			}
			ev := make([]byte, 12+4)
			copy(ev, pkt[:12])
			ev[1] = marker | 101
			binary.BigEndian.PutUint32(ev[4:], evTS)
			ev[12] = evKey
			ev[13] = 10 // volume -10 dBm0
			if end {
				ev[13] |= 0x80
			}
			binary.BigEndian.PutUint16(ev[14:], uint16(min(evFrames, 10)*160))
			_, _ = e.conn.WriteToUDP(ev, dst)
			continue
		}
		if s.muted.Load() {
			continue
		}
		pkt[1] = 0
		binary.BigEndian.PutUint32(pkt[4:], ts)
		for i := 0; i < 160; i++ {
			v := 0.3 * 32767 * math.Sin(2*math.Pi*freq*float64(n)/8000)
			pkt[12+i] = media.EncodeUlaw(int16(v))
			n++
		}
		_, _ = e.conn.WriteToUDP(pkt, dst)
	}
}
