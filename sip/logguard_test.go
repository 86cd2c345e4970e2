package sip

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestLogGuardTruncatesAndHidesRawMessages(t *testing.T) {
	var out syncBuffer
	log := slog.New(newLogGuard(slog.NewTextHandler(&out, nil)))
	raw := "INVITE sip:x SIP/2.0\r\nFrom: <sip:+12175552171@pbx>\r\n" + strings.Repeat("A", 60000)
	log.Error("failed to parse", "data", raw, "error", strings.Repeat("e", 5000))
	log.With("header", strings.Repeat("h", 5000)).Info(strings.Repeat("m", 5000))
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if len(line) > 4*maxLogValue {
			t.Errorf("log line of %d bytes", len(line))
		}
	}
	if strings.Contains(out.String(), "2175552171") {
		t.Error("the raw message (caller number) reached the log")
	}
	if !strings.Contains(out.String(), "data_bytes=") {
		t.Errorf("raw message size not logged: %s", out.String())
	}
}

func TestLogGuardRateLimitsWarnings(t *testing.T) {
	l := newRateTable(logRate, logBurst)
	start := time.Unix(1000, 0)
	sent, reported := 0, 0
	for i := 0; i < 1000; i++ { // 1000 in one second
		if ok, n := l.allow("flood", start.Add(time.Duration(i)*time.Millisecond)); ok {
			sent++
			reported += n
		}
	}
	if sent > logBurst+logRate+1 {
		t.Errorf("%d of 1000 warnings in a second went out, want at most %d", sent, logBurst+logRate+1)
	}
	// Every dropped line is counted on a line that goes out.
	ok, n := l.allow("flood", start.Add(10*time.Second))
	if !ok || reported+n != 1000-sent {
		t.Errorf("after a pause: ok %v, suppressed counted %d, want %d", ok, reported+n, 1000-sent)
	}
	if ok, _ := l.allow("other", start); !ok {
		t.Error("another message was limited by the first")
	}
}

// The flood an attacker can send (127.0.0.2, untrusted): 200 datagrams of 60 KB
// that do not parse and 300 INVITEs. The log stays small, no line is long, and
// no raw message (with its caller number) is written.
func TestLogFloodFromStranger(t *testing.T) {
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer attacker.Close()
	var out syncBuffer
	cfg := defaultTestConfig()
	e := newEnv(t, cfg, WithLogger(slog.New(slog.NewTextHandler(&out, nil))))
	srv, err := net.ResolveUDPAddr("udp", e.udp)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte("GARBAGE +12175552171 " + strings.Repeat("x", 60000))
	for i := 0; i < 200; i++ {
		_, _ = attacker.WriteToUDP(junk, srv)
	}
	for i := 0; i < 300; i++ {
		inv := "INVITE sip:100@" + e.udp + " SIP/2.0\r\nVia: SIP/2.0/UDP " + attacker.LocalAddr().String() +
			";branch=z9hG4bKflood" + strings.Repeat("0", i%7) + string(rune('a'+i%26)) + "\r\n" +
			"From: <sip:+12175552171@evil>;tag=t\r\nTo: <sip:100@x>\r\nCall-ID: flood-" + string(rune('a'+i%26)) + strings.Repeat("z", i) +
			"\r\nCSeq: 1 INVITE\r\nContact: <sip:evil@127.0.0.2>\r\nContent-Length: 0\r\n\r\n"
		_, _ = attacker.WriteToUDP([]byte(inv), srv)
	}
	time.Sleep(time.Second)
	logged := out.String()
	for _, line := range strings.Split(logged, "\n") {
		if len(line) > 4*maxLogValue {
			t.Fatalf("log line of %d bytes: %.200s", len(line), line)
		}
	}
	if len(logged) > 64<<10 {
		t.Errorf("%d bytes of log for the flood, want under 64 KiB", len(logged))
	}
	if strings.Contains(logged, "2175552171") {
		t.Error("a caller number from the flood reached the log")
	}
	if n := strings.Count(logged, "invite from untrusted source rejected"); n > logBurst+2*logRate {
		t.Errorf("%d untrusted-INVITE warnings, want at most %d", n, logBurst+2*logRate)
	}
}
