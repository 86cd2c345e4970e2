package sip

import (
	"net/netip"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
)

// splitHeaderList splits peer-supplied header values (Record-Route): no panic,
// entries trimmed and within the input. (Empty entries, from ",,", are possible:
// recordRoutes skips what does not parse as an address.)
func FuzzSplitHeaderList(f *testing.F) {
	for _, s := range []string{
		"<sip:10.0.0.5;lr>, <sip:10.0.0.6;lr>",
		`"Smith, John" <sip:a@b>, <sip:c@d;lr>`,
		"<sip:edge.example;lr>,<sip:core.example;lr>",
		"sip:p1.example.com;lr, sip:p2.example.com;lr",
		"<<sip:x>>>, ,,\"",
		",",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, e := range splitHeaderList(v) {
			if strings.TrimSpace(e) != e || !strings.Contains(v, e) {
				t.Fatalf("entry %q of %q", e, v)
			}
		}
	})
}

// The caller leg's dialog state comes from a peer's INVITE (RFC 3261 §12.1.1):
// sipgo parses the datagram, leg_inbound.go checks the mandatory headers, then
// uasDialog, recordRoutes and the requests built from the dialog (BYE with its
// Route set, §12.2.1.1) must not panic on whatever the headers hold. A 2xx of
// an outbound leg goes through confirmUAC the same way (§12.1.2).
func FuzzDialogFromMessage(f *testing.F) {
	for _, s := range []string{
		`INVITE sip:100@10.0.0.20 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1
Record-Route: <sip:10.0.0.5;lr>, <sip:10.0.0.6;lr>
Record-Route: <sip:10.0.0.7;lr>
From: <sip:+12175552171@pbx>;tag=abc
To: <sip:100@10.0.0.20>
Call-ID: c1
CSeq: 7 INVITE
Contact: <sip:caller@192.168.1.9:5062>
Content-Length: 0

`,
		`INVITE sip:100@10.0.0.20 SIP/2.0
Via: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bK2
From: "Smith, John" <sip:+12175552171@pbx>;tag=abc
To: <sip:100@10.0.0.20>
Call-ID: c2
CSeq: 1 INVITE
Contact: <sips:caller@[2001:db8::1]:5061;transport=tls>
Content-Length: 0

`,
		`SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK3
Record-Route: <sip:edge.example;lr>, <sip:core.example;lr>
From: <sip:100@10.0.0.20>;tag=ours
To: <sip:+12175550101@carrier>;tag=theirs
Call-ID: c3
CSeq: 1 INVITE
Contact: <sip:gw@203.0.113.9:5060>
Content-Length: 0

`,
		`INVITE sip:x SIP/2.0
Via: SIP/2.0/UDP h
Record-Route: <sip:a;lr>,,"<",<>
From: <sip:a>
To: <sip:b>
Call-ID: c
CSeq: 1 INVITE
Contact: *
Content-Length: 0

`,
	} {
		f.Add([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := gosip.ParseMessage(data)
		if err != nil {
			return // sipgo drops what it cannot parse before our code sees it
		}
		var d *dialog
		switch m := msg.(type) {
		case *gosip.Request:
			if m.From() == nil || m.To() == nil || m.CallID() == nil || m.CSeq() == nil || m.Contact() == nil {
				return // leg_inbound.go refuses these first
			}
			d = uasDialog(m, "ours")
		case *gosip.Response:
			if m.CSeq() == nil || m.CallID() == nil {
				return // leg_outbound.go ignores these
			}
			d = &dialog{callID: m.CallID().Value(), localTag: "ours", transport: "UDP"}
			d.confirmUAC(m)
			_ = d.ack(m.CSeq().SeqNo).String()
		default:
			return
		}
		d.laddr, d.advertise = netip.MustParseAddrPort("10.0.0.20:5060"), netip.MustParseAddr("10.0.0.20")
		bye := d.request(gosip.BYE)
		if bye.CSeq() == nil || bye.CSeq().SeqNo != 1 {
			t.Fatalf("BYE CSeq %v", bye.CSeq())
		}
		_ = bye.String()
	})
}
