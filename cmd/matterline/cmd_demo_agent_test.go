package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoAgent runs `matterline demo --agent` end to end: the caller's phone,
// matterline, the media stream, the reference agent, its transfer through the
// HTTP API, and the attorney's phone bridged to the caller.
func TestDemoAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("places a full call through the reference agent (about 20 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"demo", "--agent"}, stdio{&out, &errb})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	steps := []string{
		"reference agent listening on ws://127.0.0.1:",
		"caller     call answered: 200 OK",
		"lookup: found Ada Quist",
		`stream started for call `,
		`lookup found, contact "Ada Quist", matter "00101-Quist", staff "Felix Dubinsky", open true`,
		`says (`, `"You are Ada Quist."`,
		`mark "script-done" echoed`,
		`/transfer {"target":"responsible"}: 202`,
		"bridged: caller and attorney hear each other",
		"call record: outcome bridged, rule felix (warm) to +12175550101",
		"; the agent's part: ",
		"summary    demo agent call OK",
	}
	text := out.String()
	for _, s := range steps {
		if !strings.Contains(text, s) {
			t.Errorf("step %q missing", s)
		}
	}
	for _, s := range []string{"caller     hears the agent", "stop received: the stream ended", "attorney   phone rings"} {
		if !strings.Contains(text, s) {
			t.Errorf("step %q missing", s)
		}
	}
}

// TestDemoAgentSIP runs `matterline demo --agent-sip` end to end: the caller's
// phone, matterline, the INVITE to the reference SIP agent with the lookup in
// X-Matterline-* headers, its REFER to staff-NAME (202, NOTIFY 200, BYE), and
// the attorney's phone bridged to the caller.
func TestDemoAgentSIP(t *testing.T) {
	if testing.Short() {
		t.Skip("places a full call through the reference SIP agent (about 20 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"demo", "--agent-sip"}, stdio{&out, &errb})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	steps := []string{
		"reference SIP agent listening on sip:agent@127.0.0.1:",
		"caller     call answered: 200 OK",
		"lookup: found Ada Quist",
		"the call goes to the agent's SIP leg",
		`lookup found, contact "Ada Quist", matter "00101-Quist", staff "Felix Dubinsky", open true`,
		`says (`, `"You are Ada Quist."`, `"I am transferring you to Felix Dubinsky."`,
		`REFER Refer-To <sip:staff-Felix%20Dubinsky@127.0.0.1:`, `>: 202 Accepted`,
		"NOTIFY received (event refer",
		": SIP/2.0 200",
		"BYE received: matterline took the caller from the agent",
		"caller     hears the agent",
		"attorney   phone rings",
		"bridged: caller and attorney hear each other",
		"call record: outcome bridged, rule felix (warm) to +12175550101",
		"; the agent's part: ",
		"ms, transfer staff:",
		"summary    demo agent call OK",
		"transferred the call to Felix Dubinsky with REFER",
	}
	text := out.String()
	for _, s := range steps {
		if !strings.Contains(text, s) {
			t.Errorf("step %q missing", s)
		}
	}
}
