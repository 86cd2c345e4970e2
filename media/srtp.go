package media

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP (RFC 3711) on a session, keyed by SDES (RFC 4568, sdes.go). Two pion/srtp
// contexts per session: one decrypts what the peer sends, with the peer's key; the
// other encrypts what we send, with ours. Decryption happens in the read loop after
// source admission (rtp_source.go) and before anything else looks at the packet, in
// place in the receive buffer; so a packet from a new source must authenticate
// before it can be latched, and DTMF detection, the packet hook (bridge, recorder)
// and the inactivity timer see only authenticated plain RTP. Encryption happens
// where packets leave (sendFrame, transmit) into a per-session buffer. Neither
// allocates per packet.
//
// Replay protection is on (RFC 3711 §3.3.2, a window of srtpReplayWindow packets).
// A packet whose tag does not verify is dropped and counted in Stats.SRTPAuth, a
// replayed one in Stats.SRTPReplay. A new peer key (a re-INVITE that rekeys, RFC
// 4568 §7.1.4) replaces the decrypting context; the previous one is still tried for
// packets that were in flight. Our own key changes only when we offer anew after
// the peer dropped SRTP, so the encrypting context and its rollover counter usually
// survive re-INVITEs.

// srtpReplayWindow is the replay window in packets (RFC 3711 §3.3.2 says at least
// 64; libsrtp uses 128).
const srtpReplayWindow = 128

// srtpMaxTag is the longest auth tag of the suites we support.
const srtpMaxTag = 10

// srtpRx decrypts what the peer sends. Immutable once published apart from the
// contexts' own state and hdr, which only the read loop touches.
type srtpRx struct {
	suite CryptoSuite
	key   [sdesKeyLen]byte
	ctx   *srtp.Context
	prev  *srtp.Context // the context before a rekey; nil when none
	hdr   rtp.Header
}

// srtpTx encrypts what we send. mu serializes the writers (Play, DTMF, a bridge's
// relay) that may meet during hand-overs.
type srtpTx struct {
	suite CryptoSuite
	key   [sdesKeyLen]byte

	mu  sync.Mutex
	ctx *srtp.Context
	hdr rtp.Header
	buf [maxPacketSize + srtpMaxTag]byte
}

func newSRTPContext(suite CryptoSuite, key [sdesKeyLen]byte) (*srtp.Context, error) {
	profile := srtp.ProtectionProfileAes128CmHmacSha1_80
	if suite == SuiteAES128SHA1_32 {
		profile = srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	ctx, err := srtp.CreateContext(key[:16], key[16:], profile,
		srtp.SRTPReplayProtection(srtpReplayWindow))
	if err != nil {
		return nil, fmt.Errorf("media: srtp context: %w", err)
	}
	return ctx, nil
}

// SetSRTP applies the negotiated SDES keys: zero keys switch SRTP off (plain RTP
// both ways), otherwise what arrives must authenticate with k.Remote and what
// leaves is encrypted with k.Local. A side whose key and suite did not change keeps
// its context (and with it the rollover counter and replay window). Safe from any
// goroutine; the next packet in or out uses the new keys.
func (s *Session) SetSRTP(k SRTPKeys) error {
	s.srtpMu.Lock()
	defer s.srtpMu.Unlock()
	if !k.Enabled() {
		s.srtpRx.Store(nil)
		s.srtpTx.Store(nil)
		return nil
	}
	oldRx, oldTx := s.srtpRx.Load(), s.srtpTx.Load()
	var rx *srtpRx
	if oldRx == nil || oldRx.suite != k.Suite || oldRx.key != k.Remote {
		ctx, err := newSRTPContext(k.Suite, k.Remote)
		if err != nil {
			return err
		}
		rx = &srtpRx{suite: k.Suite, key: k.Remote, ctx: ctx}
		if oldRx != nil {
			rx.prev = oldRx.ctx
		}
	}
	var tx *srtpTx
	if oldTx == nil || oldTx.suite != k.Suite || oldTx.key != k.Local {
		ctx, err := newSRTPContext(k.Suite, k.Local)
		if err != nil {
			return err
		}
		tx = &srtpTx{suite: k.Suite, key: k.Local, ctx: ctx}
	}
	if rx != nil {
		s.srtpRx.Store(rx)
		if oldRx != nil {
			s.log.Info("srtp: peer rekeyed", "suite", k.Suite.String())
		}
	}
	if tx != nil {
		s.srtpTx.Store(tx)
	}
	return nil
}

// SRTP reports whether the session encrypts (SetSRTP with keys).
func (s *Session) SRTP() bool { return s.srtpTx.Load() != nil }

// isRTCP reports whether b's second byte is an RTCP packet type (RFC 5761 §4: 64-95
// after the marker bit is masked).
func isRTCP(b []byte) bool {
	pt := b[1] & 0x7f
	return pt >= 64 && pt <= 95
}

// unprotect authenticates and decrypts the SRTP packet b in place and returns the
// plain RTP packet (b shortened by the tag); false when it was dropped and counted.
// Read loop only; no allocation for a good packet.
func (s *Session) unprotect(rx *srtpRx, b []byte) ([]byte, bool) {
	if isRTCP(b) || len(b) < rtpHeaderSize+rx.suite.AuthTagLen() {
		s.dropped.Add(1) // SRTCP on a muxed port (we send no RTCP), runts
		return nil, false
	}
	out, err := rx.ctx.DecryptRTP(b, b, &rx.hdr)
	if err != nil && rx.prev != nil {
		// Packets sent with the old key before the peer saw our answer to its
		// rekeying offer. A failed check leaves b untouched.
		if o, perr := rx.prev.DecryptRTP(b, b, &rx.hdr); perr == nil {
			out, err = o, nil
		}
	}
	if err != nil {
		if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
			s.srtpAuth.Add(1)
		} else {
			s.srtpReplay.Add(1) // replayed (or unusable) index
		}
		if !s.srtpWarned.Swap(true) {
			s.log.Info("srtp packet dropped", "err", err)
		}
		return nil, false
	}
	return out, true
}

// writeRTP sends the plain RTP packet b to dst, encrypted when SRTP is on. No
// allocation.
func (s *Session) writeRTP(b []byte, dst netip.AddrPort) error {
	tx := s.srtpTx.Load()
	if tx == nil {
		_, err := s.conn.WriteToUDPAddrPort(b, dst)
		return err
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	out, err := tx.ctx.EncryptRTP(tx.buf[:0], b, &tx.hdr)
	if err != nil {
		return fmt.Errorf("media: srtp encrypt: %w", err)
	}
	_, err = s.conn.WriteToUDPAddrPort(out, dst)
	return err
}
