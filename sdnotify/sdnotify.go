// Package sdnotify tells systemd about the service's state over the
// notification socket, as described in sd_notify(3) and systemd.service(5)
// (Type=notify): READY=1 once the listeners are up, STOPPING=1 when the drain
// starts, STATUS=... for a human-readable line in `systemctl status`, and
// WATCHDOG=1 keep-alives when WatchdogSec= is set.
//
// The socket path comes from $NOTIFY_SOCKET; a leading '@' names a Linux
// abstract socket. Without $NOTIFY_SOCKET (not started by systemd, or another
// Type=) every call is a no-op, so callers need not check.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state messages to systemd. The zero value (and a nil
// *Notifier) is a disabled notifier whose methods do nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// New returns a Notifier for the given socket path (an '@' prefix means an
// abstract socket). An empty path gives a disabled notifier.
func New(socket string) *Notifier { return &Notifier{socket: socket} }

// FromEnv returns a Notifier configured from the process environment:
// $NOTIFY_SOCKET, and $WATCHDOG_USEC when $WATCHDOG_PID is unset or names this
// process. It does not modify the environment.
func FromEnv() *Notifier {
	n := New(os.Getenv("NOTIFY_SOCKET"))
	n.watchdog = watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
	return n
}

func watchdogInterval(usec, pid string, self int) time.Duration {
	if usec == "" {
		return 0
	}
	if pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != self {
			return 0
		}
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// Enabled reports whether notifications are sent anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval returns systemd's watchdog timeout (WatchdogSec=), or 0 when
// the watchdog is off for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Notify sends the given state assignments ("READY=1", "STATUS=draining") as one
// datagram, newline-separated. It is a no-op on a disabled notifier. A state
// containing a newline is refused, since it would forge another assignment.
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() || len(states) == 0 {
		return nil
	}
	for _, s := range states {
		if strings.ContainsAny(s, "\n") || !strings.Contains(s, "=") {
			return fmt.Errorf("sdnotify: invalid state %q", s)
		}
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", n.socket, err)
	}
	defer conn.Close()
	// systemd reads the socket promptly; a deadline keeps a stuck manager
	// from hanging start-up or shutdown.
	_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: send: %w", err)
	}
	return nil
}

// Ready tells systemd start-up is complete (READY=1), with an optional status line.
func (n *Notifier) Ready(status string) error { return n.Notify(withStatus("READY=1", status)...) }

// Stopping tells systemd the service is shutting down (STOPPING=1), with an
// optional status line such as "draining 3 calls".
func (n *Notifier) Stopping(status string) error {
	return n.Notify(withStatus("STOPPING=1", status)...)
}

// Status sets the status line shown by `systemctl status`.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + oneLine(status)) }

// Watchdog sends one watchdog keep-alive (WATCHDOG=1).
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// RunWatchdog sends WATCHDOG=1 at half the watchdog interval until ctx is done.
// The caller owns the goroutine it runs in (`go n.RunWatchdog(ctx, logErr)`); it
// returns at once when the watchdog is off. A failed keep-alive is passed to
// onError (when not nil) and retried at the next tick.
func (n *Notifier) RunWatchdog(ctx context.Context, onError func(error)) {
	iv := n.WatchdogInterval()
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		if err := n.Watchdog(); err != nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func withStatus(state, status string) []string {
	if status == "" {
		return []string{state}
	}
	return []string{state, "STATUS=" + oneLine(status)}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
