package agentstream

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkStreams100 runs 100 concurrent streams for benchStreamTime each
// iteration: every caller sends 20 ms RTP, every agent echoes the caller's
// media back (so the playout runs too). It reports the pacing jitter of the
// media messages the agents receive (|interval - 20 ms|, p50 and p99) and the
// CPU time per stream as a share of one core (user+system of the whole
// process, test callers and agents included: an upper bound for matterline).
//
//	go test -run '^$' -bench Streams100 -benchtime 1x ./agentstream
func BenchmarkStreams100(b *testing.B) {
	const streams = 100
	const benchStreamTime = 3 * time.Second
	for range b.N {
		a := newTestAgent(b, false)
		calls := make([]*testCall, streams)
		for i := range calls {
			calls[i] = newTestCall(b)
			calls[i].send(func(int) byte { return 0x20 })
		}
		var mu sync.Mutex
		var jitter []time.Duration
		var wg sync.WaitGroup
		ss := make([]*Stream, streams)
		for i := range calls {
			s, c, _ := openStream(b, a, calls[i], nil)
			ss[i] = s
			wg.Add(1)
			go func() { // the agent: measure arrival pacing, echo the audio
				defer wg.Done()
				var last time.Time
				var local []time.Duration
				ctx, cancel := context.WithTimeout(context.Background(), benchStreamTime+2*time.Second)
				defer cancel()
				for {
					_, msg, err := c.Read(ctx)
					if err != nil {
						break
					}
					now := time.Now()
					if !last.IsZero() {
						d := now.Sub(last) - 20*time.Millisecond
						local = append(local, d.Abs())
					}
					last = now
					wctx, wcancel := context.WithTimeout(ctx, time.Second)
					_ = c.Write(wctx, websocket.MessageText, msg) // media back: playout load
					wcancel()
				}
				mu.Lock()
				jitter = append(jitter, local...)
				mu.Unlock()
			}()
		}
		var r0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		t0 := time.Now()
		time.Sleep(benchStreamTime)
		var r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		wall := time.Since(t0)
		var dropped, sent uint64
		for _, s := range ss {
			st := s.Stats()
			dropped += st.FramesDropped
			sent += st.FramesSent
			s.Stop()
		}
		a.close()
		wg.Wait()
		cpu := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())
		slices.Sort(jitter)
		if len(jitter) == 0 {
			b.Fatal("no media received")
		}
		p := func(q float64) float64 {
			return float64(jitter[int(q*float64(len(jitter)-1))]) / float64(time.Millisecond)
		}
		b.ReportMetric(p(0.50), "jitter-p50-ms")
		b.ReportMetric(p(0.99), "jitter-p99-ms")
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/streams, "cpu-%core/stream")
		b.ReportMetric(float64(dropped), "dropped-frames")
		b.ReportMetric(float64(sent)/streams/wall.Seconds(), "frames/s/stream")
		for _, c := range calls {
			c.close()
		}
	}
}
