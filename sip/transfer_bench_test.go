package sip

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// BenchmarkDigitToInvite is the time from the caller's key press to the
// destination's INVITE at the destination, for a warm transfer whose rule
// plays a 2 s message first: the INVITE must not wait for the message. A
// digit is complete when its RFC 4733 end packet arrives, phone.DTMFDuration
// after the key went down; end-ms is from then, press-ms from the first
// packet. One whole call per iteration; run with -benchtime 20x. Reports p50
// and p99 in ms.
func BenchmarkDigitToInvite(b *testing.B) {
	callee := newCallee(b, phone.AnswerOptions{})
	wav := filepath.Join(b.TempDir(), "msg.wav")
	writeWAV(b, wav, 27000, 2*time.Second)
	rule := warmRule("felix", calleeURI(callee, "101"), "1")
	rule.MessageAudio = wav
	e := newEnv(b, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))))
	var took []time.Duration
	for b.Loop() {
		c, res := e.call(e.phone, phone.InviteOptions{From: testCaller})
		if res.StatusCode != 200 {
			b.Fatalf("invite: %d", res.StatusCode)
		}
		if !c.RTP.WaitPackets(3, 5*time.Second) {
			b.Fatal("no greeting")
		}
		pressed := time.Now()
		if err := c.SendDTMF('1'); err != nil {
			b.Fatal(err)
		}
		if _, err := callee.Next(ctxT(b, 8*time.Second)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(pressed))
		if _, err := c.Bye(ctxT(b, 5*time.Second)); err != nil {
			b.Fatal(err)
		}
		e.waitIdle()
	}
	slices.Sort(took)
	pct := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
	}
	hold := float64(phone.DTMFDuration.Microseconds()) / 1000
	b.ReportMetric(pct(0.5), "press-p50-ms")
	b.ReportMetric(pct(0.99), "press-p99-ms")
	b.ReportMetric(pct(0.5)-hold, "end-p50-ms")
	b.ReportMetric(pct(0.99)-hold, "end-p99-ms")
}
