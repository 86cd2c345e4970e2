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
