package media

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// crlf turns a readable multi-line literal into an SDP body with CRLF line ends.
func crlf(s string) []byte {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// Offers as real endpoints send them (addresses changed).
var (
	sdpYealink = crlf(`v=0
		o=- 20040 20040 IN IP4 10.0.0.23
		s=SDP data
		c=IN IP4 10.0.0.23
		t=0 0
		m=audio 11800 RTP/AVP 0 8 18 9 101
		a=rtpmap:0 PCMU/8000
		a=rtpmap:8 PCMA/8000
		a=rtpmap:18 G729/8000
		a=fmtp:18 annexb=no
		a=rtpmap:9 G722/8000
		a=fmtp:101 0-15
		a=rtpmap:101 telephone-event/8000
		a=ptime:20
		a=sendrecv`)
	sdpPolycom = crlf(`v=0
		o=- 1689012345 1689012345 IN IP4 192.168.1.50
		s=Polycom IP Phone
		c=IN IP4 192.168.1.50
		t=0 0
		a=sendrecv
		m=audio 2222 RTP/AVP 9 0 8 101
		a=rtpmap:9 G722/8000
		a=rtpmap:0 PCMU/8000
		a=rtpmap:8 PCMA/8000
		a=rtpmap:101 telephone-event/8000`)
	sdpTwilio = crlf(`v=0
		o=root 1234567890 1234567890 IN IP4 54.172.60.1
		s=Twilio Media Gateway
		c=IN IP4 54.172.60.1
		t=0 0
		m=audio 13640 RTP/AVP 0 101
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=fmtp:101 0-16
		a=ptime:20
		a=maxptime:20
		a=sendrecv`)
	sdpAsterisk = crlf(`v=0
		o=- 1122334455 1122334457 IN IP4 10.1.2.3
		s=Asterisk
		c=IN IP4 10.1.2.3
		t=0 0
		m=audio 17234 RTP/AVP 8 0 101
		a=rtpmap:8 PCMA/8000
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=fmtp:101 0-16
		a=ptime:20
		a=maxptime:150
		a=sendrecv`)
	// Linphone offers telephone-event at three rates; only /8000 (99) fits our codecs.
	sdpLinphone = crlf(`v=0
		o=alice 2157 3058 IN IP4 192.168.0.12
		s=Talk
		c=IN IP4 192.168.0.12
		t=0 0
		a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
		m=audio 7078 RTP/AVP 96 97 98 0 8 101 100 99
		a=rtpmap:96 opus/48000/2
		a=fmtp:96 useinbandfec=1
		a=rtpmap:97 speex/16000
		a=fmtp:97 vbr=on
		a=rtpmap:98 speex/8000
		a=fmtp:98 vbr=on
		a=rtpmap:101 telephone-event/48000
		a=rtpmap:100 telephone-event/16000
		a=rtpmap:99 telephone-event/8000
		a=rtcp-fb:* trr-int 1000
		a=rtcp-fb:* ccm tmmbr`)
	sdpBaresip = crlf(`v=0
		o=- 1193491409 6543 IN IP4 192.168.1.10
		s=-
		c=IN IP4 192.168.1.10
		t=0 0
		m=audio 10328 RTP/AVP 96 0 8 100
		b=AS:512
		a=rtpmap:96 opus/48000/2
		a=fmtp:96 stereo=1;sprop-stereo=1
		a=rtpmap:0 PCMU/8000
		a=rtpmap:8 PCMA/8000
		a=rtpmap:100 telephone-event/8000
		a=fmtp:100 0-15
		a=sendrecv
		a=label:1`)
	sdpSippUAC = crlf(`v=0
		o=user1 53655765 2353687637 IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=audio 6000 RTP/AVP 0
		a=rtpmap:0 PCMU/8000`)
	sdpSippPcap = crlf(`v=0
		o=user1 53655765 2353687637 IN IP4 127.0.0.1
		s=-
		c=IN IP4 127.0.0.1
		t=0 0
		m=audio 6002 RTP/AVP 0 101
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=fmtp:101 0-11,16`)
	sdpG729Only = crlf(`v=0
		o=- 1 1 IN IP4 10.9.9.9
		s=-
		c=IN IP4 10.9.9.9
		t=0 0
		m=audio 4000 RTP/AVP 18 101
		a=rtpmap:18 G729/8000
		a=fmtp:18 annexb=no
		a=rtpmap:101 telephone-event/8000`)
	sdpOpusOnly = crlf(`v=0
		o=- 1 1 IN IP4 10.9.9.9
		s=-
		c=IN IP4 10.9.9.9
		t=0 0
		m=audio 4000 RTP/AVP 111
		a=rtpmap:111 opus/48000/2`)
	sdpHoldSendonly = crlf(`v=0
		o=- 20040 20041 IN IP4 10.0.0.23
		s=SDP data
		c=IN IP4 10.0.0.23
		t=0 0
		m=audio 11800 RTP/AVP 0 101
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=sendonly`)
	sdpHoldInactive = crlf(`v=0
		o=- 20040 20042 IN IP4 10.0.0.23
		s=-
		c=IN IP4 10.0.0.23
		t=0 0
		m=audio 11800 RTP/AVP 8 101
		a=rtpmap:8 PCMA/8000
		a=rtpmap:101 telephone-event/8000
		a=inactive`)
	sdpRecvonly = crlf(`v=0
		o=- 20040 20043 IN IP4 10.0.0.23
		s=-
		c=IN IP4 10.0.0.23
		t=0 0
		a=recvonly
		m=audio 11800 RTP/AVP 0
		a=rtpmap:0 PCMU/8000`)
	sdpOldHold = crlf(`v=0
		o=- 20040 20044 IN IP4 10.0.0.23
		s=-
		c=IN IP4 0.0.0.0
		t=0 0
		m=audio 11800 RTP/AVP 0 101
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000`)
	sdpMediaLevelC = crlf(`v=0
		o=- 7 7 IN IP4 10.0.0.1
		s=-
		t=0 0
		m=audio 30000 RTP/AVP 8 0
		c=IN IP4 10.0.0.99
		a=rtpmap:8 PCMA/8000
		a=rtpmap:0 PCMU/8000`)
	sdpIPv6 = crlf(`v=0
		o=- 5 5 IN IP6 2001:db8::10
		s=-
		c=IN IP6 2001:db8::10
		t=0 0
		m=audio 40000 RTP/AVP 0 8 101
		a=rtpmap:101 telephone-event/8000
		a=fmtp:101 0-16
		a=ptime:30`)
	sdpSRTP = crlf(`v=0
		o=- 5 5 IN IP4 10.0.0.1
		s=-
		c=IN IP4 10.0.0.1
		t=0 0
		m=audio 40000 RTP/SAVP 0 101
		a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
		a=rtpmap:101 telephone-event/8000`)
)

func TestNegotiate(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name      string
		sdp       []byte
		allowed   []Codec
		codec     Codec
		dtmf      int // -1: none
		remote    netip.AddrPort
		offerDir  Direction
		answerDir Direction
		ptime     int
		err       error
	}{
		{"yealink pcmu pcma te101", sdpYealink, nil, PCMU, 101, ap("10.0.0.23:11800"), DirSendRecv, DirSendRecv, 20, nil},
		{"polycom g722 first, session sendrecv", sdpPolycom, nil, PCMU, 101, ap("192.168.1.50:2222"), DirSendRecv, DirSendRecv, 0, nil},
		{"twilio trunk pcmu only", sdpTwilio, nil, PCMU, 101, ap("54.172.60.1:13640"), DirSendRecv, DirSendRecv, 20, nil},
		{"asterisk pcma first", sdpAsterisk, nil, PCMA, 101, ap("10.1.2.3:17234"), DirSendRecv, DirSendRecv, 20, nil},
		{"asterisk pcma first, we allow pcmu only", sdpAsterisk, []Codec{PCMU}, PCMU, 101, ap("10.1.2.3:17234"), DirSendRecv, DirSendRecv, 20, nil},
		{"linphone opus first, te at 99 by rate", sdpLinphone, nil, PCMU, 99, ap("192.168.0.12:7078"), DirSendRecv, DirSendRecv, 0, nil},
		{"baresip opus first, te 100", sdpBaresip, nil, PCMU, 100, ap("192.168.1.10:10328"), DirSendRecv, DirSendRecv, 0, nil},
		{"sipp uac default", sdpSippUAC, nil, PCMU, -1, ap("127.0.0.1:6000"), DirSendRecv, DirSendRecv, 0, nil},
		{"sipp with te 101", sdpSippPcap, nil, PCMU, 101, ap("127.0.0.1:6002"), DirSendRecv, DirSendRecv, 0, nil},
		{"g729 only", sdpG729Only, nil, Codec{}, 0, netip.AddrPort{}, 0, 0, 0, ErrNoCommonCodec},
		{"opus only", sdpOpusOnly, nil, Codec{}, 0, netip.AddrPort{}, 0, 0, 0, ErrNoCommonCodec},
		{"pcma offer, pcmu allowed", sdpHoldInactive, []Codec{PCMU}, Codec{}, 0, netip.AddrPort{}, 0, 0, 0, ErrNoCommonCodec},
		{"hold sendonly", sdpHoldSendonly, nil, PCMU, 101, ap("10.0.0.23:11800"), DirSendOnly, DirRecvOnly, 0, nil},
		{"hold inactive", sdpHoldInactive, nil, PCMA, 101, ap("10.0.0.23:11800"), DirInactive, DirInactive, 0, nil},
		{"recvonly at session level", sdpRecvonly, nil, PCMU, -1, ap("10.0.0.23:11800"), DirRecvOnly, DirSendOnly, 0, nil},
		{"old hold c=0.0.0.0", sdpOldHold, nil, PCMU, 101, netip.AddrPort{}, DirInactive, DirInactive, 0, nil},
		{"media-level c= only", sdpMediaLevelC, nil, PCMA, -1, ap("10.0.0.99:30000"), DirSendRecv, DirSendRecv, 0, nil},
		{"ipv6, static pts without rtpmap", sdpIPv6, nil, PCMU, 101, ap("[2001:db8::10]:40000"), DirSendRecv, DirSendRecv, 30, nil},
		{"srtp", sdpSRTP, nil, Codec{}, 0, netip.AddrPort{}, 0, 0, 0, ErrUnsupportedTransport},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, err := ParseSDP(tt.sdp)
			if err != nil {
				t.Fatalf("ParseSDP: %v", err)
			}
			neg, err := Negotiate(desc, tt.allowed)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Negotiate error = %v, want %v", err, tt.err)
				}
				if !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("Negotiate error %v does not wrap ErrNoCommonCodec", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Negotiate: %v", err)
			}
			if neg.Codec != tt.codec {
				t.Errorf("codec = %+v, want %+v", neg.Codec, tt.codec)
			}
			if tt.dtmf < 0 {
				if neg.HasDTMF {
					t.Errorf("HasDTMF, want none")
				}
			} else if !neg.HasDTMF || int(neg.DTMFPayloadType) != tt.dtmf {
				t.Errorf("dtmf = %v/%d, want %d", neg.HasDTMF, neg.DTMFPayloadType, tt.dtmf)
			}
			if neg.Remote != tt.remote {
				t.Errorf("remote = %v, want %v", neg.Remote, tt.remote)
			}
			if desc.Direction != tt.offerDir {
				t.Errorf("offer direction = %v, want %v", desc.Direction, tt.offerDir)
			}
			if neg.Direction != tt.answerDir {
				t.Errorf("answer direction = %v, want %v", neg.Direction, tt.answerDir)
			}
			if desc.PtimeMS != tt.ptime {
				t.Errorf("ptime = %d, want %d", desc.PtimeMS, tt.ptime)
			}

			// Our answer must parse back to the same choice.
			ans := BuildSDP(neg.LocalSDP(netip.MustParseAddr("203.0.113.5"), 20000, 42, 1))
			back, err := ParseSDP(ans)
			if err != nil {
				t.Fatalf("ParseSDP(answer): %v\n%s", err, ans)
			}
			if len(back.Codecs) != 1 || back.Codecs[0] != tt.codec || back.HasDTMF != neg.HasDTMF ||
				back.DTMFPayloadType != neg.DTMFPayloadType || back.Direction != tt.answerDir {
				t.Errorf("answer parses as %+v\n%s", back, ans)
			}
		})
	}
}

func TestParseSDPDetails(t *testing.T) {
	d, err := ParseSDP(sdpAsterisk)
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionVersion != 1122334457 || d.SessionID != 1122334455 || d.Proto != "RTP/AVP" {
		t.Errorf("origin/proto = %d %d %q", d.SessionID, d.SessionVersion, d.Proto)
	}
	if len(d.Codecs) != 2 || d.Codecs[0] != PCMA || d.Codecs[1] != PCMU {
		t.Errorf("codecs = %v, want [PCMA PCMU] in offer order", d.Codecs)
	}

	// LF-only line ends and an explicit direction on the c=0.0.0.0 hold.
	lf := strings.ReplaceAll(string(sdpOldHold), "\r\n", "\n") + "a=sendonly\n"
	d, err = ParseSDP([]byte(lf))
	if err != nil {
		t.Fatal(err)
	}
	if d.Direction != DirSendOnly || d.Addr.IsValid() {
		t.Errorf("old hold with sendonly: %+v", d)
	}

	// PCMU mapped to a dynamic payload type keeps the peer's number.
	dyn := crlf(`v=0
		o=- 1 1 IN IP4 10.0.0.1
		s=-
		c=IN IP4 10.0.0.1
		t=0 0
		m=audio 5000 RTP/AVP 110 8
		a=rtpmap:110 pcmu/8000
		a=rtpmap:8 PCMA/8000`)
	d, err = ParseSDP(dyn)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Codecs) != 2 || d.Codecs[0].Name != "PCMU" || d.Codecs[0].PayloadType != 110 {
		t.Errorf("dynamic pcmu: %+v", d.Codecs)
	}
	neg, err := Negotiate(d, []Codec{PCMU, PCMA})
	if err != nil || neg.Codec.PayloadType != 110 {
		t.Errorf("negotiate dynamic pcmu: %+v, %v", neg, err)
	}
}

func TestParseSDPErrors(t *testing.T) {
	bad := map[string]string{
		"empty":          "",
		"garbage":        "hello world",
		"no audio":       "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n",
		"no c=":          "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
		"bad address":    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 not.an.ip\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
		"port zero":      "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
		"bad pt":         "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 300\r\n",
		"truncated":      string(sdpTwilio[:40]),
		"version 1":      "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
		"binary garbage": "\x00\xff\xfe=\r\n",
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSDP([]byte(body))
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("err = %v, want ErrBadSDP", err)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error not lowercase: %q", msg)
			}
		})
	}
}

func TestBuildSDP(t *testing.T) {
	got := string(BuildSDP(LocalSDP{
		Addr:            netip.MustParseAddr("203.0.113.5"),
		Port:            10002,
		SessionID:       1234,
		Version:         2,
		Codecs:          []Codec{PCMA},
		HasDTMF:         true,
		DTMFPayloadType: 101,
		Direction:       DirRecvOnly,
	}))
	want := "v=0\r\n" +
		"o=matterline 1234 2 IN IP4 203.0.113.5\r\n" +
		"s=matterline\r\n" +
		"c=IN IP4 203.0.113.5\r\n" +
		"t=0 0\r\n" +
		"m=audio 10002 RTP/AVP 8 101\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\n" +
		"a=ptime:20\r\n" +
		"a=recvonly\r\n"
	if got != want {
		t.Errorf("BuildSDP =\n%s\nwant\n%s", got, want)
	}

	v6 := string(BuildSDP(LocalSDP{Addr: netip.MustParseAddr("2001:db8::1"), Port: 20000}))
	for _, line := range []string{"o=matterline 0 0 IN IP6 2001:db8::1\r\n", "c=IN IP6 2001:db8::1\r\n",
		"m=audio 20000 RTP/AVP 0 8\r\n", "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:8 PCMA/8000\r\n", "a=sendrecv\r\n"} {
		if !strings.Contains(v6, line) {
			t.Errorf("ipv6 offer lacks %q:\n%s", line, v6)
		}
	}
	if strings.Contains(v6, "telephone-event") {
		t.Errorf("offer without dtmf lists telephone-event:\n%s", v6)
	}
}

func TestDirection(t *testing.T) {
	cases := []struct {
		d      Direction
		answer Direction
		hold   bool
		name   string
	}{
		{DirUnknown, DirSendRecv, false, "unknown"},
		{DirSendRecv, DirSendRecv, false, "sendrecv"},
		{DirSendOnly, DirRecvOnly, true, "sendonly"},
		{DirRecvOnly, DirSendOnly, false, "recvonly"},
		{DirInactive, DirInactive, true, "inactive"},
	}
	for _, c := range cases {
		if c.d.Answer() != c.answer || c.d.OnHold() != c.hold || c.d.String() != c.name {
			t.Errorf("%v: answer %v hold %v", c.d, c.d.Answer(), c.d.OnHold())
		}
	}
}

func FuzzParseSDP(f *testing.F) {
	for _, s := range [][]byte{sdpYealink, sdpPolycom, sdpTwilio, sdpAsterisk, sdpLinphone, sdpBaresip,
		sdpSippUAC, sdpSippPcap, sdpG729Only, sdpOpusOnly, sdpHoldSendonly, sdpHoldInactive, sdpRecvonly,
		sdpOldHold, sdpMediaLevelC, sdpIPv6, sdpSRTP, sdpCiscoVideo, sdpSAVPThenAVP, sdpBaresipVideo,
		sdpDisabledFirst, sdpOpusThenG711, sdpSAVPOnlyVideo} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseSDP(body)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("error %v does not wrap ErrBadSDP", err)
			}
			return
		}
		neg, err := Negotiate(d, nil)
		if err != nil {
			return
		}
		// Whatever we accepted, our answer must parse.
		if _, err := ParseSDP(BuildSDP(neg.LocalSDP(netip.MustParseAddr("127.0.0.1"), 10000, 1, 1))); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
	})
}

// Bodies that bend RFC 4566 the way deployed endpoints do, and still must work.
func TestParseSDPLenient(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"
	cases := map[string]string{
		"empty s=":            head + "s=\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
		"no t= line":          head + "s=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\n",
		"a= before t=":        head + "s=-\r\nc=IN IP4 1.2.3.4\r\na=sendrecv\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
		"no final line end":   head + "s=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0",
		"blank lines":         head + "s=-\r\n\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n\r\n",
		"trailing space m=":   head + "s=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 \r\n",
		"a= before c= (m)":    head + "s=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=ptime:20\r\nc=IN IP4 1.2.3.4\r\n",
		"lf only, fractional": strings.ReplaceAll(head+"s=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=ptime:20.0\r\n", "\r\n", "\n"),
	}
	for name, body := range cases {
		d, err := ParseSDP([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Addr != netip.MustParseAddrPort("1.2.3.4:5000") || len(d.Codecs) != 1 || d.Codecs[0] != PCMU {
			t.Errorf("%s: %+v", name, d)
		}
	}
}
