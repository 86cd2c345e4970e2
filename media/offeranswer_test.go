package media

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// peerSDP is a peer's SDP: version v, direction attribute dir ("" for none), audio
// formats fmts with telephone-event at te (0: none), at address addr.
func peerSDP(v int, addr, dir, fmts string, te int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 555 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 7000 RTP/AVP %s", v, addr, addr, fmts)
	if te != 0 {
		fmt.Fprintf(&b, " %d", te)
	}
	b.WriteString("\r\n")
	if te != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\n", te)
	}
	if dir != "" {
		b.WriteString("a=" + dir + "\r\n")
	}
	return []byte(b.String())
}

func newTestOA() *OfferAnswer {
	return NewOfferAnswer(OfferAnswerConfig{Addr: netip.MustParseAddr("203.0.113.5"), Port: 20000, SessionID: 42})
}

// oaStep is one event of a leg's life and what must hold after it.
type oaStep struct {
	do   string // "offer" (peer offers body), "answer" (peer answers body), "ouroffer", "hold", "resume", "rollback"
	body []byte
	err  error

	dir       Direction // OfferAnswer.Direction after the step
	peerHolds bool
	holding   bool
	pending   bool
	sdpDir    Direction // direction line of the SDP we produced (answer or offer); 0: skip
	version   uint64    // o= version of the SDP we produced; 0: skip
	contains  []string  // lines our SDP must contain
	codec     Codec     // negotiated codec; zero: skip
	dtmfPT    int       // negotiated telephone-event payload type; 0: skip
}

func runOA(t *testing.T, oa *OfferAnswer, steps []oaStep) {
	t.Helper()
	for i, s := range steps {
		var (
			body []byte
			neg  Negotiated
			err  error
		)
		switch s.do {
		case "offer":
			body, neg, err = oa.AnswerOffer(s.body)
		case "answer":
			neg, err = oa.ReceiveAnswer(s.body)
		case "ouroffer":
			body, err = oa.Offer()
		case "hold":
			body, err = oa.Hold()
		case "resume":
			body, err = oa.Resume()
		case "rollback":
			oa.Rollback()
		default:
			t.Fatalf("step %d: unknown %q", i, s.do)
		}
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d %s: err = %v, want %v", i, s.do, err, s.err)
			}
		} else if err != nil {
			t.Fatalf("step %d %s: %v", i, s.do, err)
		}
		if oa.Direction() != s.dir || oa.PeerHolds() != s.peerHolds || oa.Holding() != s.holding || oa.OfferPending() != s.pending {
			t.Errorf("step %d %s: dir %v peerHolds %v holding %v pending %v, want %v %v %v %v", i, s.do,
				oa.Direction(), oa.PeerHolds(), oa.Holding(), oa.OfferPending(), s.dir, s.peerHolds, s.holding, s.pending)
		}
		if body != nil {
			d, err := ParseSDP(body)
			if err != nil {
				t.Fatalf("step %d: our sdp does not parse: %v\n%s", i, err, body)
			}
			if s.sdpDir != 0 && d.Direction != s.sdpDir {
				t.Errorf("step %d %s: our sdp says %v, want %v\n%s", i, s.do, d.Direction, s.sdpDir, body)
			}
			if s.version != 0 && d.SessionVersion != s.version {
				t.Errorf("step %d %s: o= version %d, want %d", i, s.do, d.SessionVersion, s.version)
			}
			for _, line := range s.contains {
				if !strings.Contains(string(body), line+"\r\n") {
					t.Errorf("step %d %s: our sdp lacks %q\n%s", i, s.do, line, body)
				}
			}
		}
		if !s.codec.IsZero() && neg.Codec != s.codec {
			t.Errorf("step %d %s: codec %v, want %v", i, s.do, neg.Codec, s.codec)
		}
		if s.dtmfPT != 0 && (!neg.HasDTMF || int(neg.DTMFPayloadType) != s.dtmfPT) {
			t.Errorf("step %d %s: telephone-event %v/%d, want %d", i, s.do, neg.HasDTMF, neg.DTMFPayloadType, s.dtmfPT)
		}
	}
}

func TestOfferAnswer(t *testing.T) {
	const peer = "10.0.0.7"
	sr, so, ro, in := DirSendRecv, DirSendOnly, DirRecvOnly, DirInactive
	fullOffer := []string{"m=audio 20000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"}
	tests := []struct {
		name  string
		steps []oaStep
	}{
		{"initial offer and answer", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "8 0", 101), dir: sr, sdpDir: sr, version: 1, codec: PCMA, dtmfPT: 101,
				contains: []string{"m=audio 20000 RTP/AVP 8 101", "o=matterline 42 1 IN IP4 203.0.113.5"}},
		}},
		{"peer hold and resume with sdp", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
			{do: "offer", body: peerSDP(2, peer, "sendonly", "0", 101), dir: ro, peerHolds: true, sdpDir: ro, version: 2},
			{do: "offer", body: peerSDP(3, peer, "sendrecv", "0", 101), dir: sr, sdpDir: sr, version: 3},
		}},
		{"peer hold inactive and rfc 2543 hold", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr},
			{do: "offer", body: peerSDP(2, peer, "inactive", "0", 101), dir: in, peerHolds: true, sdpDir: in},
			{do: "offer", body: peerSDP(3, "0.0.0.0", "", "0", 101), dir: in, peerHolds: true, sdpDir: in},
			{do: "offer", body: peerSDP(4, "0.0.0.0", "sendrecv", "0", 101), dir: ro, peerHolds: true, sdpDir: ro},
			{do: "offer", body: peerSDP(5, peer, "", "0", 101), dir: sr, sdpDir: sr},
		}},
		{"peer offerless re-invite resumes after hold", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
			{do: "offer", body: peerSDP(2, peer, "sendonly", "0", 101), dir: ro, peerHolds: true, sdpDir: ro, version: 2},
			// RFC 6337 §5.3: our offer is sendrecv with everything we can do.
			{do: "ouroffer", dir: ro, peerHolds: true, pending: true, sdpDir: sr, version: 3, contains: fullOffer},
			{do: "answer", body: peerSDP(3, peer, "sendrecv", "0", 101), dir: sr, codec: PCMU, dtmfPT: 101},
		}},
		{"late offer", []oaStep{
			{do: "ouroffer", dir: DirUnknown, pending: true, sdpDir: sr, version: 1, contains: fullOffer},
			{do: "answer", body: peerSDP(1, peer, "", "8", 101), dir: sr, codec: PCMA, dtmfPT: 101},
		}},
		{"late offer, ack without body", []oaStep{
			{do: "ouroffer", dir: DirUnknown, pending: true, sdpDir: sr},
			{do: "rollback", dir: DirUnknown},
		}},
		{"our hold, answer recvonly, our resume", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
			{do: "hold", dir: sr, pending: true, sdpDir: so, version: 2},
			{do: "answer", body: peerSDP(2, peer, "recvonly", "0", 101), dir: so, holding: true},
			// A peer re-offer while we hold: we stay sendonly.
			{do: "offer", body: peerSDP(3, peer, "sendrecv", "0", 101), dir: so, holding: true, sdpDir: so, version: 3},
			{do: "resume", dir: so, holding: true, pending: true, sdpDir: sr, version: 4},
			{do: "answer", body: peerSDP(4, peer, "sendrecv", "0", 101), dir: sr},
		}},
		{"both hold", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr},
			{do: "offer", body: peerSDP(2, peer, "sendonly", "0", 101), dir: ro, peerHolds: true, sdpDir: ro},
			{do: "hold", dir: ro, peerHolds: true, pending: true, sdpDir: in},
			{do: "answer", body: peerSDP(3, peer, "inactive", "0", 101), dir: in, peerHolds: true, holding: true},
			// The peer resumes: we still hold, so we answer sendonly.
			{do: "offer", body: peerSDP(4, peer, "sendrecv", "0", 101), dir: so, holding: true, sdpDir: so},
			// We hold while on hold ourselves, the peer answers inactive.
			{do: "offer", body: peerSDP(5, peer, "inactive", "0", 101), dir: in, peerHolds: true, holding: true, sdpDir: in},
			// Offerless re-INVITE while we hold: sendonly, never the peer's old inactive.
			{do: "ouroffer", dir: in, peerHolds: true, holding: true, pending: true, sdpDir: so},
			{do: "answer", body: peerSDP(6, peer, "recvonly", "0", 101), dir: so, holding: true},
		}},
		{"glare and rollback", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
			{do: "hold", dir: sr, pending: true, sdpDir: so, version: 2},
			{do: "offer", body: peerSDP(2, peer, "sendonly", "0", 101), err: ErrGlare, dir: sr, pending: true},
			{do: "hold", err: ErrOfferPending, dir: sr, pending: true},
			{do: "rollback", dir: sr},
			{do: "answer", body: peerSDP(2, peer, "", "0", 101), err: ErrNoOfferPending, dir: sr},
			// The same answer as before the hold attempt: content differs from the
			// last SDP sent (the hold offer), so the version still goes up.
			{do: "offer", body: peerSDP(2, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 3},
		}},
		{"bad answer rolls back", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr},
			{do: "hold", dir: sr, pending: true, sdpDir: so},
			{do: "answer", body: peerSDP(2, peer, "recvonly", "18", 0), err: ErrNoCommonCodec, dir: sr},
		}},
		{"bad offers leave the state", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
			{do: "offer", body: []byte("garbage"), err: ErrBadSDP, dir: sr},
			{do: "offer", body: peerSDP(2, peer, "sendonly", "18", 101), err: ErrNoCommonCodec, dir: sr},
			{do: "offer", body: peerSDP(3, peer, "", "0", 101), dir: sr, sdpDir: sr, version: 1},
		}},
		{"version bump rules", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, version: 1},
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, version: 1}, // session refresh
			{do: "offer", body: peerSDP(2, peer, "", "8 0", 101), dir: sr, version: 1, codec: PCMU},
			{do: "offer", body: peerSDP(3, peer, "", "8", 101), dir: sr, version: 2, codec: PCMA},
			{do: "ouroffer", dir: sr, pending: true, version: 3},
			{do: "answer", body: peerSDP(4, peer, "", "8", 101), dir: sr},
			{do: "ouroffer", dir: sr, pending: true, version: 3}, // same offer again
			{do: "rollback", dir: sr},
		}},
		{"telephone-event payload type change followed", []oaStep{
			{do: "offer", body: peerSDP(1, peer, "", "0", 101), dir: sr, dtmfPT: 101, contains: []string{"a=rtpmap:101 telephone-event/8000"}},
			{do: "offer", body: peerSDP(2, peer, "", "0", 96), dir: sr, dtmfPT: 96, version: 2, contains: []string{"a=rtpmap:96 telephone-event/8000"}},
			{do: "ouroffer", dir: sr, pending: true, contains: []string{"m=audio 20000 RTP/AVP 0 8 96"}},
		}},
		{"audio and video offer answered with two m-lines", []oaStep{
			{do: "offer", body: sdpBaresipVideo, dir: sr, codec: PCMU, dtmfPT: 100,
				contains: []string{"m=audio 20000 RTP/AVP 0 100", "m=video 0 RTP/AVP 97"}},
			// Our later offer keeps the rejected video line.
			{do: "hold", dir: sr, pending: true, sdpDir: so, contains: []string{"m=audio 20000 RTP/AVP 0 8 100", "m=video 0 RTP/AVP 97"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runOA(t, newTestOA(), tt.steps) })
	}
}

// An answer must keep the m= lines of our offer; one that moves the audio stream is
// an error and rolls the offer back.
func TestOfferAnswerAnswerStreams(t *testing.T) {
	oa := newTestOA()
	if _, _, err := oa.AnswerOffer(sdpSAVPThenAVP); err != nil {
		t.Fatal(err)
	}
	if l := oa.Local(); l.AudioIndex != 1 || len(l.Rejected) != 1 {
		t.Fatalf("local %+v", l)
	}
	body, err := oa.Hold()
	if err != nil {
		t.Fatal(err)
	}
	if ml := mLines(body); len(ml) != 2 || ml[0] != "m=audio 0 RTP/SAVP 8 0 101" || !strings.HasPrefix(ml[1], "m=audio 20000 RTP/AVP 8 ") {
		t.Fatalf("hold offer m= lines %q", ml)
	}
	if _, err := oa.ReceiveAnswer(peerSDP(9, "10.0.0.7", "recvonly", "8", 101)); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("single-stream answer: %v", err)
	}
	if oa.OfferPending() || oa.Holding() || oa.Direction() != DirSendRecv {
		t.Fatalf("not rolled back: pending %v holding %v dir %v", oa.OfferPending(), oa.Holding(), oa.Direction())
	}
}

func FuzzOfferAnswer(f *testing.F) {
	for _, s := range [][]byte{sdpYealink, sdpAsterisk, sdpBaresip, sdpLinphone, sdpHoldSendonly, sdpOldHold,
		sdpSRTP, sdpCiscoVideo, sdpSAVPThenAVP, sdpBaresipVideo, sdpDisabledFirst, sdpOpusThenG711} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, op uint8) {
		oa := newTestOA()
		switch op % 3 {
		case 0: // the body is an offer, then a re-offer
			for range 2 {
				ans, _, err := oa.AnswerOffer(body)
				if err != nil {
					return
				}
				if _, err := ParseSDP(ans); err != nil {
					t.Fatalf("our answer does not parse: %v\n%s", err, ans)
				}
			}
		case 1: // the body answers our late offer
			if _, err := oa.Offer(); err != nil {
				t.Fatal(err)
			}
			if _, err := oa.ReceiveAnswer(body); err != nil && oa.OfferPending() {
				t.Fatal("failed answer left the offer pending")
			}
		case 2: // the body is an offer, then we hold and it is also the answer
			if _, _, err := oa.AnswerOffer(body); err != nil {
				return
			}
			offer, err := oa.Hold()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseSDP(offer); err != nil {
				t.Fatalf("our offer does not parse: %v\n%s", err, offer)
			}
			_, _ = oa.ReceiveAnswer(body)
		}
	})
}
