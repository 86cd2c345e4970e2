package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/store"
)

// crashChildEnv names the config file when this test binary runs as a
// `matterline serve` child (TestCrashChild).
const crashChildEnv = "MATTERLINE_CRASH_CHILD_CONFIG"

// TestCrashChild is not a test: it is `matterline serve -config $MATTERLINE_CRASH_CHILD_CONFIG`
// in a process of its own, for TestCrashLeavesInterruptedRecord to kill -9.
func TestCrashChild(t *testing.T) {
	cfg := os.Getenv(crashChildEnv)
	if cfg == "" {
		t.Skip("only run as the child of TestCrashLeavesInterruptedRecord")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, []string{"serve", "-config", cfg}, stdio{out: os.Stdout, err: os.Stderr}))
}

// crashChild is one `matterline serve` process.
type crashChild struct {
	cmd  *exec.Cmd
	sip  string // 127.0.0.1:PORT (UDP)
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{} // closed when its log is read to the end
}

var sipListening = regexp.MustCompile(`msg="matterline started".* sip=\[udp://(127\.0\.0\.1:\d+)\]`)

// startCrashChild runs serve on cfgPath and waits until it takes calls.
func startCrashChild(t *testing.T, cfgPath string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", c.logText())
		}
	})
	started := make(chan string, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.log.WriteString(line + "\n")
			c.mu.Unlock()
			if m := sipListening.FindStringSubmatch(line); m != nil {
				started <- m[1]
			}
		}
	}()
	select {
	case c.sip = <-started:
	case <-c.done:
		t.Fatalf("serve exited before it started:\n%s", c.logText())
	case <-time.After(e2eWait):
		t.Fatalf("serve not started within %s:\n%s", e2eWait, c.logText())
	}
	return c
}

func (c *crashChild) logText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// Issue 8 (security): records survive a crash. A call in the menu has its row; after
// kill -9 and a restart on the same database the row is interrupted.
func TestCrashLeavesInterruptedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts matterline serve twice as a child process")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "matterline.db")
	cfgPath := filepath.Join(dir, "matterline.yaml")
	yaml := fmt.Sprintf(`sip:
  listen: ["udp://127.0.0.1:0"]
  trusted_sources: ["127.0.0.0/8"]
  service_number: "+12175550100"
media:
  rtp_ports: %q
http:
  listen: "127.0.0.1:0"
store:
  path: %q
transfer:
  messages_dir: %q
firm:
  time_zone: UTC
`, e2eRTPPorts(), db, filepath.Join(dir, "messages"))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	first := startCrashChild(t, cfgPath)
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	call, err := caller.Dial(ctx, "sip:demo@"+first.sip, phone.DialOptions{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := call.Listen(ctx, phone.Sound{For: 300 * time.Millisecond}); err != nil {
		t.Fatalf("greeting not heard: %v", err)
	}

	calls := openCrashStore(t, db)
	var rec records.CallRecord
	waitFor(t, "the call's row in progress", func() bool {
		recs, err := calls.List(ctx, records.Filter{})
		if err != nil || len(recs) != 1 {
			return false
		}
		rec = recs[0]
		return true
	})
	if rec.Outcome != records.OutcomeInProgress || !rec.End.IsZero() || rec.Caller != e2eCaller {
		t.Fatalf("row while the call is in the menu: %+v", rec)
	}

	// kill -9: no teardown, no final record.
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	<-first.done
	if got, err := calls.Get(ctx, rec.ID); err != nil || got.Outcome != records.OutcomeInProgress {
		t.Fatalf("after kill -9, before restart: %+v %v", got, err)
	}

	second := startCrashChild(t, cfgPath)
	got, err := calls.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != records.OutcomeInterrupted || got.EndReason != records.EndInterrupted ||
		!got.End.IsZero() || !got.Start.Equal(rec.Start) || got.CallID != rec.CallID {
		t.Errorf("after restart: %+v", got)
	}
	if !strings.Contains(second.logText(), `msg="calls cut off by the previous run marked interrupted" calls=1`) {
		t.Errorf("restart did not log the interrupted call:\n%s", second.logText())
	}
	// The CLI lists it.
	code, out, errs := runRecordsCmd(t, "calls", "--outcome", "interrupted", "--json", "-config", cfgPath)
	if ids := callIDs(t, out); code != 0 || len(ids) != 1 || ids[0] != rec.ID {
		t.Errorf("calls --outcome interrupted: %d %q %s", code, out, errs)
	}
}

func openCrashStore(t *testing.T, path string) *records.CallStore {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := records.NewCallStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
