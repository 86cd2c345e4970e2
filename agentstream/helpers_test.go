package agentstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"

	"github.com/matterline/matterline/media"
)

// testAgent is a WebSocket server; every accepted connection is handed to the
// test on conns and stays open until the test's handler function returns.
type testAgent struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

// newTestAgent starts an agent; smallBuffers shrinks the accepted TCP
// connections' receive buffer (a slow agent fills it quickly).
func newTestAgent(t testing.TB, smallBuffers bool) *testAgent {
	a := &testAgent{conns: make(chan *websocket.Conn, 128), stop: make(chan struct{})}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		a.conns <- c
		<-a.stop
		_ = c.CloseNow()
	}))
	if smallBuffers {
		a.srv.Listener = smallListener{a.srv.Listener}
	}
	a.srv.Start()
	t.Cleanup(a.close)
	return a
}

func (a *testAgent) close() {
	a.once.Do(func() { close(a.stop) })
	a.srv.CloseClientConnections()
	a.srv.Close()
}

func (a *testAgent) url() string { return "ws" + a.srv.URL[len("http"):] }

func (a *testAgent) next(t testing.TB) *websocket.Conn {
	t.Helper()
	select {
	case c := <-a.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection from the stream")
		return nil
	}
}

type smallListener struct{ net.Listener }

func (l smallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(2048)
	}
	return c, err
}

// smallClient dials with a small send buffer.
func smallClient() *http.Client {
	d := &net.Dialer{Control: nil}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(2048)
		}
		return c, err
	}}}
}

// agentMsg is any message the stream sends, decoded loosely.
type agentMsg struct {
	Event          string `json:"event"`
	SequenceNumber string `json:"sequenceNumber"`
	StreamSid      string `json:"streamSid"`
	Protocol       string `json:"protocol"`
	Version        string `json:"version"`
	Start          *struct {
		StreamSid        string            `json:"streamSid"`
		AccountSid       string            `json:"accountSid"`
		CallSid          string            `json:"callSid"`
		Tracks           []string          `json:"tracks"`
		CustomParameters map[string]string `json:"customParameters"`
		MediaFormat      struct {
			Encoding   string `json:"encoding"`
			SampleRate int    `json:"sampleRate"`
			Channels   int    `json:"channels"`
		} `json:"mediaFormat"`
	} `json:"start"`
	Media *struct {
		Track     string `json:"track"`
		Chunk     string `json:"chunk"`
		Timestamp string `json:"timestamp"`
		Payload   string `json:"payload"`
	} `json:"media"`
	DTMF *struct {
		Track string `json:"track"`
		Digit string `json:"digit"`
	} `json:"dtmf"`
	Mark *struct {
		Name string `json:"name"`
	} `json:"mark"`
	Stop *struct {
		AccountSid string `json:"accountSid"`
		CallSid    string `json:"callSid"`
	} `json:"stop"`
	raw []byte
	at  time.Time
}

func readMsg(ctx context.Context, c *websocket.Conn) (agentMsg, error) {
	_, b, err := c.Read(ctx)
	if err != nil {
		return agentMsg{}, err
	}
	var m agentMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return agentMsg{}, err
	}
	m.raw, m.at = b, time.Now()
	return m, nil
}

func sendJSON(t testing.TB, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("agent write: %v", err)
	}
}

func sendAudio(t testing.TB, c *websocket.Conn, streamSid string, ulaw []byte) {
	t.Helper()
	sendJSON(t, c, map[string]any{"event": "media", "streamSid": streamSid,
		"media": map[string]string{"payload": base64.StdEncoding.EncodeToString(ulaw)}})
}

// tone is d of a sine at hz in μ-law.
func tone(hz float64, d time.Duration) []byte {
	n := int(d.Seconds() * 8000)
	b := make([]byte, n)
	for i := range b {
		b[i] = media.EncodeUlaw(int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/8000)))
	}
	return b
}

// testCall is the matterline side (a media.Session) and a raw RTP peer playing
// the caller: it sends PCMU every 20 ms and records what it receives.
type testCall struct {
	sess   *media.Session
	peer   *net.UDPConn
	recv   atomic.Int64 // packets received
	loud   atomic.Int64 // received packets carrying sound (not silence)
	mu     sync.Mutex
	loudAt []int64 // packet index of every loud packet
	times  []time.Time
	sent   atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

// newTestCall starts the session and the caller's receiver; send starts the
// caller's 20 ms stream of frames whose bytes are all fill(i).
func newTestCall(t testing.TB) *testCall {
	t.Helper()
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := media.NewSession(media.SessionConfig{Conn: a, Codec: media.PCMU,
		Remote: b.LocalAddr().(*net.UDPAddr).AddrPort()})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCall{sess: sess, peer: b, stop: make(chan struct{})}
	tc.wg.Add(1)
	go tc.receive()
	t.Cleanup(tc.close)
	return tc
}

func (tc *testCall) close() {
	select {
	case <-tc.stop:
		return
	default:
	}
	close(tc.stop)
	_ = tc.sess.Close()
	_ = tc.peer.Close()
	tc.wg.Wait()
}

func (tc *testCall) receive() {
	defer tc.wg.Done()
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, err := tc.peer.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		idx := tc.recv.Add(1)
		tc.mu.Lock()
		tc.times = append(tc.times, time.Now())
		if loud(p.Payload) {
			tc.loud.Add(1)
			tc.loudAt = append(tc.loudAt, idx)
		}
		tc.mu.Unlock()
	}
}

// loud reports whether a μ-law payload carries sound above about -40 dBFS.
func loud(b []byte) bool {
	var e float64
	for _, x := range b {
		v := float64(media.DecodeUlaw(x))
		e += v * v
	}
	return len(b) > 0 && math.Sqrt(e/float64(len(b))) > 300
}

// send streams frames from the caller every 20 ms until the call closes; frame i
// is filled with fill(i).
func (tc *testCall) send(fill func(i int) byte) {
	tc.wg.Add(1)
	go func() {
		defer tc.wg.Done()
		dst := tc.sess.LocalPort()
		to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(dst))
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1234}}
		payload := make([]byte, 160)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			for k := range payload {
				payload[k] = fill(i)
			}
			pkt.SequenceNumber = uint16(i)
			pkt.Timestamp = uint32(i * 160)
			pkt.Payload = payload
			b, _ := pkt.Marshal()
			if _, err := tc.peer.WriteToUDPAddrPort(b, to); err != nil {
				return
			}
			tc.sent.Add(1)
			select {
			case <-t.C:
			case <-tc.stop:
				return
			}
		}
	}()
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openStream(t testing.TB, a *testAgent, tc *testCall, mod func(*Config)) (*Stream, *websocket.Conn, agentMsg) {
	t.Helper()
	cfg := Config{URL: a.url()}
	if mod != nil {
		mod(&cfg)
	}
	d, err := NewDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Open(context.Background(), Request{CallID: "c0ffee", Media: tc.sess,
		Params: []Param{{"call_id", "c0ffee"}, {"lookup", "found"}, {"contact_name", "Ada Quist"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		a.close() // the test agent never answers the close handshake
		s.Wait()
	})
	c := a.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := readMsg(ctx, c)
	if err != nil || m.Event != "connected" {
		t.Fatalf("first message %+v, %v; want connected", m, err)
	}
	start, err := readMsg(ctx, c)
	if err != nil || start.Event != "start" {
		t.Fatalf("second message %s, %v; want start", start.raw, err)
	}
	return s, c, start
}
