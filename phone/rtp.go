package phone

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/matterline/matterline/media"
)

// RTPPacket is one RTP packet an RTPPeer received.
type RTPPacket struct {
	PayloadType uint8
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
	Marker      bool
	Payload     []byte
	At          time.Time
}

// RTPPeer is a UA call's raw media socket: it records every RTP packet it
// receives, header and payload as they arrived (so a test can check what a relay
// rewrote), and sends RFC 4733 DTMF, G.711 silence and constant-level audio from
// the same socket (so symmetric RTP latches on it). Unlike a Call's media
// session it neither decodes nor paces on its own.
type RTPPeer struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	packets []RTPPacket
	remote  netip.AddrPort
	seq     uint16
	ts      uint32
	ssrc    uint32
	// SRTP (SetSRTP): dec decrypts what arrives, enc encrypts what leaves.
	dec, enc  *srtp.Context
	srtpFails int
}

// NewRTPPeer binds a free UDP port on ip.
func NewRTPPeer(ip netip.Addr) (*RTPPeer, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("phone: rtp listen: %w", err)
	}
	var b [10]byte
	_, _ = rand.Read(b[:])
	r := &RTPPeer{conn: conn, done: make(chan struct{}),
		seq: binary.BigEndian.Uint16(b[0:2]), ts: binary.BigEndian.Uint32(b[2:6]), ssrc: binary.BigEndian.Uint32(b[6:10])}
	go r.read()
	return r, nil
}

func (r *RTPPeer) read() {
	defer close(r.done)
	buf := make([]byte, 2048)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := buf[:n]
		r.mu.Lock()
		dec := r.dec
		r.mu.Unlock()
		if dec != nil {
			if b, err = dec.DecryptRTP(nil, b, nil); err != nil {
				r.mu.Lock()
				r.srtpFails++
				r.mu.Unlock()
				continue
			}
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			continue
		}
		r.mu.Lock()
		r.packets = append(r.packets, RTPPacket{PayloadType: p.PayloadType, Seq: p.SequenceNumber,
			Timestamp: p.Timestamp, SSRC: p.SSRC, Marker: p.Marker,
			Payload: append([]byte(nil), p.Payload...), At: time.Now()})
		r.mu.Unlock()
	}
}

// Addr is the local RTP address.
func (r *RTPPeer) Addr() netip.AddrPort {
	ap := r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// SetRemote sets where DTMF and audio go.
func (r *RTPPeer) SetRemote(ap netip.AddrPort) {
	r.mu.Lock()
	r.remote = ap
	r.mu.Unlock()
}

// Remote is where DTMF and audio go.
func (r *RTPPeer) Remote() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.remote
}

// Packets returns a copy of the packets received so far.
func (r *RTPPeer) Packets() []RTPPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RTPPacket(nil), r.packets...)
}

// Count is the number of packets received so far.
func (r *RTPPeer) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.packets)
}

// WaitPackets waits until at least n packets arrived or timeout passed.
func (r *RTPPeer) WaitPackets(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r.Count() >= n {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r.Count() >= n
}

func (r *RTPPeer) send(h rtp.Header, payload []byte) error {
	r.mu.Lock()
	remote := r.remote
	r.mu.Unlock()
	if !remote.IsValid() {
		return errors.New("phone: no remote rtp address")
	}
	p := rtp.Packet{Header: h, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.enc != nil {
		b, err = r.enc.EncryptRTP(nil, b, nil)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = r.conn.WriteToUDPAddrPort(b, remote)
	return err
}

// SetSRTP makes the peer speak SDES-SRTP (RFC 4568): what it sends is encrypted
// with k.Local (the key of its own a=crypto line), what arrives must authenticate
// with k.Remote (the answer's); packets that do not are counted in SRTPFailures
// and not recorded. Zero keys go back to plain RTP.
func (r *RTPPeer) SetSRTP(k media.SRTPKeys) error {
	var dec, enc *srtp.Context
	if k.Enabled() {
		profile := srtp.ProtectionProfileAes128CmHmacSha1_80
		if k.Suite == media.SuiteAES128SHA1_32 {
			profile = srtp.ProtectionProfileAes128CmHmacSha1_32
		}
		var err error
		if dec, err = srtp.CreateContext(k.Remote[:16], k.Remote[16:], profile, srtp.SRTPReplayProtection(128)); err != nil {
			return fmt.Errorf("phone: srtp: %w", err)
		}
		if enc, err = srtp.CreateContext(k.Local[:16], k.Local[16:], profile); err != nil {
			return fmt.Errorf("phone: srtp: %w", err)
		}
	}
	r.mu.Lock()
	r.dec, r.enc = dec, enc
	r.mu.Unlock()
	return nil
}

// SRTPFailures counts packets that did not authenticate (SetSRTP).
func (r *RTPPeer) SRTPFailures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srtpFails
}

// dtmfEvent maps a key to its RFC 4733 §3.2 event code.
func dtmfEvent(key rune) (byte, error) {
	switch {
	case key >= '0' && key <= '9':
		return byte(key - '0'), nil
	case key == '*':
		return 10, nil
	case key == '#':
		return 11, nil
	case key >= 'A' && key <= 'D':
		return byte(12 + key - 'A'), nil
	}
	return 0, fmt.Errorf("phone: no dtmf event for %q", key)
}

// SendDTMF sends one key press as RFC 4733 telephone-events at payload type pt:
// five 20 ms updates (marker on the first), then the end packet three times.
func (r *RTPPeer) SendDTMF(pt uint8, key rune) error {
	ev, err := dtmfEvent(key)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ts += 160 * 10
	ts := r.ts
	r.mu.Unlock()
	for i := 1; i <= 5; i++ {
		dur := uint16(i * 160)
		if err := r.sendEvent(pt, ts, i == 1, ev, false, dur, true); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 3; i++ {
		if err := r.sendEvent(pt, ts, false, ev, true, 6*160, i == 0); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.mu.Lock()
	r.ts += 6 * 160
	r.mu.Unlock()
	return nil
}

func (r *RTPPeer) sendEvent(pt uint8, ts uint32, marker bool, ev byte, end bool, dur uint16, newSeq bool) error {
	r.mu.Lock()
	if newSeq {
		r.seq++
	}
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: r.seq, Timestamp: ts, SSRC: r.ssrc, Marker: marker}
	r.mu.Unlock()
	flags := byte(10) // volume -10 dBm0
	if end {
		flags |= 0x80
	}
	payload := []byte{ev, flags, byte(dur >> 8), byte(dur)}
	return r.send(h, payload)
}

// SendSilence sends n packets of 20 ms silence at payload type pt (0 PCMU, 8 PCMA).
func (r *RTPPeer) SendSilence(pt uint8, n int) error {
	fill := byte(0xFF)
	if pt == 8 {
		fill = 0xD5
	}
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = fill
	}
	for i := 0; i < n; i++ {
		r.mu.Lock()
		r.seq++
		r.ts += 160
		h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: r.seq, Timestamp: r.ts, SSRC: r.ssrc, Marker: i == 0}
		r.mu.Unlock()
		if err := r.send(h, payload); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Close closes the socket and waits for the reader.
func (r *RTPPeer) Close() error {
	err := r.conn.Close()
	<-r.done
	return err
}

// SendAudio sends n packets of 20 ms whose 160 payload bytes are all fill, at
// payload type pt, paced at 20 ms (a constant G.711 level, recognisable after a
// relay and after PCMU↔PCMA transcoding).
func (r *RTPPeer) SendAudio(pt uint8, fill byte, n int) error {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = fill
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		r.mu.Lock()
		r.seq++
		r.ts += 160
		h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: r.seq, Timestamp: r.ts, SSRC: r.ssrc, Marker: i == 0}
		r.mu.Unlock()
		if err := r.send(h, payload); err != nil {
			return err
		}
		if d := time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
	return nil
}

// CountPayload counts received packets of payload type pt whose first and last
// payload bytes are fill.
func (r *RTPPeer) CountPayload(pt uint8, fill byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.packets {
		if p.PayloadType == pt && len(p.Payload) > 0 && p.Payload[0] == fill && p.Payload[len(p.Payload)-1] == fill {
			n++
		}
	}
	return n
}
