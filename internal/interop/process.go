package interop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultStartTimeout bounds how long Start* waits for a process to be ready.
const DefaultStartTimeout = 10 * time.Second

// startAttempts is how often Start* retries with fresh ports when a process
// does not come up: a port found free can be taken by another test before the
// process binds it.
const startAttempts = 3

// stopGrace is how long a process may take to exit after SIGTERM before the
// whole process group gets SIGKILL.
const stopGrace = 3 * time.Second

// outputCap bounds the output kept per process; older output is dropped.
const outputCap = 1 << 20

// Transport is the SIP transport a peer listens on and uses.
type Transport int

const (
	// TransportUDP is the default (also the zero value's meaning).
	TransportUDP Transport = iota + 1
	// TransportTCP listens on TCP as well as UDP and routes over TCP.
	TransportTCP
	// TransportTLS listens on TLS as well (baresip: on the SIP port + 1) and
	// routes over TLS.
	TransportTLS
)

func (tr Transport) String() string {
	switch tr {
	case TransportTCP:
		return "tcp"
	case TransportTLS:
		return "tls"
	default:
		return "udp"
	}
}

// findBinary returns the path of the named program (looked up on PATH, then at
// fallback), skipping the test when it is missing, or failing it when CI=true:
// CI installs every interop tool, so there a missing one is an error.
func findBinary(t testing.TB, name, fallback, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	msg := fmt.Sprintf("interop: %s not found on PATH or at %s (install the Debian package %s)", name, fallback, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this test must not be skipped")
	}
	t.Skip(msg)
	return ""
}

// process is one started program in its own process group with its output
// (stdout and stderr together) captured.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lineWriter
	done chan struct{} // closed when the program has exited
	err  error         // Wait's result, set before done is closed

	stopOnce sync.Once
}

// startProcess starts bin with args in dir, with env added to the test's
// environment; onLine sees each output line (it runs on the goroutine copying
// output and must not block).
func startProcess(name, bin, dir string, env []string, onLine func(string), args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = stopGrace
	p := &process{name: name, cmd: cmd, out: &lineWriter{onLine: onLine}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("interop: start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the program has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the whole process group: SIGTERM, then SIGKILL after stopGrace,
// then waits for the program. Children that outlive their parent get SIGKILL
// too. Idempotent.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		pgid := -p.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-p.done
		}
		// Kamailio's children normally exit with their parent; make sure.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
	})
}

// stopAndCheck stops the process and fails the test when a member of its
// process group is still alive shortly after.
func (p *process) stopAndCheck(t testing.TB) {
	p.stop()
	pgid := -p.cmd.Process.Pid
	deadline := time.Now().Add(stopGrace)
	for syscall.Kill(pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("interop: %s: process group %d still has members after stop", p.name, -pgid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// output is the captured output so far.
func (p *process) output() string { return p.out.String() }

// failure describes a process that did not become ready, with its output.
func (p *process) failure(cause error) error {
	state := "still running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	return fmt.Errorf("%w: %s (%s): %w\n--- %s output ---\n%s", ErrNotReady, p.name, state, cause, p.name, p.output())
}

// lineWriter keeps what is written (up to outputCap, dropping the oldest) and
// hands every complete line to onLine.
type lineWriter struct {
	mu      sync.Mutex
	all     []byte
	partial []byte
	onLine  func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.all = append(w.all, b...)
	if len(w.all) > outputCap {
		w.all = append(w.all[:0], w.all[len(w.all)-outputCap:]...)
	}
	w.partial = append(w.partial, b...)
	var lines []string
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(bytes.TrimRight(w.partial[:i], "\r")))
		w.partial = w.partial[i+1:]
	}
	w.mu.Unlock()
	if w.onLine != nil {
		for _, l := range lines {
			w.onLine(l)
		}
	}
	return len(b), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.all)
}

// freePort returns a port on 127.0.0.1 that was free for UDP and, when tcp is
// set, for TCP too at the time of the call.
func freePort(tcp bool) (int, error) {
	var lastErr error
	for range 50 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("interop: free port: %w", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		if !tcp {
			u.Close()
			return port, nil
		}
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("interop: no port free for both udp and tcp: %w", lastErr)
}

// ErrNotReady is wrapped by the error a Start* function fails the test with
// when a process does not come up in time.
var ErrNotReady = errors.New("interop: process not ready")

// tcpPortFree reports whether port can be bound on 127.0.0.1 over TCP now.
func tcpPortFree(port int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
