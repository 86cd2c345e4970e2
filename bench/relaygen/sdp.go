package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// sdpOptions shape the generator's SDP (RFC 4566): PCMU/8000 on 127.0.0.1,
// optionally with telephone-event (RFC 4733).
type sdpOptions struct {
	port      int
	sessionID uint64
	dtmf      bool
}

func buildSDP(o sdpOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=relaygen %d 1 IN IP4 127.0.0.1\r\ns=relaygen\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n", o.sessionID)
	if o.dtmf {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", o.port)
	} else {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", o.port)
	}
	b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	return b.String()
}

// sdpAudioAddr returns the address of the first audio stream of an SDP: the
// media-level c= line if any, else the session-level one, with the m=audio port.
// Only IPv4 loopback addresses are accepted (the benchmark never leaves the
// machine).
func sdpAudioAddr(sdp []byte) (netip.AddrPort, error) {
	var sessAddr, mediaAddr string
	port := -1
	inAudio := false
	for _, raw := range bytes.Split(sdp, []byte("\n")) {
		line := strings.TrimRight(string(raw), "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			if port >= 0 {
				inAudio = false
				continue
			}
			f := strings.Fields(line[2:])
			if len(f) >= 2 && f[0] == "audio" {
				p, err := strconv.Atoi(f[1])
				if err != nil || p <= 0 || p > 65535 {
					return netip.AddrPort{}, fmt.Errorf("relaygen: sdp: bad port in %q", line)
				}
				port, inAudio = p, true
			}
		case strings.HasPrefix(line, "c=IN IP4 "):
			a := strings.Fields(line[len("c=IN IP4 "):])
			if len(a) == 0 {
				continue
			}
			if inAudio {
				mediaAddr = a[0]
			} else if port < 0 {
				sessAddr = a[0]
			}
		}
	}
	if port < 0 {
		return netip.AddrPort{}, fmt.Errorf("relaygen: sdp: no m=audio line")
	}
	host := mediaAddr
	if host == "" {
		host = sessAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relaygen: sdp: connection address %q: %w", host, err)
	}
	if !ip.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("relaygen: sdp: connection address %s is not loopback", ip)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}
