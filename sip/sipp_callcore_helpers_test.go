package sip

// Harness for the call core sipp scenarios (sipp_callcore_test.go): start
// sipp in the background, read back every SIP message it sent and received from
// its -message_file, parse SDP bodies, and a small RTP endpoint that stands in
// for the media side of a sipp UAC (the scenario advertises it with -key).

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sippOpts describes one sipp run.
type sippOpts struct {
	scenario string            // file name under testdata/
	remote   string            // host:port of matterline for a UAC; "" for a UAS
	port     int               // local SIP port; 0 picks a free one
	keys     map[string]string // -key NAME VALUE, used as [NAME] in the scenario
	extra    []string          // more arguments (e.g. -rtp_echo)
	timeout  time.Duration     // sipp -timeout; default 20s
	files    map[string][]byte // written into sipp's working directory first
}

// sippProc is a running sipp.
type sippProc struct {
	t       testing.TB
	cmd     *exec.Cmd
	dir     string
	msgFile string
	port    int
	out     *syncBuffer
	done    chan struct{}
	err     error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSipp starts sipp and stops it (process group kill via context) when the
// test ends.
func startSipp(t *testing.T, o sippOpts) *sippProc {
	t.Helper()
	sipp := sippPath(t)
	scenario, err := filepath.Abs(filepath.Join("testdata", o.scenario))
	if err != nil {
		t.Fatal(err)
	}
	if o.port == 0 {
		o.port = freeUDPPort(t)
	}
	if o.timeout == 0 {
		o.timeout = 20 * time.Second
	}
	dir := t.TempDir()
	p := &sippProc{t: t, dir: dir, msgFile: filepath.Join(dir, "messages.log"), port: o.port,
		out: &syncBuffer{}, done: make(chan struct{})}
	for name, b := range o.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-sf", scenario, "-m", "1",
		"-i", "127.0.0.1", "-p", strconv.Itoa(o.port), "-mp", strconv.Itoa(freeRTPPort(t)),
		"-timeout", fmt.Sprintf("%ds", int(o.timeout.Seconds())), "-timeout_error", "-nostdin",
		"-trace_msg", "-message_file", p.msgFile,
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log")}
	if o.remote != "" {
		args = append(args, "-s", "100")
	}
	for k, v := range o.keys {
		args = append(args, "-key", k, v)
	}
	args = append(args, o.extra...)
	if o.remote != "" {
		args = append(args, o.remote)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout+15*time.Second)
	p.cmd = exec.CommandContext(ctx, sipp, args...)
	p.cmd.Dir = dir
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.msgFile)
			t.Logf("sipp %s: exit %v\nmessages:\n%s%s", o.scenario, p.err, dumpMsgs(parseSippLog(string(b))), p.diag())
		}
	})
	if o.remote == "" {
		time.Sleep(300 * time.Millisecond) // a UAS binds its port
	}
	return p
}

// wait waits for sipp to exit (at most d) and returns its exit error.
func (p *sippProc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("sipp still running after %s", d)
	}
}

// diag is sipp's output tail and error log, for failure messages.
func (p *sippProc) diag() string {
	errLog, _ := os.ReadFile(filepath.Join(p.dir, "errors.log"))
	return fmt.Sprintf("sipp output:\n%s\nerrors.log:\n%s", tail([]byte(p.out.String()), 2500), errLog)
}

// messages parses the message log (call after wait).
func (p *sippProc) messages() []sippMsg {
	p.t.Helper()
	b, err := os.ReadFile(p.msgFile)
	if err != nil {
		p.t.Fatalf("sipp message log: %v\n%s", err, p.diag())
	}
	if os.Getenv("SIPP_DUMP") != "" {
		p.t.Logf("sipp message log:\n%s", b)
	}
	return parseSippLog(string(b))
}

// sippMsg is one SIP message sipp sent or received.
type sippMsg struct {
	At      time.Time
	Sent    bool // sent by sipp; false = received (sent by matterline)
	Raw     string
	Method  string // request method; "" for a response
	Status  int    // response status; 0 for a request
	headers map[string][]string
	Body    string
}

func (m sippMsg) Header(name string) string {
	if v := m.headers[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// CSeq returns the CSeq number and method.
func (m sippMsg) CSeq() (uint32, string) {
	f := strings.Fields(m.Header("CSeq"))
	if len(f) != 2 {
		return 0, ""
	}
	n, _ := strconv.ParseUint(f[0], 10, 32)
	return uint32(n), f[1]
}

// ToTag is the tag parameter of To.
func (m sippMsg) ToTag() string { return headerTag(m.Header("To")) }

func headerTag(v string) string {
	for _, p := range strings.Split(v, ";")[1:] {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(strings.ToLower(p), "tag=") {
			return p[4:]
		}
	}
	return ""
}

func (m sippMsg) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	first, _, _ := strings.Cut(m.Raw, "\n")
	return fmt.Sprintf("%s %s %s", m.At.Format("15:04:05.000"), dir, strings.TrimSpace(first))
}

var compactHeaders = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
	"c": "content-type", "l": "content-length", "k": "supported", "r": "refer-to", "b": "referred-by", "o": "event"}

// parseSippLog splits a sipp -message_file into messages.
func parseSippLog(s string) []sippMsg {
	const sep = "-----------------------------------------------"
	var out []sippMsg
	for _, chunk := range strings.Split(s, sep)[1:] {
		stamp, rest, _ := strings.Cut(chunk, "\n")
		kind, rest, _ := strings.Cut(rest, "\n")
		if strings.HasPrefix(kind, "Unexpected") || (!strings.Contains(kind, "message sent") && !strings.Contains(kind, "message received")) {
			continue
		}
		at, _ := time.ParseInLocation("2006-01-02 15:04:05.000000", strings.TrimSpace(stamp), time.Local)
		raw := strings.TrimLeft(strings.ReplaceAll(rest, "\r\n", "\n"), "\n")
		m := sippMsg{At: at, Sent: strings.Contains(kind, "sent"), Raw: raw, headers: map[string][]string{}}
		head, body, _ := strings.Cut(raw, "\n\n")
		m.Body = strings.TrimRight(body, "\n") + "\n"
		lines := strings.Split(head, "\n")
		if len(lines) == 0 {
			continue
		}
		first := strings.TrimSpace(lines[0])
		if strings.HasPrefix(first, "SIP/2.0 ") {
			f := strings.Fields(first)
			if len(f) >= 2 {
				m.Status, _ = strconv.Atoi(f[1])
			}
		} else {
			m.Method = strings.Fields(first + " x")[0]
		}
		for _, l := range lines[1:] {
			name, val, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			name = strings.ToLower(strings.TrimSpace(name))
			if full, ok := compactHeaders[name]; ok {
				name = full
			}
			m.headers[name] = append(m.headers[name], strings.TrimSpace(val))
		}
		if strings.TrimSpace(m.Header("Content-Length")) == "0" {
			m.Body = ""
		}
		out = append(out, m)
	}
	return out
}

// filter returns the messages for which keep is true.
func filterMsgs(msgs []sippMsg, keep func(sippMsg) bool) []sippMsg {
	var out []sippMsg
	for _, m := range msgs {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// responsesTo returns the received (sent=false) or sent responses with status
// (0 = any) to method with CSeq number seq (0 = any), first copy of each
// (status, seq, to-tag) only, so that retransmissions do not count twice.
func responsesTo(msgs []sippMsg, sent bool, method string, seq uint32, status int) []sippMsg {
	seen := map[string]bool{}
	return filterMsgs(msgs, func(m sippMsg) bool {
		n, meth := m.CSeq()
		if m.Sent != sent || m.Status == 0 || meth != method || (seq != 0 && n != seq) || (status != 0 && m.Status != status) {
			return false
		}
		k := fmt.Sprintf("%d/%d/%s", m.Status, n, m.ToTag())
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	})
}

// requests returns the requests of method sipp sent (sent) or received.
func requests(msgs []sippMsg, sent bool, method string) []sippMsg {
	return filterMsgs(msgs, func(m sippMsg) bool { return m.Sent == sent && m.Method == method })
}

// dumpMsgs lists the messages' first lines for a failure message.
func dumpMsgs(msgs []sippMsg) string {
	var b strings.Builder
	for i, m := range msgs {
		if i == 60 {
			fmt.Fprintf(&b, "... %d more\n", len(msgs)-i)
			break
		}
		b.WriteString(m.String())
		if n, meth := m.CSeq(); meth != "" {
			fmt.Fprintf(&b, "  [CSeq %d %s, To-tag %q]", n, meth, m.ToTag())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ---- SDP (parsed here, independent of the media package under rewrite) ----

type sdpMedia struct {
	Kind  string // audio, video
	Port  int
	Proto string
	Fmts  []string
	Attrs []string // "rtpmap:0 PCMU/8000", "sendrecv", ...
	Conn  string   // c= address of the media section
}

type sdpDesc struct {
	OriginUser string
	SessID     string
	Version    uint64
	Conn       string // session-level c= address
	Attrs      []string
	Media      []sdpMedia
}

func parseSDP(body string) (sdpDesc, error) {
	var d sdpDesc
	if strings.TrimSpace(body) == "" {
		return d, fmt.Errorf("no SDP body")
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	var cur *sdpMedia
	sawV := false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if len(l) < 2 || l[1] != '=' {
			continue
		}
		val := l[2:]
		switch l[0] {
		case 'v':
			sawV = true
		case 'o':
			f := strings.Fields(val)
			if len(f) != 6 {
				return d, fmt.Errorf("bad o= line %q", l)
			}
			d.OriginUser, d.SessID = f[0], f[1]
			v, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				return d, fmt.Errorf("bad o= version %q", l)
			}
			d.Version = v
		case 'c':
			f := strings.Fields(val)
			if len(f) != 3 {
				return d, fmt.Errorf("bad c= line %q", l)
			}
			if cur != nil {
				cur.Conn = f[2]
			} else {
				d.Conn = f[2]
			}
		case 'm':
			f := strings.Fields(val)
			if len(f) < 3 {
				return d, fmt.Errorf("bad m= line %q", l)
			}
			port, err := strconv.Atoi(strings.Split(f[1], "/")[0])
			if err != nil {
				return d, fmt.Errorf("bad m= port %q", l)
			}
			d.Media = append(d.Media, sdpMedia{Kind: f[0], Port: port, Proto: f[2], Fmts: f[3:]})
			cur = &d.Media[len(d.Media)-1]
		case 'a':
			if cur != nil {
				cur.Attrs = append(cur.Attrs, val)
			} else {
				d.Attrs = append(d.Attrs, val)
			}
		}
	}
	if !sawV {
		return d, fmt.Errorf("no v= line in %q", body)
	}
	return d, nil
}

// Direction is the media section's direction (session level as the default,
// sendrecv when neither says).
func (d sdpDesc) Direction(i int) string {
	for _, list := range [][]string{d.Media[i].Attrs, d.Attrs} {
		for _, a := range list {
			switch a {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				return a
			}
		}
	}
	return "sendrecv"
}

// ExplicitDirection is the direction attribute written in the media section or at
// session level ("" when none).
func (d sdpDesc) ExplicitDirection(i int) string {
	for _, list := range [][]string{d.Media[i].Attrs, d.Attrs} {
		for _, a := range list {
			switch a {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				return a
			}
		}
	}
	return ""
}

// Addr is the media section's connection address and port.
func (d sdpDesc) Addr(i int) string {
	c := d.Media[i].Conn
	if c == "" {
		c = d.Conn
	}
	return net.JoinHostPort(c, strconv.Itoa(d.Media[i].Port))
}

// Codecs maps each payload type on the m= line to its encoding name in upper
// case ("PCMU", "TELEPHONE-EVENT"); static types without rtpmap get their RFC
// 3551 names.
func (m sdpMedia) Codecs() map[string]string {
	out := map[string]string{}
	for _, f := range m.Fmts {
		switch f {
		case "0":
			out[f] = "PCMU"
		case "8":
			out[f] = "PCMA"
		case "9":
			out[f] = "G722"
		case "18":
			out[f] = "G729"
		default:
			out[f] = ""
		}
	}
	for _, a := range m.Attrs {
		if !strings.HasPrefix(a, "rtpmap:") {
			continue
		}
		pt, enc, ok := strings.Cut(strings.TrimPrefix(a, "rtpmap:"), " ")
		if _, onLine := out[pt]; !ok || !onLine {
			continue
		}
		name, _, _ := strings.Cut(enc, "/")
		out[pt] = strings.ToUpper(name)
	}
	return out
}

// HasCodec reports whether the m= line lists an encoding name.
func (m sdpMedia) HasCodec(name string) bool {
	for _, n := range m.Codecs() {
		if n == strings.ToUpper(name) {
			return true
		}
	}
	return false
}

// ---- RTP endpoint standing in for sipp's media ----

type rtpPkt struct {
	At      time.Time
	From    *net.UDPAddr
	PT      uint8
	Payload []byte
}

// rtpEndpoint is a UDP socket that records every RTP packet and, while sending is
// on, sends PCMU packets (fill byte) every 20 ms to the address matterline sends
// from (symmetric RTP, learned from the first packet) or to a set address.
type rtpEndpoint struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []rtpPkt
	dst  *net.UDPAddr
	stop chan struct{}
	wg   sync.WaitGroup
}

func newRTPEndpoint(t testing.TB) *rtpEndpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &rtpEndpoint{conn: conn, stop: make(chan struct{})}
	e.wg.Add(1)
	go e.read()
	t.Cleanup(e.close)
	return e
}

func (e *rtpEndpoint) port() int { return e.conn.LocalAddr().(*net.UDPAddr).Port }

func (e *rtpEndpoint) read() {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := e.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		cc := int(buf[0] & 0x0f)
		off := 12 + 4*cc
		if off > n {
			continue
		}
		p := rtpPkt{At: time.Now(), From: from, PT: buf[1] & 0x7f, Payload: append([]byte(nil), buf[off:n]...)}
		e.mu.Lock()
		e.pkts = append(e.pkts, p)
		if e.dst == nil {
			e.dst = from
		}
		e.mu.Unlock()
	}
}

// packets returns the packets received in [from, to) (zero times = unbounded).
func (e *rtpEndpoint) packets(from, to time.Time) []rtpPkt {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []rtpPkt
	for _, p := range e.pkts {
		if (!from.IsZero() && p.At.Before(from)) || (!to.IsZero() && !p.At.Before(to)) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// sendPCMU sends PCMU packets of fill every 20 ms until close, once the
// destination is known.
func (e *rtpEndpoint) sendPCMU(fill byte) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		var seq uint16
		var ts uint32
		pkt := make([]byte, 12+160)
		pkt[0] = 0x80
		binary.BigEndian.PutUint32(pkt[8:], 0x5eed1234)
		for i := 12; i < len(pkt); i++ {
			pkt[i] = fill
		}
		for {
			select {
			case <-e.stop:
				return
			case <-tk.C:
			}
			e.mu.Lock()
			dst := e.dst
			e.mu.Unlock()
			if dst == nil {
				continue
			}
			seq++
			ts += 160
			binary.BigEndian.PutUint16(pkt[2:], seq)
			binary.BigEndian.PutUint32(pkt[4:], ts)
			_, _ = e.conn.WriteToUDP(pkt, dst)
		}
	}()
}

func (e *rtpEndpoint) close() {
	select {
	case <-e.stop:
		return
	default:
	}
	close(e.stop)
	_ = e.conn.Close()
	e.wg.Wait()
}

// countPrompt counts packets whose payload is the given test prompt.
func countPrompt(pkts []rtpPkt, prompt string) int {
	n := 0
	for _, p := range pkts {
		if p.PT == 0 && promptOf(p.Payload) == prompt {
			n++
		}
	}
	return n
}

// ---- digest (RFC 2617 / RFC 8760 MD5) check of an Authorization header ----

func digestParams(v string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	out := map[string]string{}
	for _, part := range splitParams(rest) {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		out[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return scheme, out
}

// splitParams splits on commas outside quotes.
func splitParams(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// checkDigest verifies an MD5 digest response for method with password.
func checkDigest(header, method, password string) (map[string]string, error) {
	scheme, p := digestParams(header)
	if !strings.EqualFold(scheme, "Digest") {
		return p, fmt.Errorf("scheme %q, want Digest", scheme)
	}
	if a := p["algorithm"]; a != "" && !strings.EqualFold(a, "MD5") {
		return p, fmt.Errorf("algorithm %q, want MD5", a)
	}
	ha1 := md5hex(p["username"] + ":" + p["realm"] + ":" + password)
	ha2 := md5hex(method + ":" + p["uri"])
	var want string
	if p["qop"] != "" {
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	} else {
		want = md5hex(ha1 + ":" + p["nonce"] + ":" + ha2)
	}
	if p["response"] != want {
		return p, fmt.Errorf("digest response %q, want %q", p["response"], want)
	}
	return p, nil
}
