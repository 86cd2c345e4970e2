package sip

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/matterline/matterline/routing"
)

// dtmfPcap holds RFC 4733 events for digit 1 at payload type 101 (checked with
// tshark: event 1, three end packets).
const dtmfPcap = "/usr/share/sip-tester/dtmf_2833_1.pcap"

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeRTPPort returns an even port p with p and p+1..p+3 free (sipp uses several).
func freeRTPPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freeUDPPort(t) &^ 1
		ok := true
		for j := 0; j < 4 && ok; j++ {
			c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+j))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free rtp port range")
	return 0
}

func TestSippInterop(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not on PATH (required when CI=true)")
		}
		t.Skip("sipp not on PATH")
	}
	if _, err := os.Stat(dtmfPcap); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp pcap missing: %v", err)
		}
		t.Skipf("sipp pcap missing: %v", err)
	}
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, defaultTestConfig(), WithRouter(r))
	scenario, err := filepath.Abs("testdata/uac_dtmf_2833.xml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp,
		"-sf", scenario,
		"-s", "100",
		"-m", "1",
		"-i", "127.0.0.1",
		"-p", strconv.Itoa(freeUDPPort(t)),
		"-mp", strconv.Itoa(freeRTPPort(t)),
		"-timeout", "30s", "-timeout_error",
		"-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		e.udp,
	)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp: %v\n%s\nerrors.log:\n%s", err, tail(out, 3000), errLog)
	}
	in, info := r.wait(t, 5*time.Second)
	if in.Kind != routing.IntentResponsible {
		t.Fatalf("server heard intent %v, want responsible (digit 1 from the pcap)", in)
	}
	if info.Caller != "+12175552171" {
		t.Errorf("caller = %q", info.Caller)
	}
	e.waitIdle()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
