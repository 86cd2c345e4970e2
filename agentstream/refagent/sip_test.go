package refagent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// The SIP agent reads the X-Matterline-* headers, speaks (a tone per sentence
// without TTS), REFERs to staff-NAME at the INVITE's source, reports the NOTIFY
// and stays until the BYE.
func TestSIPAgentScript(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var texts []string
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(texts, "\n")
	}
	agent, err := StartSIP(SIPConfig{OnEvent: func(ev Event) {
		mu.Lock()
		texts = append(texts, ev.CallID+": "+ev.Text)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	b2bua, err := phone.NewCaller(phone.CallerConfig{Name: "matterline", From: "+12175550123", AcceptRefer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b2bua.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := b2bua.Dial(ctx, agent.URI(), phone.DialOptions{Headers: []phone.Header{
		{Name: "X-Matterline-Call-Id", Value: "c-1"}, {Name: "X-Matterline-Lookup", Value: "found"},
		{Name: "X-Matterline-Contact-Name", Value: "Ada Quist"}, {Name: "X-Matterline-Matter", Value: "00101-Quist"},
		{Name: "X-Matterline-Staff", Value: "Felix Dubinsky"}, {Name: "X-Matterline-Open", Value: "true"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Listen(ctx, phone.Sound{Tones: []float64{ToneHz}, For: 400 * time.Millisecond}); err != nil {
		t.Fatalf("the agent's tone: %v", err)
	}
	want := []string{
		`c-1: INVITE from ` + b2bua.Addr().String() + ` answered for call c-1: lookup found, contact "Ada Quist", matter "00101-Quist", staff "Felix Dubinsky", open true`,
		`c-1: says (tone): "You are Ada Quist."`,
		`c-1: says (tone): "I am transferring you to Felix Dubinsky."`,
		`c-1: REFER Refer-To <sip:staff-Felix%20Dubinsky@` + b2bua.Addr().String() + `>: 202 Accepted`,
		`c-1: NOTIFY received (`,
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, w := range want {
		for !strings.Contains(got(), w) {
			if time.Now().After(deadline) {
				t.Fatalf("step %q missing; events:\n%s", w, got())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(got(), "BYE received") {
		if time.Now().After(deadline) {
			t.Fatalf("BYE not reported; events:\n%s", got())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
