package media

import (
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"time"
)

// A Pacer sends the frames of every Play on one goroutine. Without it each
// playing session waits on a timer of its own for every 20 ms frame: at 2,000
// calls a second, each greeted, that is tens of thousands of goroutine wake-ups
// a second, and the scheduling around them cost more CPU than the sends, and
// delayed the INVITEs waiting behind them. With a Pacer one goroutine wakes
// every pacerTick and sends each frame that is due, on each session's own
// 20 ms schedule (at most pacerTick late).
//
// Sessions use one through SessionConfig.Pacer; nil keeps a timer per Play.
// A Pacer needs no Close: its goroutine runs while something plays and ends
// when nothing does. The zero value is not usable; use NewPacer.
type Pacer struct {
	tick    time.Duration
	mu      sync.Mutex
	jobs    []*pacedPlay
	running bool
}

// pacerTick is how often the pacer looks for due frames: the most a frame is
// late (RTP receivers' jitter buffers take 20 ms and more in their stride).
const pacerTick = 2 * time.Millisecond

// NewPacer returns a pacer.
func NewPacer() *Pacer { return &Pacer{tick: pacerTick} }

// pacedPlay is one Play's frames handed to the pacer. While it is registered
// the pacer owns the session's writer (Session.w); progress (i, marker, start)
// is read back after remove.
type pacedPlay struct {
	s       *Session
	samples []int16
	frames  int
	i       int       // the next frame to send
	start   time.Time // when frame 0 was due: frame i is due at start + i*20 ms
	marker  bool
	done    chan error // buffered; receives once, when the last frame is out or a send failed
}

// add registers j; the pacer's goroutine starts if it is not running.
func (p *Pacer) add(j *pacedPlay) {
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	}
}

// remove unregisters j; once it returns the pacer no longer touches j or its
// session's writer. It reports whether j was still registered (false: it
// finished, and its result is on j.done).
func (p *Pacer) remove(j *pacedPlay) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, o := range p.jobs {
		if o == j {
			p.drop(k)
			return true
		}
	}
	return false
}

// drop removes jobs[k] (order is not kept). Needs p.mu.
func (p *Pacer) drop(k int) {
	last := len(p.jobs) - 1
	p.jobs[k] = p.jobs[last]
	p.jobs[last] = nil
	p.jobs = p.jobs[:last]
}

// run sends due frames every tick until no play is registered.
func (p *Pacer) run() {
	// Not a goroutine of the call whose Play started it (leak checks follow
	// pprof labels).
	pprof.SetGoroutineLabels(context.Background())
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for now := range t.C {
		p.mu.Lock()
		for k := 0; k < len(p.jobs); {
			j := p.jobs[k]
			if err, finished := j.step(now); finished {
				p.drop(k)
				j.done <- err
				continue // jobs[k] is another job now
			}
			k++
		}
		if len(p.jobs) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// step sends j's next frame if it is due at now. finished reports that j is
// done: all frames sent, or a send failed (err).
func (j *pacedPlay) step(now time.Time) (err error, finished bool) {
	due := j.start.Add(time.Duration(j.i) * frameDuration)
	if due.After(now) {
		return nil, false
	}
	if now.Sub(due) > maxLag {
		// Stalled (GC, overloaded host): re-anchor rather than burst.
		j.start = now.Add(-time.Duration(j.i) * frameDuration)
		due = now
	}
	s := j.s
	frame := j.samples[j.i*frameSamples : min(len(j.samples), (j.i+1)*frameSamples)]
	sent, err := s.sendFrame(frame, j.marker)
	if err != nil {
		return err, true
	}
	if sent {
		j.marker = false
	}
	s.w.lastSlot = due
	s.w.started = true
	j.i++
	return nil, j.i == j.frames
}

// playPaced is playLocked on the session's pacer: the first frame goes out
// from here when it is due at once, the others from the pacer. A DTMF job
// handed over on s.inject pauses the audio as in playTimed.
func (s *Session) playPaced(ctx context.Context, samples []int16, marker bool) error {
	frames := (len(samples) + frameSamples - 1) / frameSamples
	if frames == 0 {
		return nil
	}
	j := &pacedPlay{s: s, samples: samples, frames: frames, marker: marker, done: make(chan error, 1)}
	j.start = s.anchor(time.Now())
	if !j.start.After(time.Now()) {
		// Frame 0 is due now (not straight after a previous frame): it goes
		// out from here rather than at the pacer's next tick.
		select {
		case job := <-s.inject:
			if err := s.pauseForDTMF(j, job); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrSessionClosed
		default:
		}
		if err, finished := j.step(time.Now()); finished { // not due yet after a DTMF event: sends nothing
			return err
		}
	}
	for j.i < frames {
		s.pacer.add(j)
		select {
		case err := <-j.done:
			return err
		case job := <-s.inject:
			if !s.pacer.remove(j) {
				// It finished meanwhile: the event still goes out, after it.
				if err := <-j.done; err != nil {
					return err
				}
				if err := s.runDTMFJob(job); errors.Is(err, ErrSessionClosed) {
					return err
				}
				return nil
			}
			if err := s.pauseForDTMF(j, job); err != nil {
				return err
			}
		case <-ctx.Done():
			if !s.pacer.remove(j) {
				return <-j.done
			}
			return ctx.Err()
		case <-s.done:
			s.pacer.remove(j)
			return ErrSessionClosed
		}
	}
	return nil
}

// pauseForDTMF sends the event job while j is paused: the audio resumes after
// it as a new talkspurt, one frame after the event's last packet (RFC 4733
// §2.5.1).
func (s *Session) pauseForDTMF(j *pacedPlay, job *dtmfJob) error {
	if err := s.runDTMFJob(job); errors.Is(err, ErrSessionClosed) {
		return err
	}
	j.start = s.w.lastSlot.Add(frameDuration - time.Duration(j.i)*frameDuration)
	j.marker = true
	return nil
}

// anchor is when frame 0 of a Play starting at now is due. After a pause it
// advances the writer's timestamp by the pause since the last frame's slot, in
// whole frames, so that it keeps tracking the wall clock.
func (s *Session) anchor(now time.Time) time.Time {
	w := &s.w
	if !w.started {
		return now
	}
	if gap := now.Sub(w.lastSlot) - frameDuration; gap > 0 {
		w.nextTS += uint32(gap/frameDuration) * frameSamples
		return now
	} else if gap > -frameDuration {
		// Straight after the previous frame (back-to-back prompts, PlayLoop):
		// keep its 20 ms schedule instead of sending two packets at once.
		return w.lastSlot.Add(frameDuration)
	}
	return now
}
