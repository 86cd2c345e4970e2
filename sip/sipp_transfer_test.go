package sip

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// sippPath returns sipp, skipping the test without it unless CI=true.
func sippPath(t *testing.T) string {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not on PATH (required when CI=true)")
		}
		t.Skip("sipp not on PATH")
	}
	return sipp
}

// A sipp UAC (the PBX) takes the REFER, answers 202, reports 200 in a sipfrag
// NOTIFY and gets our BYE.
func TestSippColdTransferRefer(t *testing.T) {
	sipp := sippPath(t)
	if _, err := os.Stat(dtmfPcap); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp pcap missing: %v", err)
		}
		t.Skipf("sipp pcap missing: %v", err)
	}
	cfg := transferConfig()
	cfg.OutboundProxy = "sip:127.0.0.1:5070"
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(coldRule("+15551234567")))), WithCallRecords(cdr))
	scenario, err := filepath.Abs("testdata/uac_refer.xml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", scenario, "-s", "100", "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(freeUDPPort(t)), "-mp", strconv.Itoa(freeRTPPort(t)),
		"-timeout", "30s", "-timeout_error", "-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"), e.udp)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp: %v\n%s\nerrors.log:\n%s", err, tail(out, 3000), errLog)
	}
	e.waitIdle()
	cdr.mu.Lock()
	defer cdr.mu.Unlock()
	if len(cdr.recs) != 1 || cdr.recs[0].Outcome != records.OutcomeReferred {
		t.Errorf("records = %+v", cdr.recs)
	}
}

// A sipp UAS plays the attorney's phone in a warm transfer: it answers, echoes
// the bridged RTP back (the caller hears its own audio through both legs) and
// gets our BYE when the caller hangs up.
func TestSippWarmTransferCallee(t *testing.T) {
	sipp := sippPath(t)
	port := freeUDPPort(t)
	scenario, err := filepath.Abs("testdata/uas_callee.xml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", scenario, "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(freeRTPPort(t)), "-rtp_echo",
		"-timeout", "30s", "-timeout_error", "-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var outBuf strings.Builder
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond) // sipp binds its port

	cdr := &memCDR{}
	rule := warmRule("felix", "sip:101@127.0.0.1:"+strconv.Itoa(port), "")
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	e.waitState(c.CallID, StateBridged)
	fill := media.EncodeUlaw(-2500)
	if err := c.RTP.SendAudio(0, fill, 50); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "echoed audio through both legs", func() bool {
		return c.RTP.CountPayload(0, fill) >= 45
	})
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			errLog, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
			t.Fatalf("sipp: %v\n%s\nerrors.log:\n%s", err, tail([]byte(outBuf.String()), 3000), errLog)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sipp did not finish")
	}
	if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeBridged || rec.Mode != routing.ModeWarm {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}
