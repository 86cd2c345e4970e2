package media

import (
	"net/netip"
	"time"
)

// Source admission ("strict RTP"). A session accepts packets, media and RFC 4733
// telephone-events alike, from one source at a time: the current remote. It starts
// as the address of the SDP c=/m= lines (SessionConfig.Remote, SetRemote) and
// changes only in three controlled ways:
//
//   - Symmetric RTP for a peer behind NAT (RFC 4961 §2, the endpoint learning of
//     rtpengine and Asterisk's strict_rtp): within LatchWindow after the session
//     starts or after SetRemote, once LatchDelay has passed with no valid packet from
//     the SDP address, the first valid packet from another source latches the
//     session to that source. The delay gives the signalled peer time to speak first,
//     so that a spray of packets at a guessed port cannot win the race against it.
//   - The SDP address takes the session back from a learned source whenever it
//     sends: the signalled address is authoritative (a packet from it is accepted
//     anyway), a learned one is a guess.
//   - Failover (an SBC switching to a standby with another source address): after
//     the current source, having sent, has been silent for RelatchAfter while the
//     peer is expected to send (our direction lets us receive), another source may
//     take over, with a log line.
//
// Everything else from another source is dropped and counted in Stats.WrongSource,
// before any parsing, so that a foreign digit never reaches DTMF() and a foreign
// source never becomes the send address. An SDP address that is invalid, port 0 or
// unspecified (a late offer before the answer, an RFC 2543 hold) accepts nothing and
// Play sends nothing until SetRemote gives a real one.
//
// The read goroutine owns the admission state (Session.src); SetRemote publishes a
// new sourceArm, and latchMu orders SetRemote against the read loop's source
// changes. A packet from the current source takes no lock and allocates nothing.

// Defaults of the SessionConfig source-admission fields.
const (
	DefaultLatchWindow  = 3 * time.Second
	DefaultLatchDelay   = time.Second
	DefaultRelatchAfter = 2 * time.Second
)

// sourceArm is one (re)negotiation of the peer's address: what the SDP said and
// when (since Session.epoch). It is immutable once published.
type sourceArm struct {
	sdp netip.AddrPort // unmapped
	at  time.Duration
}

// usable reports whether the SDP gave an address media can come from and go to.
func (a *sourceArm) usable() bool {
	return a.sdp.IsValid() && a.sdp.Port() != 0 && !a.sdp.Addr().IsUnspecified()
}

// sourceState is the read loop's view of who may send to us. Only the read
// goroutine touches it.
type sourceState struct {
	arm     *sourceArm     // the arm this state was derived from
	cur     netip.AddrPort // the accepted source (== *Session.remote)
	heard   bool           // cur has sent a valid packet since it became current
	lastCur time.Duration  // last datagram from cur, since epoch
	warned  bool           // a wrong-source drop was logged for this arm
}

// resync rebuilds the read loop's state after SetRemote published a new arm.
func (s *Session) resync() {
	s.latchMu.Lock()
	defer s.latchMu.Unlock()
	st := &s.src
	st.arm = s.arm.Load()
	st.cur = *s.remote.Load()
	// SetRemote keeps a confirmed source when the SDP address did not change.
	st.heard = s.latched.Load()
	if !st.heard {
		st.lastCur = st.arm.at
	}
	st.warned = false
}

// mayTake reports whether a packet from from, which is not the current source,
// could become the current source at now (since epoch). Read loop only.
func (s *Session) mayTake(from netip.AddrPort, now time.Duration) bool {
	st := &s.src
	a := st.arm
	if !a.usable() {
		return false
	}
	if from == a.sdp {
		return true // the signalled address reclaims the session from a learned source
	}
	if !st.heard {
		// Nobody has sent yet: NAT learning within the window, after the delay.
		since := now - a.at
		return since >= s.latchDelay && since < s.latchWindow
	}
	return s.relatchAfter > 0 && now-st.lastCur >= s.relatchAfter &&
		Direction(s.dir.Load()).canReceive()
}

// take makes from the current source after a valid packet from it (the current
// source's first, or one that mayTake allowed). It reports false when a SetRemote
// raced in: the packet is dropped and the next one sees the new arm. Read loop only;
// it allocates (the new remote) only when the source changes.
func (s *Session) take(from netip.AddrPort, now time.Duration) bool {
	s.latchMu.Lock()
	defer s.latchMu.Unlock()
	st := &s.src
	if s.arm.Load() != st.arm {
		return false
	}
	old, wasHeard, oldLast := st.cur, st.heard, st.lastCur
	st.cur, st.heard, st.lastCur = from, true, now
	s.latched.Store(true)
	if from == old {
		s.log.Debug("rtp source confirmed", "remote", from)
		return true
	}
	remote := from
	s.remote.Store(&remote)
	switch {
	case from == st.arm.sdp:
		s.log.Info("rtp source: the sdp address took over", "remote", from, "was", old)
	case !wasHeard:
		s.log.Info("rtp latched to a source other than the sdp address (nat)", "remote", from, "sdp", st.arm.sdp,
			"after", (now - st.arm.at).Round(time.Millisecond))
	default:
		s.log.Warn("rtp source changed after silence", "remote", from, "was", old,
			"silent", (now - oldLast).Round(time.Millisecond))
	}
	return true
}

// wrongSource counts a packet from a source the session does not accept, logging
// the first one per arm.
func (s *Session) wrongSource(from netip.AddrPort) {
	s.wrongSrc.Add(1)
	if !s.src.warned {
		s.src.warned = true
		s.log.Info("rtp from an unexpected source dropped", "from", from, "remote", s.src.cur)
	}
}
