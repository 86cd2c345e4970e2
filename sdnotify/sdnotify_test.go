package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's and returns a function reading
// the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPathSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	read := listen(t, sock)
	n := New(sock)
	if !n.Enabled() {
		t.Fatal("not enabled")
	}
	steps := []struct {
		send func() error
		want string
	}{
		{func() error { return n.Ready("") }, "READY=1"},
		{func() error { return n.Ready("listening on udp://0.0.0.0:5060") }, "READY=1\nSTATUS=listening on udp://0.0.0.0:5060"},
		{func() error { return n.Status("2 calls\nREADY=1") }, "STATUS=2 calls READY=1"},
		{func() error { return n.Stopping("draining 2 calls") }, "STOPPING=1\nSTATUS=draining 2 calls"},
		{func() error { return n.Watchdog() }, "WATCHDOG=1"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != s.want {
			t.Errorf("got %q, want %q", got, s.want)
		}
	}
	if err := n.Notify("READY=1\nSTOPPING=1"); err == nil {
		t.Error("a state with a newline was accepted")
	}
	if err := n.Notify("garbage"); err == nil {
		t.Error("a state without '=' was accepted")
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("abstract sockets are Linux-only")
	}
	name := fmt.Sprintf("@matterline-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	read := listen(t, name)
	if err := New(name).Ready("up"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "READY=1\nSTATUS=up" {
		t.Fatalf("got %q", got)
	}
}

func TestDisabledIsNoop(t *testing.T) {
	var nilN *Notifier
	for _, n := range []*Notifier{nilN, {}, New("")} {
		if n.Enabled() || n.WatchdogInterval() != 0 {
			t.Fatal("disabled notifier reports enabled")
		}
		if err := n.Ready("x"); err != nil {
			t.Fatal(err)
		}
		if err := n.Stopping(""); err != nil {
			t.Fatal(err)
		}
		n.RunWatchdog(context.Background(), nil) // returns at once
	}
}

func TestFromEnv(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n.sock")
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	n := FromEnv()
	if !n.Enabled() || n.WatchdogInterval() != 4*time.Second {
		t.Fatalf("FromEnv = %+v", n)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if FromEnv().WatchdogInterval() != 0 {
		t.Fatal("watchdog meant for another pid enabled")
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if FromEnv().Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	for _, c := range []struct{ usec, pid string }{{"", ""}, {"x", ""}, {"-5", ""}, {"100", "nope"}} {
		if d := watchdogInterval(c.usec, c.pid, 42); d != 0 {
			t.Errorf("watchdogInterval(%q, %q) = %v", c.usec, c.pid, d)
		}
	}
}

func TestRunWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "wd.sock")
	read := listen(t, sock)
	n := &Notifier{socket: sock, watchdog: 40 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, func(err error) { t.Errorf("watchdog: %v", err) })
	}()
	for i := 0; i < 3; i++ {
		if got := read(); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not stop")
	}
}

func TestNotifyNoListener(t *testing.T) {
	err := New(filepath.Join(t.TempDir(), "absent.sock")).Ready("")
	if err == nil || !strings.Contains(err.Error(), "sdnotify: dial") {
		t.Fatalf("err = %v", err)
	}
}
