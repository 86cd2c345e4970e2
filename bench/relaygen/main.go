// Command relaygen measures the RTP relay cost of matterline or rtpengine: it
// sets up N relayed calls (rtpengine through its ng control protocol, matterline
// through SIP calls bridged to a SIP agent that relaygen also plays), sends 20 ms
// PCMU both ways on every call (100 packets/s per call through the relay), and
// reports packets, loss, the relay's added latency, the relay's CPU time per
// relayed packet and its memory per call. It is a benchmark tool run by
// bench/relay.sh, loopback only.
//
//	relaygen -target rtpengine -ng 127.0.0.1:PORT -pid PID -n 200
//	relaygen -target matterline -sip 127.0.0.1:PORT -agent 127.0.0.1:PORT -pid PID -n 200
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target is the relay under test.
type target uint8

const (
	targetUnknown target = iota
	targetRTPEngine
	targetMatterline
)

func (t target) String() string {
	switch t {
	case targetRTPEngine:
		return "rtpengine"
	case targetMatterline:
		return "matterline"
	}
	return "unknown"
}

func parseTarget(s string) (target, error) {
	switch s {
	case "rtpengine":
		return targetRTPEngine, nil
	case "matterline":
		return targetMatterline, nil
	}
	return targetUnknown, fmt.Errorf("relaygen: target %q: want rtpengine or matterline", s)
}

type options struct {
	target      target
	ng          string
	sipAddr     string
	agentAddr   string
	calls       int
	pid         int
	warmup      time.Duration
	window      time.Duration
	grace       time.Duration
	timeout     time.Duration
	concurrency int
	callTimeout time.Duration
	pprofURL    string
	pprofOut    string
	procs       int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var tgt string
	flag.StringVar(&tgt, "target", "", "relay under test: rtpengine or matterline")
	flag.StringVar(&o.ng, "ng", "", "rtpengine ng control address (loopback ip:port)")
	flag.StringVar(&o.sipAddr, "sip", "", "matterline SIP address (loopback ip:port, UDP)")
	flag.StringVar(&o.agentAddr, "agent", "", "address relaygen listens on as matterline's SIP agent (agent.uri)")
	flag.IntVar(&o.calls, "n", 200, "calls")
	flag.IntVar(&o.pid, "pid", 0, "relay process id (CPU and RSS); 0: not measured")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "media sent before the window (not measured)")
	flag.DurationVar(&o.window, "window", 10*time.Second, "measured window")
	flag.DurationVar(&o.grace, "grace", 500*time.Millisecond, "wait for in-flight packets after the window")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.IntVar(&o.concurrency, "concurrency", 16, "calls set up at once (matterline)")
	flag.DurationVar(&o.callTimeout, "call-timeout", 15*time.Second, "bound on one call's setup")
	flag.StringVar(&o.pprofURL, "pprof-url", "", "relay's /debug/pprof/profile URL: a CPU profile of the window is captured (token from $"+pprofTokenEnv+")")
	flag.StringVar(&o.pprofOut, "pprof-out", "", "file for the CPU profile")
	flag.IntVar(&o.procs, "procs", 1, "GOMAXPROCS of the generator: 1 leaves the other cores to the relay under test (0: Go's default)")
	flag.Parse()
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	var err error
	if o.target, err = parseTarget(tgt); err != nil {
		return err
	}
	if o.calls < 1 || o.calls > 1_000_000 {
		return errors.New("relaygen: -n must be 1..1000000")
	}
	if o.concurrency < 1 {
		o.concurrency = 1
	}
	switch o.target {
	case targetRTPEngine:
		if o.ng == "" {
			return errors.New("relaygen: -target rtpengine needs -ng")
		}
	case targetMatterline:
		if o.sipAddr == "" || o.agentAddr == "" {
			return errors.New("relaygen: -target matterline needs -sip and -agent")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// A backstop in case teardown itself hangs.
	hard := time.AfterFunc(o.timeout+30*time.Second, func() {
		fmt.Fprintln(os.Stderr, "relaygen: overall timeout exceeded during teardown")
		os.Exit(2)
	})
	defer hard.Stop()
	return bench(ctx, o)
}

// result is one run's figures.
type result struct {
	calls, up                   int
	setup                       time.Duration
	sent, received, lost        uint64
	lossCalls                   int
	sendErrs, skippedTicks      uint64
	stray                       uint64
	p50, p99, max               time.Duration
	relayCPU, selfCPU, wall     time.Duration
	rssBefore, rssAfter, rssEnd int64
	teardownErrs                int
}

func bench(ctx context.Context, o options) error {
	hz := clockTicks()
	pid := strconv.Itoa(o.pid)
	measure := o.pid > 0

	eps := make([]*endpoint, 0, 2*o.calls)
	defer func() {
		for _, e := range eps {
			_ = e.conn.Close()
		}
	}()
	for i := 0; i < 2*o.calls; i++ {
		e, err := openEndpoint(uint32(i))
		if err != nil {
			return fmt.Errorf("relaygen: rtp socket %d: %w (raise ulimit -n)", i, err)
		}
		eps = append(eps, e)
	}
	res := result{calls: o.calls}
	if measure {
		var err error
		if res.rssBefore, err = procRSS(pid); err != nil {
			return err
		}
	}

	// Set the calls up.
	up := make([]bool, o.calls)
	var teardown func()
	t0 := time.Now()
	switch o.target {
	case targetRTPEngine:
		ng, err := dialNG(o.ng)
		if err != nil {
			return err
		}
		defer ng.Close()
		tag := strconv.FormatInt(time.Now().UnixNano(), 36)
		var calls []*ngCall
		var firstErr error
		for k := 0; k < o.calls && ctx.Err() == nil; k++ {
			c, err := setupNG(ctx, ng, k, eps[2*k], eps[2*k+1], tag)
			if c != nil {
				calls = append(calls, c)
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			up[k] = true
		}
		if firstErr != nil {
			fmt.Fprintln(os.Stderr, "relaygen: first setup error:", firstErr)
		}
		teardown = func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			for _, c := range calls {
				if err := deleteNG(dctx, ng, c); err != nil {
					res.teardownErrs++
				}
			}
		}
	case targetMatterline:
		rig, err := startSIPRig(o.agentAddr, o.sipAddr, eps, o.calls)
		if err != nil {
			return err
		}
		defer rig.close()
		legs := make([]*callerLeg, o.calls)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		work := make(chan int)
		for w := 0; w < o.concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range work {
					err := setupSIPCall(ctx, rig, k, o.callTimeout, legs)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					up[k] = err == nil
					mu.Unlock()
				}
			}()
		}
		for k := 0; k < o.calls && ctx.Err() == nil; k++ {
			work <- k
		}
		close(work)
		wg.Wait()
		if firstErr != nil {
			fmt.Fprintln(os.Stderr, "relaygen: first setup error:", firstErr)
		}
		if n := rig.strays(); n > 0 {
			fmt.Fprintf(os.Stderr, "relaygen: %d agent INVITEs matched no call\n", n)
		}
		teardown = func() {
			var twg sync.WaitGroup
			var tmu sync.Mutex
			sem := make(chan struct{}, o.concurrency)
			for _, l := range legs {
				if l == nil {
					continue
				}
				twg.Add(1)
				sem <- struct{}{}
				go func() {
					defer twg.Done()
					defer func() { <-sem }()
					if err := rig.hangup(ctx, l); err != nil {
						tmu.Lock()
						res.teardownErrs++
						tmu.Unlock()
					}
				}()
			}
			twg.Wait()
			// matterline ends the agent legs with BYE after the callers'; give
			// them a moment to arrive and be answered.
			time.Sleep(500 * time.Millisecond)
		}
	}
	res.setup = time.Since(t0)
	// Media flows only on calls that are fully up.
	active := make([]*endpoint, 0, len(eps))
	for k, ok := range up {
		if ok {
			res.up++
			active = append(active, eps[2*k], eps[2*k+1])
		}
	}
	defer func() {
		if teardown != nil {
			teardown()
		}
	}()
	if res.up == 0 {
		return errors.New("relaygen: no call could be set up")
	}
	if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	if measure {
		var err error
		if res.rssAfter, err = procRSS(pid); err != nil {
			return err
		}
	}

	// Media: warm-up, then the window.
	m := newMeter(time.Now(), len(eps), o.warmup, o.window)
	var rx receivers
	rx.start(m, active)
	defer func() {
		// Teardown order: BYE (or ng delete) first, then the media sockets.
		if teardown != nil {
			teardown()
			teardown = nil
		}
		for _, e := range eps {
			_ = e.conn.Close()
		}
		rx.wait()
	}()
	snd := &sender{m: m, eps: active}
	stop := make(chan struct{})
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		runtime.LockOSThread()
		snd.run(stop)
	}()
	abort := func(err error) error {
		close(stop)
		<-sendDone
		return err
	}
	if err := sleepUntil(ctx, m.start.Add(time.Duration(m.winStart))); err != nil {
		return abort(err)
	}
	var relay0, self0 time.Duration
	wall0 := time.Now()
	if measure {
		relay0, _ = procCPU(pid, hz)
	}
	self0, _ = procCPU("self", hz)
	profDone := make(chan error, 1)
	if o.pprofURL != "" && o.pprofOut != "" {
		go func() { profDone <- captureProfile(ctx, o.pprofURL, o.pprofOut, o.window) }()
	} else {
		profDone <- nil
	}
	if err := sleepUntil(ctx, m.start.Add(time.Duration(m.winEnd))); err != nil {
		return abort(err)
	}
	if measure {
		relay1, err := procCPU(pid, hz)
		if err != nil {
			return abort(fmt.Errorf("relaygen: relay process gone during the window: %w", err))
		}
		res.relayCPU = relay1 - relay0
	}
	self1, _ := procCPU("self", hz)
	res.wall = time.Since(wall0)
	res.selfCPU = self1 - self0
	<-sendDone
	if err := sleepCtx(ctx, o.grace); err != nil {
		return err
	}
	if measure {
		res.rssEnd, _ = procRSS(pid)
	}
	if err := <-profDone; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}

	// Collect.
	for _, e := range active {
		res.sent += e.sent
		res.sendErrs += e.errs
	}
	res.skippedTicks = snd.skipped
	for k, ok := range up {
		if !ok {
			continue
		}
		lossy := false
		for _, id := range []int{2 * k, 2*k + 1} {
			s, r := eps[id].sent, m.recv[id].Load()
			res.received += r
			if r < s {
				res.lost += s - r
				lossy = true
			}
		}
		if lossy {
			res.lossCalls++
		}
	}
	res.stray = m.stray.Load()
	res.p50, res.p99 = m.percentile(0.50), m.percentile(0.99)
	res.max = time.Duration(m.maxLat.Load())
	// Teardown order: BYE (or ng delete) first, then media sockets (deferred).
	teardown()
	teardown = nil
	report(o, res, hz)
	return nil
}

// setupSIPCall places call k and waits until matterline's agent leg for it is
// acknowledged (the call is then bridged).
func setupSIPCall(ctx context.Context, rig *sipRig, k int, timeout time.Duration, legs []*callerLeg) error {
	deadline := time.Now().Add(timeout)
	leg, err := rig.dial(ctx, k, timeout)
	if err != nil {
		return err
	}
	legs[k] = leg
	for {
		if ch := rig.agentAcked(k); ch != nil {
			select {
			case <-ch:
				return nil
			case <-time.After(time.Until(deadline)):
				return fmt.Errorf("relaygen: call %d: agent leg not acknowledged", k)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relaygen: call %d: matterline did not dial the agent", k)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("relaygen: %w", ctx.Err())
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	if d := time.Until(at); d > 0 {
		return sleepCtx(ctx, d)
	}
	return ctx.Err()
}

// report prints the machine-readable line (RESULT key=value ...) and a human one.
func report(o options, r result, hz int64) {
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	perPkt := 0.0
	if r.received > 0 {
		perPkt = float64(r.relayCPU) / 1e3 / float64(r.received)
	}
	genPct := 0.0
	if r.wall > 0 {
		genPct = 100 * float64(r.selfCPU) / float64(r.wall)
	}
	kibPerCall := 0.0
	if r.up > 0 {
		kibPerCall = float64(r.rssAfter-r.rssBefore) / float64(r.up)
	}
	relayPct := 0.0
	if r.wall > 0 {
		relayPct = 100 * float64(r.relayCPU) / float64(r.wall)
	}
	kv := []string{
		"target=" + o.target.String(),
		"calls=" + strconv.Itoa(r.calls),
		"up=" + strconv.Itoa(r.up),
		"setup_s=" + strconv.FormatFloat(r.setup.Seconds(), 'f', 2, 64),
		"window_s=" + strconv.FormatFloat(o.window.Seconds(), 'f', 1, 64),
		"sent=" + strconv.FormatUint(r.sent, 10),
		"received=" + strconv.FormatUint(r.received, 10),
		"lost=" + strconv.FormatUint(r.lost, 10),
		"loss_calls=" + strconv.Itoa(r.lossCalls),
		"send_errors=" + strconv.FormatUint(r.sendErrs, 10),
		"skipped_ticks=" + strconv.FormatUint(r.skippedTicks, 10),
		"stray=" + strconv.FormatUint(r.stray, 10),
		"lat_p50_us=" + us(r.p50),
		"lat_p99_us=" + us(r.p99),
		"lat_max_us=" + us(r.max),
		"relay_cpu_ms=" + strconv.FormatFloat(float64(r.relayCPU)/1e6, 'f', 0, 64),
		"relay_cpu_pct=" + strconv.FormatFloat(relayPct, 'f', 1, 64),
		"cpu_us_per_pkt=" + strconv.FormatFloat(perPkt, 'f', 3, 64),
		"gen_cpu_pct=" + strconv.FormatFloat(genPct, 'f', 1, 64),
		"rss_before_kib=" + strconv.FormatInt(r.rssBefore, 10),
		"rss_up_kib=" + strconv.FormatInt(r.rssAfter, 10),
		"rss_end_kib=" + strconv.FormatInt(r.rssEnd, 10),
		"kib_per_call=" + strconv.FormatFloat(kibPerCall, 'f', 1, 64),
		"clk_tck=" + strconv.FormatInt(hz, 10),
		"gen_procs=" + strconv.Itoa(runtime.GOMAXPROCS(0)),
		"teardown_errors=" + strconv.Itoa(r.teardownErrs),
	}
	fmt.Println("RESULT " + strings.Join(kv, " "))
	fmt.Printf("%s: %d/%d calls up in %.1fs; %d pkts sent, %d received, %d lost (%d calls with loss); "+
		"added latency p50 %s µs p99 %s µs max %s µs; relay CPU %.1f%% = %.3f µs/pkt; "+
		"RSS %d → %d KiB (%.1f KiB/call); generator CPU %.1f%% of one core\n",
		o.target, r.up, r.calls, r.setup.Seconds(), r.sent, r.received, r.lost, r.lossCalls,
		us(r.p50), us(r.p99), us(r.max), relayPct, perPkt, r.rssBefore, r.rssAfter, kibPerCall, genPct)
}
