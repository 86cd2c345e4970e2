package agentstream

import (
	"sync"

	"github.com/matterline/matterline/media"
)

// uplinkRing frames (20 ms each) may wait between the RTP read goroutine and the
// pacer; more means the caller sends faster than real time and the oldest go.
const uplinkRing = 16

// uplinkTarget is the depth the pacer keeps at most after taking a frame: one
// frame of slack absorbs the caller's network jitter, more is latency (a caller
// clock running fast) and is dropped.
const uplinkTarget = 2

// uplink carries the caller's audio from the session's read goroutine (tap,
// which never blocks) to the 20 ms pacer (pop), re-framed to 160-byte μ-law
// frames whatever the caller's packetization and codec.
type uplink struct {
	mu       sync.Mutex
	frames   [uplinkRing][frameBytes]byte
	head, n  int
	acc      [frameBytes]byte // a frame being filled (ptime other than 20 ms)
	accN     int
	overflow uint64 // frames dropped because the ring was full or too deep
	scratch  [frameBytes]byte
}

// tap takes one RTP audio payload (any G.711 codec) on the read goroutine.
func (u *uplink) tap(payload []byte, codec media.Codec) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(payload) > 0 {
		n := media.Transcode(u.scratch[:], payload, codec, media.PCMU)
		payload = payload[n:]
		src := u.scratch[:n]
		for len(src) > 0 {
			c := copy(u.acc[u.accN:], src)
			u.accN += c
			src = src[c:]
			if u.accN == frameBytes {
				u.push(&u.acc)
				u.accN = 0
			}
		}
	}
}

func (u *uplink) push(f *[frameBytes]byte) {
	if u.n == uplinkRing {
		u.head = (u.head + 1) % uplinkRing // the oldest goes
		u.n--
		u.overflow++
	}
	u.frames[(u.head+u.n)%uplinkRing] = *f
	u.n++
}

// pop copies the oldest frame into dst; false when none is waiting. Beyond
// uplinkTarget frames left waiting, the oldest are dropped (counted) so the
// latency to the agent stays bounded.
func (u *uplink) pop(dst *[frameBytes]byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n == 0 {
		return false
	}
	*dst = u.frames[u.head]
	u.head = (u.head + 1) % uplinkRing
	u.n--
	for u.n > uplinkTarget {
		u.head = (u.head + 1) % uplinkRing
		u.n--
		u.overflow++
	}
	return true
}

func (u *uplink) dropped() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.overflow
}

// pendingMark is a mark from the agent at a position of the agent's audio.
type pendingMark struct {
	pos  uint64 // bytes queued before it, since the stream started
	name string
}

// playout is the agent's audio waiting to be played to the caller: μ-law bytes in
// the order they came, in any chunking, and the agent's marks between them.
// PlayStream takes one 20 ms frame per slot (NextFrame); clear drops the rest.
type playout struct {
	mu       sync.Mutex
	buf      []byte // queued audio is buf[head:]
	head     int
	queued   uint64 // bytes ever queued (positions of marks)
	consumed uint64 // bytes handed to the session
	marks    []pendingMark
	max      int    // most bytes queued at once
	overflow uint64 // bytes dropped because max was reached
	frames   uint64 // frames with agent audio handed out
	onMark   func(name string)
}

func newPlayout(maxBytes int, onMark func(string)) *playout {
	return &playout{max: maxBytes, onMark: onMark, buf: make([]byte, 0, 64*frameBytes)}
}

// push queues agent audio; what does not fit under max is dropped and counted.
func (p *playout) push(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if room := p.max - (len(p.buf) - p.head); len(b) > room {
		p.overflow += uint64(len(b) - max(room, 0))
		b = b[:max(room, 0)]
	}
	if p.head > 0 && len(p.buf)+len(b) > cap(p.buf) {
		n := copy(p.buf, p.buf[p.head:]) // compact before growing
		p.buf = p.buf[:n]
		p.head = 0
	}
	p.buf = append(p.buf, b...)
	p.queued += uint64(len(b))
}

// mark queues the agent's mark after the audio queued so far.
func (p *playout) mark(name string) {
	p.mu.Lock()
	p.marks = append(p.marks, pendingMark{pos: p.queued, name: name})
	p.mu.Unlock()
}

// clear drops the queued audio at once (barge-in) and reports the marks still
// pending, which Twilio echoes at once after a clear.
func (p *playout) clear() {
	p.mu.Lock()
	p.consumed += uint64(len(p.buf) - p.head)
	p.buf, p.head = p.buf[:0], 0
	marks := p.marks
	p.marks = nil
	p.mu.Unlock()
	for _, m := range marks {
		p.onMark(m.name)
	}
}

// NextFrame implements media.FrameSource: the next 20 ms of agent audio decoded
// to linear samples (a short tail padded with silence), false when none is
// queued. Marks whose audio went out with earlier frames are echoed first: a
// frame handed out before has been sent by the time the next one is asked for.
func (p *playout) NextFrame(dst []int16) bool {
	p.mu.Lock()
	var fire []pendingMark
	i := 0
	for i < len(p.marks) && p.marks[i].pos <= p.consumed {
		i++
	}
	if i > 0 {
		fire = append(fire, p.marks[:i]...)
		p.marks = p.marks[i:]
	}
	n := min(frameBytes, len(p.buf)-p.head, len(dst))
	if n > 0 {
		media.Decode(media.PCMU, dst, p.buf[p.head:p.head+n])
		clear(dst[n:])
		p.head += n
		p.consumed += uint64(n)
		p.frames++
		if p.head == len(p.buf) {
			p.buf, p.head = p.buf[:0], 0
		}
	}
	p.mu.Unlock()
	for _, m := range fire {
		p.onMark(m.name)
	}
	return n > 0
}

// pending is the queued agent audio in bytes.
func (p *playout) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf) - p.head
}

func (p *playout) stats() (frames, overflow uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames, p.overflow
}
