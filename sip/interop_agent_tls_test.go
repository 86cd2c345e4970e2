package sip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/internal/interop"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

// baresip (OpenSSL under libre, SDES-SRTP mandatory) is the voice agent behind a
// sips-style target: matterline places the agent leg over TLS with an RTP/SAVP
// offer, baresip answers it, and the caller on plain RTP over UDP and the agent
// on SRTP over TLS hear each other through the SRTP<->RTP bridge.
func TestBaresipAgentOverTLSWithSRTP(t *testing.T) {
	t.Parallel()
	const agentHz, callerVoiceHz = 1100.0, 700.0
	ts := newTLSSetup(t)
	leaf := ts.ca.Issue(t, "agent", "127.0.0.1")
	bundle := filepath.Join(ts.dir, "agent.pem")
	if err := os.WriteFile(bundle, append(append([]byte(nil), leaf.CertPEM...), leaf.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := interop.StartBaresip(t, interop.BaresipOptions{User: "agent", ToneHz: agentHz, AutoAnswer: true,
		Transport: interop.TransportTLS, TLSCertificate: bundle, TLSCAFile: ts.caFile, MediaEnc: "srtp-mand"})
	cfg := ts.config(agentConfig("sip:agent@"+agent.TLSAddr()+";transport=tls", AgentModeFirst))
	cfg.AgentAnswerTimeout = 8 * time.Second
	cfg.SRTP = media.SRTPOffer
	e := newEnv(t, cfg, WithLookup(quistLookup()))

	caller := newCallerPhone(t)
	cc, err := caller.Dial(ctxT(t, 10*time.Second), "sip:100@"+e.udp, phone.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatalf("the agent leg: %v\n%s", err, agent.Output())
	}
	e.waitState(cc.ID(), StateAgent)
	// What the agent leg negotiated, read on the call's own goroutine.
	type legState struct {
		transport string
		srtp      bool
	}
	got := make(chan legState, 1)
	cl := e.srv.reg.call(e.onlyCall().ID)
	cl.post(callFunc(func() {
		var st legState
		if cl.out != nil {
			st.transport = cl.out.dlg.transport
			st.srtp = cl.out.oa.negotiated().SRTP != (media.SRTPKeys{})
		}
		got <- st
	}))
	select {
	case st := <-got:
		if !strings.EqualFold(st.transport, "TLS") || !st.srtp {
			t.Errorf("the agent leg: transport %q, srtp %v; want TLS with SDES-SRTP", st.transport, st.srtp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not run the check")
	}
	// The agent's tone reaches the caller in clear RTP, the caller's voice
	// reaches the agent in SRTP.
	if _, err := cc.Listen(ctxT(t, 10*time.Second), phone.Sound{Tones: []float64{agentHz}, For: 300 * time.Millisecond}); err != nil {
		t.Fatalf("the caller does not hear the agent: %v", err)
	}
	if err := cc.StartVoice(callerVoiceHz); err != nil {
		t.Fatal(err)
	}
	waitHears(t, agent, "the agent (the caller's voice over srtp)", callerVoiceHz)
	cc.StopVoice()
	if err := cc.Hangup(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Fatalf("the agent leg was not hung up: %v", err)
	}
	e.waitIdle()
}

// baresip calls over TLS with mandatory SDES-SRTP: matterline answers RTP/SAVP on
// the TLS call and baresip hears the greeting, which decrypts only with the key
// matterline put in its answer.
func TestBaresipCallsOverTLSWithSRTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := interop.WriteToneWAV(filepath.Join(dir, media.PromptGreeting+".wav"), greetingHz, 0.3, 3); err != nil {
		t.Fatal(err)
	}
	prompts, err := media.LoadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTLSSetup(t)
	leaf := ts.ca.Issue(t, "caller", "127.0.0.1")
	bundle := filepath.Join(ts.dir, "caller.pem")
	if err := os.WriteFile(bundle, append(append([]byte(nil), leaf.CertPEM...), leaf.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := ts.config(defaultTestConfig())
	cfg.SRTP = media.SRTPOffer
	e := newEnv(t, cfg, WithPrompts(prompts))
	caller := interop.StartBaresip(t, interop.BaresipOptions{User: "caller", ToneHz: callerHz,
		Transport: interop.TransportTLS, TLSCertificate: bundle, TLSCAFile: ts.caFile, MediaEnc: "srtp-mand"})
	if err := caller.Dial("sip:" + testService + "@" + e.tlsAddr() + ";transport=tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatalf("baresip over tls with srtp: %v\n%s", err, caller.Output())
	}
	got := make(chan [2]string, 1)
	cl := e.srv.reg.call(e.onlyCall().ID)
	cl.post(callFunc(func() {
		srtp := "no"
		if cl.in != nil && cl.in.oa.negotiated().SRTP != (media.SRTPKeys{}) {
			srtp = "yes"
		}
		got <- [2]string{cl.transport, srtp}
	}))
	select {
	case g := <-got:
		if g[0] != "TLS" || g[1] != "yes" {
			t.Errorf("the caller's leg: transport %s, srtp %s; want TLS with SDES-SRTP", g[0], g[1])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not run the check")
	}
	waitHears(t, caller, "baresip (greeting over srtp on tls)", greetingHz)
	if err := caller.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}
