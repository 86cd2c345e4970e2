// Package refagent is a scripted reference agent in two variants, for tests and
// `matterline demo --agent` / `--agent-sip`. The SIP-leg variant (StartSIP,
// sip.go) answers matterline's INVITE (agent.uri) and transfers with REFER.
// The media-stream variant (Start) is a WebSocket server speaking the Twilio
// Media Streams message set. It is not a voice AI: per stream it greets the
// caller, reads the lookup context of the start message back (espeak-ng speech
// when a TTS is given and works, else a tone per sentence), waits until the
// audio has played (a mark), then asks matterline's HTTP API to transfer the call
// to the responsible staff member (POST /v1/calls/{callSid}/transfer) and
// waits for the stop message.
package refagent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/matterline/matterline/media"
)

// Speaker renders text to audio (*media.TTS).
type Speaker interface {
	Render(ctx context.Context, text string) (*media.Prompt, error)
}

// Config configures an Agent.
type Config struct {
	// APIBase is matterline's HTTP API, e.g. http://127.0.0.1:8080.
	APIBase string
	// Token is the bearer token for the API (http.agent_token).
	Token string
	// TTS speaks the script; nil or failing: a tone per sentence.
	TTS Speaker
	// Target is the transfer body's target; default "responsible".
	Target     string
	HTTPClient *http.Client
	// OnEvent is told each step (for the demo's printout); may be nil.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Event is one step of the script.
type Event struct {
	Time   time.Time
	CallID string
	Text   string
}

// Agent is the reference agent's WebSocket server.
type Agent struct {
	cfg  Config
	mu   sync.Mutex // guards cfg.APIBase and cfg.Token (SetAPI)
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup
	done chan struct{}
	once sync.Once
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves streams on /stream.
func Start(addr string, cfg Config) (*Agent, error) {
	if cfg.Target == "" {
		cfg.Target = "responsible"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("refagent: listen: %w", err)
	}
	a := &Agent{cfg: cfg, ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", a.serve)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = a.srv.Serve(ln)
	}()
	return a, nil
}

// SetAPI sets matterline's API base URL and token when they are known only
// after the agent started (the demo starts the agent before the server).
func (a *Agent) SetAPI(base, token string) {
	a.mu.Lock()
	a.cfg.APIBase, a.cfg.Token = base, token
	a.mu.Unlock()
}

// URL is the agent's stream URL (ws://HOST:PORT/stream).
func (a *Agent) URL() string { return "ws://" + a.ln.Addr().String() + "/stream" }

// Close stops the server and every stream. Idempotent.
func (a *Agent) Close() error {
	a.once.Do(func() {
		close(a.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(ctx)
		_ = a.srv.Close()
	})
	a.wg.Wait()
	return nil
}

func (a *Agent) event(callID, format string, args ...any) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(Event{Time: time.Now(), CallID: callID, Text: fmt.Sprintf(format, args...)})
	}
}

// message is what the agent reads from matterline.
type message struct {
	Event     string `json:"event"`
	StreamSid string `json:"streamSid"`
	Start     *struct {
		CallSid          string            `json:"callSid"`
		CustomParameters map[string]string `json:"customParameters"`
	} `json:"start"`
	Mark *struct {
		Name string `json:"name"`
	} `json:"mark"`
}

// serve runs the script on one stream.
func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	go func() { // the server closing ends the stream
		select {
		case <-a.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	// connected, then start.
	var start message
	for start.Start == nil {
		if start, err = read(ctx, c); err != nil {
			return
		}
	}
	callID, p := start.Start.CallSid, start.Start.CustomParameters
	a.event(callID, "stream started for call %s: lookup %s, contact %q, matter %q, staff %q, open %s",
		callID, p["lookup"], p["contact_name"], p["matter"], p["staff"], p["open"])

	// Everything else the stream sends is read by one goroutine: the caller's
	// media is ignored (a scripted agent does not listen), marks and stop are
	// reported.
	marks := make(chan string, 4)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			m, err := read(ctx, c)
			if err != nil {
				return
			}
			switch m.Event {
			case "mark":
				if m.Mark != nil {
					marks <- m.Mark.Name
				}
			case "stop":
				a.event(callID, "stop received: the stream ended")
				return
			}
		}
	}()

	for _, line := range script(p) {
		audio, how := a.speak(ctx, line)
		a.event(callID, "says (%s): %q", how, line)
		if err := send(ctx, c, start.StreamSid, audio); err != nil {
			return
		}
	}
	if err := writeJSON(ctx, c, map[string]any{"event": "mark", "streamSid": start.StreamSid,
		"mark": map[string]string{"name": "script-done"}}); err != nil {
		return
	}
	select {
	case name := <-marks:
		a.event(callID, "mark %q echoed: the caller heard the script", name)
	case <-stopped:
		return
	case <-ctx.Done():
		return
	}
	if p["staff"] == "" {
		a.event(callID, "no responsible staff known: leaves the call (the caller returns to the menu)")
		_ = c.Close(websocket.StatusNormalClosure, "done")
		return
	}
	status, body := a.transfer(ctx, callID)
	a.event(callID, "POST /v1/calls/%s/transfer {\"target\":%q}: %d %s", callID, a.cfg.Target, status, strings.TrimSpace(body))
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	_ = c.Close(websocket.StatusNormalClosure, "done")
}

// script is what the agent says: a greeting and the context read back.
func script(p map[string]string) []string {
	lines := []string{"Hello, this is the matterline reference agent."}
	if n := p["contact_name"]; n != "" {
		lines = append(lines, "You are "+n+".")
	} else {
		lines = append(lines, "I could not find you in our records.")
	}
	if m := p["matter"]; m != "" {
		lines = append(lines, "You are calling about matter "+m+".")
	}
	if s := p["staff"]; s != "" {
		lines = append(lines, "I am transferring you to "+s+".")
	}
	return lines
}

// speak renders a line: TTS when it works, else a 600 ms tone (one per line, a
// little higher each time, so a listener can count them).
func (a *Agent) speak(ctx context.Context, line string) (ulaw []byte, how string) {
	if a.cfg.TTS != nil {
		p, err := a.cfg.TTS.Render(ctx, line)
		if err == nil && len(p.Samples) > 0 {
			b := make([]byte, len(p.Samples))
			media.Encode(media.PCMU, b, p.Samples)
			return b, "speech"
		}
		if !errors.Is(err, media.ErrNoTTS) {
			a.cfg.Logger.Warn("refagent: tts failed", "error", err)
		}
	}
	return Tone(ToneHz, 600*time.Millisecond), "tone"
}

// ToneHz is the tone the agent plays when it cannot speak.
const ToneHz = 660

// Tone is d of a sine at hz as 8 kHz μ-law, about -12 dBFS.
func Tone(hz float64, d time.Duration) []byte {
	n := int(d.Seconds() * 8000)
	b := make([]byte, n)
	for i := range b {
		b[i] = media.EncodeUlaw(int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/8000)))
	}
	return b
}

// transfer asks matterline's API to transfer the call.
func (a *Agent) transfer(ctx context.Context, callID string) (int, string) {
	a.mu.Lock()
	base, token := a.cfg.APIBase, a.cfg.Token
	a.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"target": a.cfg.Target})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(base, "/")+"/v1/calls/"+callID+"/transfer", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b)
}

func read(ctx context.Context, c *websocket.Conn) (message, error) {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return message{}, err
		}
		var m message
		if json.Unmarshal(b, &m) == nil {
			return m, nil
		}
	}
}

// send sends audio as media messages of 20 ms, as a Twilio agent usually does.
func send(ctx context.Context, c *websocket.Conn, streamSid string, ulaw []byte) error {
	for len(ulaw) > 0 {
		n := min(160, len(ulaw))
		if err := writeJSON(ctx, c, map[string]any{"event": "media", "streamSid": streamSid,
			"media": map[string]string{"payload": base64.StdEncoding.EncodeToString(ulaw[:n])}}); err != nil {
			return err
		}
		ulaw = ulaw[n:]
	}
	return nil
}

func writeJSON(ctx context.Context, c *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}
