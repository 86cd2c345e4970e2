package sip

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/matterline/matterline/internal/interop"
	"github.com/matterline/matterline/media"
)

// greetingHz is the tone of the greeting in the SRTP interop test.
const greetingHz = 440.0

// baresip with its srtp module (SDES, RTP/SAVP mandatory) calls matterline, which
// runs media.srtp "require": matterline answers RTP/SAVP with its own key and
// baresip hears the greeting, which only decrypts with that key.
func TestBaresipSRTPHearsGreeting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := interop.WriteToneWAV(filepath.Join(dir, media.PromptGreeting+".wav"), greetingHz, 0.3, 3); err != nil {
		t.Fatal(err)
	}
	prompts, err := media.LoadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	caller := interop.StartBaresip(t, interop.BaresipOptions{User: "caller", ToneHz: callerHz, MediaEnc: "srtp-mand"})
	cfg := defaultTestConfig()
	cfg.SRTP = media.SRTPRequire
	log := newMsgLog(t)
	e := newEnv(t, cfg, WithPrompts(prompts), WithTracer(log))
	e.srv.SetSIPTrace(true)

	if err := caller.Dial("sip:" + testService + "@" + e.udp); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatalf("%v\n%s", err, caller.Output())
	}
	waitHears(t, caller, "baresip (greeting over srtp)", greetingHz)

	invite := log.wait(t, peerTimeout, "the INVITE", func(m traceMsg) bool { return !m.Outbound && m.Method == "INVITE" })
	ok := log.wait(t, peerTimeout, "the 200", func(m traceMsg) bool {
		return m.Outbound && m.Status == 200 && m.CSeqMethod == "INVITE"
	})
	for name, body := range map[string]string{"offer": invite.Body, "answer": ok.Body} {
		if !strings.Contains(body, " RTP/SAVP ") || !strings.Contains(body, "a=crypto:") {
			t.Errorf("%s is not SDES-SRTP:\n%s", name, body)
		}
	}
}
