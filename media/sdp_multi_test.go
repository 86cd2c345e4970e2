package media

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Offers with more than one m= line, as real endpoints send them (addresses changed).
var (
	// A Cisco CUCM / Webex-style video call: audio then main video then BFCP-less
	// content video.
	sdpCiscoVideo = crlf(`v=0
		o=CiscoSystemsCCM-SIP 2000 1 IN IP4 10.20.0.5
		s=SIP Call
		c=IN IP4 10.20.0.5
		b=TIAS:6000000
		t=0 0
		m=audio 24580 RTP/AVP 114 0 8 101
		b=TIAS:64000
		a=rtpmap:114 opus/48000/2
		a=rtpmap:0 PCMU/8000
		a=rtpmap:8 PCMA/8000
		a=rtpmap:101 telephone-event/8000
		a=fmtp:101 0-15
		a=sendrecv
		m=video 24582 RTP/AVP 126 97
		b=TIAS:6000000
		a=rtpmap:126 H264/90000
		a=fmtp:126 profile-level-id=42801F;packetization-mode=1
		a=rtpmap:97 H264/90000
		a=fmtp:97 profile-level-id=42801F;packetization-mode=0
		a=content:main
		a=label:11
		a=sendrecv
		m=video 24584 RTP/AVP 126
		a=rtpmap:126 H264/90000
		a=content:slides
		a=label:12
		a=sendrecv`)
	// A softphone offering SRTP first and plain RTP as fallback (the "best effort
	// SRTP" pattern of Zoiper, MicroSIP and Asterisk media_encryption_optimistic).
	sdpSAVPThenAVP = crlf(`v=0
		o=- 3870212 3870212 IN IP4 192.168.5.20
		s=-
		c=IN IP4 192.168.5.20
		t=0 0
		m=audio 40002 RTP/SAVP 8 0 101
		a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
		a=rtpmap:8 PCMA/8000
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=sendrecv
		m=audio 40004 RTP/AVP 8 0 101
		a=rtpmap:8 PCMA/8000
		a=rtpmap:0 PCMU/8000
		a=rtpmap:101 telephone-event/8000
		a=sendrecv`)
	// baresip with video enabled: audio, video.
	sdpBaresipVideo = crlf(`v=0
		o=- 1193491409 6544 IN IP4 192.168.1.10
		s=-
		c=IN IP4 192.168.1.10
		t=0 0
		m=audio 10328 RTP/AVP 96 0 8 100
		b=AS:512
		a=rtpmap:96 opus/48000/2
		a=rtpmap:0 PCMU/8000
		a=rtpmap:8 PCMA/8000
		a=rtpmap:100 telephone-event/8000
		a=sendrecv
		m=video 10330 RTP/AVP 97
		b=AS:1000
		a=rtpmap:97 VP8/90000
		a=sendrecv`)
	// A re-offer where the first audio stream was disabled earlier (port 0) and a
	// second one carries the call; a T.38 image stream follows.
	sdpDisabledFirst = crlf(`v=0
		o=- 77 78 IN IP4 10.0.0.8
		s=-
		c=IN IP4 10.0.0.8
		t=0 0
		m=audio 0 RTP/AVP 0
		m=audio 5004 RTP/AVP 0 101
		a=rtpmap:101 telephone-event/8000
		m=image 0 udptl t38`)
	// Only an Opus stream then a G.711 stream: the second is the one we can use.
	sdpOpusThenG711 = crlf(`v=0
		o=- 9 9 IN IP4 10.0.0.9
		s=-
		c=IN IP4 10.0.0.9
		t=0 0
		m=audio 6000 RTP/AVP 111
		a=rtpmap:111 opus/48000/2
		m=audio 6002 RTP/AVP 8
		c=IN IP4 10.0.0.10`)
	// Only SRTP audio and video: nothing usable.
	sdpSAVPOnlyVideo = crlf(`v=0
		o=- 5 5 IN IP4 10.0.0.1
		s=-
		c=IN IP4 10.0.0.1
		t=0 0
		m=audio 40000 RTP/SAVP 0
		a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
		m=video 40002 RTP/SAVP 96
		a=rtpmap:96 H264/90000`)
)

// mLines returns the m= lines of an SDP body.
func mLines(body []byte) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\r\n") {
		if strings.HasPrefix(l, "m=") {
			out = append(out, l)
		}
	}
	return out
}

// RFC 3264 §6: the answer has the offer's m= lines in number and order; the stream
// we take is answered normally, every other one with port 0, its media type and
// transport kept and the offer's formats listed.
func TestMultiStreamOffer(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name     string
		sdp      []byte
		index    int
		remote   netip.AddrPort
		codec    Codec
		proto    string
		answerML []string
		err      error
	}{
		{"cisco audio + 2 video", sdpCiscoVideo, 0, ap("10.20.0.5:24580"), PCMU, "RTP/AVP", []string{
			"m=audio 20000 RTP/AVP 0 101",
			"m=video 0 RTP/AVP 126 97",
			"m=video 0 RTP/AVP 126"}, nil},
		{"savp then avp", sdpSAVPThenAVP, 1, ap("192.168.5.20:40004"), PCMA, "RTP/AVP", []string{
			"m=audio 0 RTP/SAVP 8 0 101",
			"m=audio 20000 RTP/AVP 8 101"}, nil},
		{"baresip audio + video", sdpBaresipVideo, 0, ap("192.168.1.10:10328"), PCMU, "RTP/AVP", []string{
			"m=audio 20000 RTP/AVP 0 100",
			"m=video 0 RTP/AVP 97"}, nil},
		{"disabled audio first, image last", sdpDisabledFirst, 1, ap("10.0.0.8:5004"), PCMU, "RTP/AVP", []string{
			"m=audio 0 RTP/AVP 0",
			"m=audio 20000 RTP/AVP 0 101",
			"m=image 0 udptl t38"}, nil},
		{"opus stream then g711 stream", sdpOpusThenG711, 1, ap("10.0.0.10:6002"), PCMA, "RTP/AVP", []string{
			"m=audio 0 RTP/AVP 111",
			"m=audio 20000 RTP/AVP 8"}, nil},
		{"savp audio and video only", sdpSAVPOnlyVideo, 0, netip.AddrPort{}, Codec{}, "RTP/SAVP", nil, ErrUnsupportedTransport},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, err := ParseSDP(tt.sdp)
			if err != nil {
				t.Fatalf("ParseSDP: %v", err)
			}
			if len(desc.Streams) != len(mLines(tt.sdp)) || desc.AudioIndex != tt.index || desc.Proto != tt.proto {
				t.Fatalf("streams %+v, audio index %d, proto %q", desc.Streams, desc.AudioIndex, desc.Proto)
			}
			neg, err := Negotiate(desc, nil)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("Negotiate error = %v, want %v wrapped with ErrNoCommonCodec", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if neg.Codec != tt.codec || neg.Remote != tt.remote {
				t.Errorf("negotiated %+v", neg)
			}
			ans := BuildSDP(neg.LocalSDP(netip.MustParseAddr("203.0.113.5"), 20000, 42, 1))
			if got := mLines(ans); !slices.Equal(got, tt.answerML) {
				t.Errorf("answer m= lines\n%q\nwant\n%q\n%s", got, tt.answerML, ans)
			}
			back, err := ParseSDP(ans)
			if err != nil {
				t.Fatalf("answer does not parse: %v\n%s", err, ans)
			}
			if back.AudioIndex != tt.index || len(back.Codecs) != 1 || back.Codecs[0] != tt.codec {
				t.Errorf("answer parses as %+v", back)
			}
		})
	}
}

func TestParseSDPPortZeroAudioOnly(t *testing.T) {
	// Every audio stream disabled: nothing to take, even with another live stream.
	body := "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n" +
		"m=audio 0 RTP/AVP 0\r\nm=video 5000 RTP/AVP 96\r\nm=audio 0 RTP/AVP 8\r\n"
	if _, err := ParseSDP([]byte(body)); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("err = %v, want ErrBadSDP", err)
	}
}

func TestBuildSDPRejectedLines(t *testing.T) {
	l := LocalSDP{
		Addr: netip.MustParseAddr("203.0.113.5"), Port: 10002, SessionID: 1, Version: 1, Codecs: []Codec{PCMU},
		Rejected: []MediaLine{
			{Media: "audio", Proto: "RTP/SAVP", Formats: []string{"0"}},
			{Media: "video", Proto: "RTP/AVP", Formats: []string{"96", "97"}},
			{Media: "bad media\r\na=x", Proto: "", Formats: []string{"\r\n"}},
		},
		AudioIndex: 1,
	}
	want := []string{"m=audio 0 RTP/SAVP 0", "m=audio 10002 RTP/AVP 0", "m=video 0 RTP/AVP 96 97", "m=audio 0 RTP/AVP 0"}
	if got := mLines(BuildSDP(l)); !slices.Equal(got, want) {
		t.Errorf("m= lines %q, want %q", got, want)
	}
	// An out-of-range index puts the audio line last.
	l.AudioIndex = 9
	if got := mLines(BuildSDP(l)); got[3] != "m=audio 10002 RTP/AVP 0" {
		t.Errorf("m= lines %q", got)
	}
}
