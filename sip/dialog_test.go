package sip

import (
	"net/netip"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
)

func parseReq(t *testing.T, raw string) *gosip.Request {
	t.Helper()
	msg, err := gosip.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	req, ok := msg.(*gosip.Request)
	if !ok {
		t.Fatalf("not a request: %T", msg)
	}
	return req
}

func parseRes(t *testing.T, raw string) *gosip.Response {
	t.Helper()
	msg, err := gosip.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	res, ok := msg.(*gosip.Response)
	if !ok {
		t.Fatalf("not a response: %T", msg)
	}
	return res
}

func routes(req *gosip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Route") {
		out = append(out, h.Value())
	}
	return out
}

// RFC 3261 §12.1.1 and §12.2.1.1: the caller leg's route set is the INVITE's
// Record-Route in order; loose routing keeps the remote target as Request-URI.
func TestUASDialogRouteSet(t *testing.T) {
	inv := parseReq(t, `INVITE sip:100@10.0.0.20 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1
Record-Route: <sip:10.0.0.5;lr>, <sip:10.0.0.6;lr>
Record-Route: <sip:10.0.0.7;lr>
From: <sip:+12175552171@pbx>;tag=abc
To: <sip:100@10.0.0.20>
Call-ID: c1
CSeq: 7 INVITE
Contact: <sip:caller@192.168.1.9:5062>
Content-Length: 0

`)
	d := uasDialog(inv, "ours")
	d.laddr, d.advertise = netip.MustParseAddrPort("10.0.0.20:5060"), netip.MustParseAddr("10.0.0.20")
	bye := d.request(gosip.BYE)
	if got := bye.Recipient.String(); got != "sip:caller@192.168.1.9:5062" {
		t.Errorf("Request-URI %s, want the remote target", got)
	}
	if got := strings.Join(routes(bye), " | "); got != "<sip:10.0.0.5;lr> | <sip:10.0.0.6;lr> | <sip:10.0.0.7;lr>" {
		t.Errorf("Route %s", got)
	}
	if got := bye.Destination(); got != "10.0.0.5:5060" {
		t.Errorf("sent to %s, want the first route", got)
	}
	if bye.CSeq().SeqNo != 1 || d.request(gosip.INFO).CSeq().SeqNo != 2 {
		t.Error("local CSeq does not count up from 1")
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "abc" {
		t.Errorf("To tag %q", tag)
	}
	if tag, _ := bye.From().Params.Get("tag"); tag != "ours" {
		t.Errorf("From tag %q", tag)
	}
	// §12.2.2: CSeq order of the caller's requests.
	if !d.checkRemoteCSeq(parseReq(t, "INFO sip:x@y SIP/2.0\nCSeq: 8 INFO\nContent-Length: 0\n\n")) {
		t.Error("higher CSeq refused")
	}
	if d.checkRemoteCSeq(parseReq(t, "INFO sip:x@y SIP/2.0\nCSeq: 8 INFO\nContent-Length: 0\n\n")) {
		t.Error("repeated CSeq accepted")
	}
}

// RFC 3261 §12.1.2: the outbound leg's route set is the 2xx's Record-Route
// reversed; its ACK (§13.2.2.4) reuses the INVITE's CSeq and follows it too.
func TestUACDialogRouteSetAndAck(t *testing.T) {
	d := &dialog{callID: "leg1", localTag: "mine", transport: "UDP",
		local:        gosip.Uri{Scheme: "sip", User: "matterline", Host: "10.0.0.20"},
		remote:       gosip.Uri{Scheme: "sip", User: "101", Host: "proxy"},
		remoteTarget: gosip.Uri{Scheme: "sip", User: "101", Host: "proxy"},
		localCSeq:    1,
		laddr:        netip.MustParseAddrPort("10.0.0.20:5060"), advertise: netip.MustParseAddr("10.0.0.20")}
	raw := `SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK1
Record-Route: <sip:edge.example;lr>, <sip:core.example;lr>
From: <sip:matterline@10.0.0.20>;tag=mine
To: <sip:101@proxy>;tag=theirs
Call-ID: leg1
CSeq: 1 INVITE
Contact: <sip:101@192.168.7.7:5060>
Content-Length: 0

`
	d.confirmUAC(parseRes(t, raw))
	ack := d.ack(1)
	if ack.CSeq().SeqNo != 1 || ack.CSeq().MethodName != gosip.ACK {
		t.Errorf("ACK CSeq %v", ack.CSeq())
	}
	if got := strings.Join(routes(ack), " | "); got != "<sip:core.example;lr> | <sip:edge.example;lr>" {
		t.Errorf("ACK Route %s, want the Record-Route reversed", got)
	}
	if ack.Recipient.String() != "sip:101@192.168.7.7:5060" {
		t.Errorf("ACK Request-URI %s", ack.Recipient.String())
	}
	bye := d.request(gosip.BYE)
	if bye.CSeq().SeqNo != 2 || bye.Destination() != "core.example:5060" {
		t.Errorf("BYE CSeq %d to %s", bye.CSeq().SeqNo, bye.Destination())
	}
	// A second fork's 2xx is a dialog of its own (§13.2.2.4).
	other := parseRes(t, strings.Replace(strings.Replace(raw, "tag=theirs", "tag=fork2", 1), "Record-Route: <sip:edge.example;lr>, <sip:core.example;lr>\n", "", 1))
	f := d.fork(other)
	if f.remoteTag != "fork2" || len(f.routeSet) != 0 || d.remoteTag != "theirs" || len(d.routeSet) != 2 {
		t.Errorf("fork: %+v / original %+v", f, d)
	}

	// Without Record-Route in-dialog requests go to the remote target, not to the
	// proxy the INVITE went through.
	d2 := *d
	d2.routeSet = nil
	if got := d2.request(gosip.BYE); len(routes(got)) != 0 || got.Destination() != "192.168.7.7:5060" {
		t.Errorf("no route set: Route %v, sent to %s", routes(got), got.Destination())
	}
}

// RFC 3261 §12.2.1.1: a strict router (no lr) becomes the Request-URI and the
// remote target the last Route.
func TestDialogStrictRoute(t *testing.T) {
	d := &dialog{callID: "c", localTag: "a", remoteTag: "b", transport: "UDP",
		routeSet:     []gosip.Uri{{Scheme: "sip", Host: "strict.example"}, {Scheme: "sip", Host: "next.example", UriParams: gosip.HeaderParams{{K: "lr"}}}},
		remoteTarget: gosip.Uri{Scheme: "sip", User: "bob", Host: "192.168.1.2"},
		laddr:        netip.MustParseAddrPort("10.0.0.20:5060"), advertise: netip.MustParseAddr("10.0.0.20")}
	req := d.request(gosip.BYE)
	if req.Recipient.Host != "strict.example" {
		t.Errorf("Request-URI %s, want the strict router", req.Recipient.String())
	}
	if got := strings.Join(routes(req), " | "); got != "<sip:next.example;lr> | <sip:bob@192.168.1.2>" {
		t.Errorf("Route %s", got)
	}
}

func TestEndsDialog(t *testing.T) {
	for code, want := range map[int]bool{481: true, 408: true, 404: false, 486: false, 200: false} {
		if endsDialog(code) != want {
			t.Errorf("endsDialog(%d) = %v", code, !want)
		}
	}
}

// fromPeer: the dialog's starting address, its first route hop and its remote
// target's host are the peer; anything else is a stranger.
func TestDialogFromPeer(t *testing.T) {
	d := &dialog{peer: netip.MustParseAddr("10.0.0.5"),
		routeSet:     []gosip.Uri{{Scheme: "sip", Host: "10.0.0.6"}},
		remoteTarget: gosip.Uri{Scheme: "sip", User: "bob", Host: "192.168.1.2"}}
	for addr, want := range map[string]bool{
		"10.0.0.5": true, "10.0.0.6": true, "192.168.1.2": true,
		"127.0.0.2": false, "10.0.0.7": false,
	} {
		if got := d.fromPeer(netip.MustParseAddr(addr)); got != want {
			t.Errorf("fromPeer(%s) = %v, want %v", addr, got, want)
		}
	}
	if d.fromPeer(netip.Addr{}) {
		t.Error("an unknown source counts as the peer")
	}
}
