package sip

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// A NOTIFY's body and Event header come from the peer (RFC 3515 §2.4.5,
// RFC 3420): sipfragStatus never panics, reads only a 1xx-6xx status and maps
// every refusal to a sentinel that errorResponse turns into a SIP answer.
func FuzzSipfragStatus(f *testing.F) {
	for _, s := range [][2]string{
		{"message/sipfrag", "SIP/2.0 200 OK\r\n"},
		{"message/sipfrag;version=2.0", "SIP/2.0 100 Trying"},
		{"", "SIP/2.0 503 Service Unavailable\r\nContent-Length: 0\r\n"},
		{"Message/SIPfrag", "sip/2.0 180 Ringing\r\n"},
		{"message/sipfrag", "INVITE sip:x SIP/2.0"},
		{"message/sipfrag", "SIP/2.0 99 Bad"},
		{"message/sipfrag", "SIP/2.0 +200 OK"},
		{"message/sipfrag", "SIP/2.0\t 0200\r\n"},
		{"text/plain", "SIP/2.0 200 OK"},
		{"message/sipfrag; boundary=\"", "SIP/2.0 200 OK"},
		{"message/sipfrag", ""},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		code, err := sipfragStatus(ct, body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrUnsupportedBody) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if code != 0 {
				t.Fatalf("code %d with error %v", code, err)
			}
			return
		}
		if code < 100 || code > 699 {
			t.Fatalf("code %d out of range", code)
		}
		if len(body) > maxSipfrag {
			t.Fatalf("accepted a %d-byte body", len(body))
		}
	})
}

// eventIDMatches reads the Event header's parameters of a peer's NOTIFY
// (RFC 3515 §2.4.6): no panic, and an id parameter naming the REFER's CSeq
// always matches.
func FuzzEventIDMatches(f *testing.F) {
	for _, p := range []string{"", "id=7", " id = 7 ", "id=8", "x=1;id=7", "x=1;id=70", "id=7;retry=1", ";;;", "id", "id=", "=7"} {
		f.Add(p, uint32(7))
	}
	f.Add("id=4294967295", uint32(4294967295))
	f.Fuzz(func(t *testing.T, params string, id uint32) {
		eventIDMatches(params, id)
		if !strings.Contains(params, "id") && !eventIDMatches(params, id) {
			t.Fatalf("%q has no id parameter but does not match", params)
		}
		own := "id=" + strconv.FormatUint(uint64(id), 10)
		if !eventIDMatches(own, id) || !eventIDMatches(own+";"+params, id) {
			t.Fatalf("%q does not match its own id %d", own+";"+params, id)
		}
	})
}
