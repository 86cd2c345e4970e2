package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/events"
)

// frame is one parsed server-sent event.
type frame struct {
	id, event, data string
	comment         string
}

// readFrames parses an SSE stream (WHATWG field lines, blank line ends a frame)
// and sends the frames on a channel until the body ends.
func readFrames(body interface{ Read([]byte) (int, error) }) <-chan frame {
	out := make(chan frame, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		var f frame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				out <- f
				f = frame{}
			case strings.HasPrefix(line, ":"):
				f.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					f.id = v
				case "event":
					f.event = v
				case "data":
					f.data = v
				}
			}
		}
	}()
	return out
}

func openStream(t *testing.T, e *env, url string) (*http.Response, <-chan frame, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	frames := readFrames(resp.Body)
	// The first frame (retry + comment) arrives at once, after Subscribe.
	select {
	case f := <-frames:
		if f.comment != "matterline events" {
			t.Fatalf("first frame = %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no opening frame")
	}
	return resp, frames, func() { cancel(); resp.Body.Close() }
}

func nextEvent(t *testing.T, frames <-chan frame) frame {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("stream ended")
			}
			if f.event == "" && f.comment != "" {
				continue // heartbeat
			}
			return f
		case <-deadline:
			t.Fatal("no event")
		}
	}
}

func TestSSEDeliversCallEventsInOrder(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	_, frames, stop := openStream(t, e, ts.URL+"/v1/events")
	defer stop()

	call := []events.Event{
		{Type: events.TypeCallStarted, CallID: "c1", Data: map[string]any{"caller": "+12175552171"}},
		{Type: events.TypeLookupDone, CallID: "c1", Data: map[string]any{"status": "found", "contact_id": 1001}},
		{Type: events.TypeIntent, CallID: "c1", Data: map[string]any{"intent": "responsible", "source": "dtmf"}},
		{Type: events.TypeDecision, CallID: "c1", Data: map[string]any{"action": "transfer", "rule": "felix"}},
		{Type: events.TypeTransferResult, CallID: "c1", Data: map[string]any{"outcome": "success"}},
		{Type: events.TypeCallEnded, CallID: "c1", Data: map[string]any{"outcome": "transferred"}},
	}
	for _, ev := range call {
		e.bus.Publish(ev)
	}
	for i, want := range call {
		f := nextEvent(t, frames)
		if f.id != strconv.Itoa(i+1) || f.event != want.Type.String() {
			t.Fatalf("frame %d = %+v, want id %d event %s", i, f, i+1, want.Type)
		}
		var got events.Event
		if err := json.Unmarshal([]byte(f.data), &got); err != nil {
			t.Fatalf("data %q: %v", f.data, err)
		}
		if got.Seq != uint64(i+1) || got.Type != want.Type || got.CallID != "c1" || got.Time.IsZero() {
			t.Fatalf("event %d = %+v", i, got)
		}
		for k, v := range want.Data {
			if b, _ := json.Marshal(v); string(b) != string(mustJSON(got.Data[k])) {
				t.Errorf("event %d data[%s] = %v, want %v", i, k, got.Data[k], v)
			}
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestSSEFilterHeartbeatAndEnd(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	_, frames, stop := openStream(t, e, ts.URL+"/v1/events?call_id=c2")

	e.bus.Publish(events.Event{Type: events.TypeCallStarted, CallID: "c1"})
	e.bus.Publish(events.Event{Type: events.TypeCallStarted, CallID: "c2"})
	if f := nextEvent(t, frames); f.id != "2" || !strings.Contains(f.data, `"call_id":"c2"`) {
		t.Fatalf("filtered frame = %+v", f)
	}
	// Heartbeats every 50 ms in this test.
	select {
	case f := <-frames:
		if f.comment != "heartbeat" {
			t.Fatalf("frame = %+v, want heartbeat", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	// The client goes away: the handler unsubscribes.
	stop()
	waitFor(t, func() bool { return e.bus.Subscribers() == 0 })
	waitFor(t, func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "httpapi.(*Server).events")
	})
}

func TestSSEServerCloseEndsStream(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	_, frames, stop := openStream(t, e, ts.URL+"/v1/events")
	defer stop()
	e.srv.Close()
	e.srv.Close() // idempotent
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-frames:
			if !ok {
				waitFor(t, func() bool { return e.bus.Subscribers() == 0 })
				return
			}
		case <-deadline:
			t.Fatal("stream still open after Close")
		}
	}
}

// TestSSELagged: a bus that drops the stream's subscription ends the stream
// with a "lagged" event.
func TestSSELagged(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	resp, frames, stop := openStream(t, e, ts.URL+"/v1/events")
	defer stop()
	_ = resp
	// Publish far more than the stream buffer in one burst, faster than the
	// handler can write: the bus drops it.
	for i := 0; i < 100*sseBuffer && e.bus.Dropped() == 0; i++ {
		e.bus.Publish(events.Event{Type: events.TypeIntent, CallID: "c1", Data: map[string]any{"pad": strings.Repeat("x", 512)}})
	}
	if e.bus.Dropped() == 0 {
		t.Skip("the handler kept up with the burst")
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("stream ended without a lagged event")
			}
			if f.event == "lagged" {
				return
			}
		case <-deadline:
			t.Fatal("no lagged event")
		}
	}
}

func TestSSEUnauthorized(t *testing.T) {
	e := newEnv(t, testToken)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || e.bus.Subscribers() != 0 {
		t.Fatalf("%d, subscribers %d", resp.StatusCode, e.bus.Subscribers())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}
