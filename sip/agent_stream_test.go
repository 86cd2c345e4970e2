package sip

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/routing"
)

// agentLevel is the constant sample the fake agent plays: its payload byte tells
// the agent's audio from the prompts.
const agentLevel = 27000

// fakeStreamer opens fakeStreams that play agentLevel to the caller until
// stopped or killed.
type fakeStreamer struct {
	fail    error
	mu      sync.Mutex
	reqs    []AgentStreamRequest
	streams chan *fakeStream
}

func newFakeStreamer() *fakeStreamer { return &fakeStreamer{streams: make(chan *fakeStream, 4)} }

func (f *fakeStreamer) OpenStream(ctx context.Context, req AgentStreamRequest) (AgentStream, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	s := &fakeStream{done: make(chan struct{}), played: make(chan struct{}), digits: make(chan rune, 8)}
	ctx, s.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(s.played)
		_ = req.Media.PlayStream(ctx, constSource(agentLevel))
	}()
	f.streams <- s
	return s, nil
}

func (f *fakeStreamer) next(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case s := <-f.streams:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no stream opened")
		return nil
	}
}

type constSource int16

func (c constSource) NextFrame(dst []int16) bool {
	for i := range dst {
		dst[i] = int16(c)
	}
	return true
}

type fakeStream struct {
	cancel  context.CancelFunc
	done    chan struct{}
	played  chan struct{}
	once    sync.Once
	digits  chan rune
	stopped bool
	reason  string
}

func (s *fakeStream) DTMF(k rune) { s.digits <- k }
func (s *fakeStream) Stop()       { s.end("stopped", true) }
func (s *fakeStream) kill()       { s.end("agent_closed", false) }
func (s *fakeStream) end(reason string, stopped bool) {
	s.once.Do(func() {
		s.reason, s.stopped = reason, stopped
		s.cancel()
		<-s.played
		close(s.done)
	})
}
func (s *fakeStream) Wait()                 { <-s.done }
func (s *fakeStream) Done() <-chan struct{} { return s.done }
func (s *fakeStream) Reason() string        { return s.reason }

func agentHeard(pkts []phone.RTPPacket) int {
	n := 0
	for _, p := range pkts {
		if len(p.Payload) > 0 && p.Payload[0] == media.EncodeUlaw(agentLevel) {
			n++
		}
	}
	return n
}

func foundLookup() *fakeLookup {
	return &fakeLookup{result: lookup.Result{Status: lookup.StatusFound,
		Contact: &lookup.Contact{ID: 1001, Name: "Ada Quist"}, Matter: &lookup.Matter{ID: 2001, DisplayNumber: "00101-Quist"},
		Staff: &lookup.Staff{ID: 501, Name: "Felix Dubinsky"}}}
}

// agent.mode first: the call goes to the stream after the lookup with the lookup
// as parameters, digits go to the agent, and when the stream dies the caller
// hears the greeting again.
func TestAgentStreamFirstFallsBackToMenu(t *testing.T) {
	fs := newFakeStreamer()
	r := newFakeRouter(transferDecision(&routing.Rule{Name: "felix", Destination: "+12175550101"}))
	e := newEnv(t, defaultTestConfig(), WithRouter(r), WithLookup(foundLookup()), WithAgentStream(AgentModeFirst, fs))
	c := e.answered(phone.InviteOptions{From: "+12175552171"})
	s := fs.next(t)
	eventually(t, 5*time.Second, "the agent's audio", func() bool { return agentHeard(c.RTP.Packets()) >= 10 })
	snap := e.onlyCall()
	if snap.State != StateAgent {
		t.Errorf("state %s, want agent", snap.State)
	}
	if seq := promptSequence(c.RTP.Packets()); len(seq) != 0 {
		t.Errorf("prompts before the agent: %v", seq)
	}
	fs.mu.Lock()
	got := fs.reqs[0].Params
	fs.mu.Unlock()
	want := []AgentParam{{"call_id", snap.ID}, {"lookup", "found"}, {"contact_id", "1001"}, {"contact_name", "Ada Quist"},
		{"matter_id", "2001"}, {"matter", "00101-Quist"}, {"staff_id", "501"}, {"staff", "Felix Dubinsky"}, {"open", "true"}}
	if !slices.Equal(got, want) {
		t.Errorf("params\n got %v\nwant %v", got, want)
	}
	if err := c.SendDTMF('7'); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-s.digits:
		if k != '7' {
			t.Errorf("digit %q", k)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the digit did not reach the agent")
	}
	s.kill()
	eventually(t, 5*time.Second, "the greeting after the stream died", func() bool {
		return slices.Contains(promptSequence(c.RTP.Packets()), media.PromptGreeting)
	})
	if st := e.onlyCall().State; st != StateInMenu {
		t.Errorf("state %s after the stream, want in_menu", st)
	}
}

// A transfer on the API while streaming stops the stream and runs the decision;
// an unserved one plays nobody_available and returns to the menu.
func TestAgentStreamAPITransfer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		xfer   error
		wantIn bool // back in the menu
	}{
		{"transfer served", nil, false},
		{"nobody reachable", errors.New("busy"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStreamer()
			r := newFakeRouter(transferDecision(&routing.Rule{Name: "felix", Destination: "+12175550101"}))
			x := &fakeTransferer{err: tc.xfer}
			e := newEnv(t, defaultTestConfig(), WithRouter(r), WithLookup(foundLookup()),
				WithAgentStream(AgentModeFirst, fs), WithTransferer(x))
			c := e.answered(phone.InviteOptions{From: "+12175552171"})
			s := fs.next(t)
			eventually(t, 5*time.Second, "the agent's audio", func() bool { return agentHeard(c.RTP.Packets()) >= 5 })
			id := e.onlyCall().ID
			dec, err := e.srv.Transfer(ctxT(t, 5*time.Second), id, routing.Intent{Kind: routing.IntentResponsible})
			if err != nil || dec.Action != routing.ActionTransfer {
				t.Fatalf("transfer: %v %v", dec, err)
			}
			select {
			case <-s.Done():
			case <-time.After(3 * time.Second):
				t.Fatal("stream not stopped")
			}
			if !s.stopped {
				t.Errorf("stream ended by %s, want stopped", s.reason)
			}
			if !tc.wantIn {
				return
			}
			eventually(t, 5*time.Second, "nobody_available then greeting", func() bool {
				seq := promptSequence(c.RTP.Packets())
				i := slices.Index(seq, media.PromptNobody)
				return i >= 0 && i+1 < len(seq) && seq[i+1] == media.PromptGreeting
			})
		})
	}
}

// A stream that cannot be opened leaves the call in the menu.
func TestAgentStreamOpenFailsToMenu(t *testing.T) {
	fs := newFakeStreamer()
	fs.fail = errors.New("connection refused")
	e := newEnv(t, defaultTestConfig(), WithAgentStream(AgentModeFirst, fs))
	c := e.answered(phone.InviteOptions{})
	eventually(t, 5*time.Second, "the greeting", func() bool {
		return slices.Contains(promptSequence(c.RTP.Packets()), media.PromptGreeting)
	})
}

// fakeTransferer answers every transfer with err.
type fakeTransferer struct{ err error }

func (f *fakeTransferer) Transfer(ctx context.Context, req TransferRequest) error { return f.err }

func TestParseAgentMode(t *testing.T) {
	for in, want := range map[string]AgentMode{"": AgentModeOff, "off": AgentModeOff, "first": AgentModeFirst,
		"Fallback": AgentModeFallback, "sometimes": AgentModeDefault} {
		got, err := ParseAgentMode(in)
		if got != want || (err != nil) != (want == AgentModeDefault) {
			t.Errorf("ParseAgentMode(%q) = %v, %v", in, got, err)
		}
	}
}

// agent.mode fallback: the agent takes the call once the menu attempts ran out;
// back from it, the menu starts over; a second exhaustion says goodbye.
func TestAgentStreamFallbackAfterMenu(t *testing.T) {
	fs := newFakeStreamer()
	cfg := defaultTestConfig()
	cfg.MenuAttempts, cfg.MenuTimeout = 1, 300*time.Millisecond
	e := newEnv(t, cfg, WithAgentStream(AgentModeFallback, fs))
	c := e.answered(phone.InviteOptions{})
	s := fs.next(t)
	if seq := promptSequence(c.RTP.Packets()); len(seq) == 0 || seq[0] != media.PromptGreeting {
		t.Errorf("before the agent: %v, want the greeting", seq)
	}
	eventually(t, 5*time.Second, "the agent's audio", func() bool { return agentHeard(c.RTP.Packets()) >= 5 })
	s.kill()
	eventually(t, 10*time.Second, "greeting again, then goodbye", func() bool {
		var after []phone.RTPPacket // what the caller heard after the agent
		for i, p := range c.RTP.Packets() {
			if len(p.Payload) > 0 && p.Payload[0] == media.EncodeUlaw(agentLevel) {
				after = c.RTP.Packets()[i+1:]
			}
		}
		seq := promptSequence(after)
		return len(seq) == 2 && seq[0] == media.PromptGreeting && seq[1] == media.PromptGoodbye
	})
	select {
	case <-fs.streams:
		t.Error("the agent was tried twice")
	default:
	}
}
