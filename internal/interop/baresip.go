package interop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Defaults of BaresipOptions.
const (
	DefaultBaresipUser = "ua"
	DefaultToneHz      = 1000.0
	// toneAmplitude is the tone's amplitude as a share of full scale (-10 dBFS).
	toneAmplitude = 0.3
	// DefaultToneSeconds is the default length of the tone file; baresip
	// 1.0.0's aufile reads it whole when a call starts and plays it once.
	DefaultToneSeconds = 60
	// commandTimeout bounds the wait for baresip's answer to a command.
	commandTimeout = 5 * time.Second
)

// BaresipOptions configures StartBaresip. The zero value is a UDP user agent
// "ua" that plays a 1000 Hz tone, calls directly and answers manually.
type BaresipOptions struct {
	// User is the user part of the account's address. Default "ua".
	User string
	// ToneHz is the frequency of the tone it sends as its audio. Default 1000.
	ToneHz float64
	// ToneSeconds is the length of the tone: aufile plays it once per call,
	// so a call that must carry the tone longer needs more. Default
	// DefaultToneSeconds.
	ToneSeconds int
	// AutoAnswer answers incoming calls at once (answermode=auto).
	AutoAnswer bool
	// OutboundProxy sends every request through this proxy (the account's
	// outbound parameter): a SIP URI such as Kamailio.URI(), or host:port
	// (then ;lr is added).
	OutboundProxy string
	// AuthUser and AuthPassword answer digest challenges (auth_user,
	// auth_pass). AuthUser defaults to User when only a password is given.
	AuthUser, AuthPassword string
	// Transport is the transport of the account's address and outbound proxy.
	// baresip listens on UDP and TCP either way, and with TransportTLS on TLS
	// too, on the SIP port + 1. Default UDP.
	Transport Transport
	// TLSCertificate is a PEM file holding baresip's certificate and private
	// key (sip_certificate), served on its TLS listener. TLSCAFile is a PEM
	// file of CAs it trusts for TLS peers (sip_cafile). baresip 1.0.0 has no
	// sip_verify_server: whether it verifies a server is up to its libre.
	TLSCertificate, TLSCAFile string
	// StartTimeout bounds the wait until the control socket answers. Default
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// MediaEnc is the account's media encryption (baresip's srtp module, SDES
	// per RFC 4568): "srtp" (best effort: RTP/AVP with a=crypto), "srtp-mand"
	// (RTP/SAVP, calls without SRTP fail) or "srtp-mandf" (RTP/SAVPF). Empty:
	// plain RTP.
	MediaEnc string
}

func (o BaresipOptions) withDefaults() BaresipOptions {
	if o.User == "" {
		o.User = DefaultBaresipUser
	}
	if o.ToneHz <= 0 {
		o.ToneHz = DefaultToneHz
	}
	if o.ToneSeconds <= 0 {
		o.ToneSeconds = DefaultToneSeconds
	}
	if o.Transport == 0 {
		o.Transport = TransportUDP
	}
	if o.AuthPassword != "" && o.AuthUser == "" {
		o.AuthUser = o.User
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o
}

// check rejects values that would break the accounts line they are written to.
func (o BaresipOptions) check() error {
	if strings.ContainsAny(o.User, "\"<>;@:, \t\r\n") {
		return fmt.Errorf("%w: User %q is not a plain SIP user name", ErrBadOptions, o.User)
	}
	for name, v := range map[string]string{"AuthUser": o.AuthUser, "AuthPassword": o.AuthPassword} {
		if strings.ContainsAny(v, "\"<>; \t\r\n") {
			return fmt.Errorf("%w: %s has characters the accounts line cannot hold", ErrBadOptions, name)
		}
	}
	for name, v := range map[string]string{"TLSCertificate": o.TLSCertificate, "TLSCAFile": o.TLSCAFile} {
		if strings.ContainsAny(v, " \t\r\n") {
			return fmt.Errorf("%w: %s %q: a config value cannot hold spaces", ErrBadOptions, name, v)
		}
	}
	if strings.ContainsAny(o.OutboundProxy, "\"<> \t\r\n") {
		return fmt.Errorf("%w: OutboundProxy %q", ErrBadOptions, o.OutboundProxy)
	}
	switch o.MediaEnc {
	case "", "srtp", "srtp-mand", "srtp-mandf":
	default:
		return fmt.Errorf("%w: MediaEnc %q", ErrBadOptions, o.MediaEnc)
	}
	return nil
}

// Baresip is a running baresip user agent on 127.0.0.1, driven through its
// ctrl_tcp control socket.
type Baresip struct {
	opts BaresipOptions
	addr string // SIP host:port
	dir  string
	proc *process
	ctrl *ctrlConn
	tap  *tap
}

// ErrCommand is returned (wrapped) when baresip rejects a command.
var ErrCommand = errors.New("interop: baresip command failed")

// StartBaresip starts a baresip user agent listening on a free port of
// 127.0.0.1 and stops it when the test ends. It skips the test when baresip is
// not installed (fails it when CI=true).
func StartBaresip(t testing.TB, opts BaresipOptions) *Baresip {
	t.Helper()
	bin := findBinary(t, "baresip", "/usr/bin/baresip", "baresip")
	opts = opts.withDefaults()
	if err := opts.check(); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range startAttempts {
		b, err := startBaresip(t, bin, opts)
		if err == nil {
			return b
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func startBaresip(t testing.TB, bin string, opts BaresipOptions) (*Baresip, error) {
	// baresip's sip_listen opens UDP and TCP on the port, and TLS on the
	// next one.
	sipPort, err := freePort(true)
	if err != nil {
		return nil, err
	}
	for opts.Transport == TransportTLS && !tcpPortFree(sipPort+1) {
		if sipPort, err = freePort(true); err != nil {
			return nil, err
		}
	}
	ctrlPort, err := freePort(true)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	b := &Baresip{
		opts: opts,
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(sipPort)),
		dir:  dir,
	}
	fifo := filepath.Join(dir, "heard.fifo")
	ctrlAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ctrlPort))
	if err := b.writeFiles(fifo, ctrlAddr); err != nil {
		return nil, err
	}
	if b.tap, err = openTap(fifo); err != nil {
		return nil, err
	}
	p, err := startProcess("baresip "+opts.User, bin, dir, []string{"HOME=" + dir}, nil, "-f", dir)
	if err != nil {
		b.tap.close()
		return nil, err
	}
	b.proc = p
	t.Cleanup(func() {
		b.stop()
		p.stopAndCheck(t) // already stopped: only checks
	})
	b.ctrl, err = dialCtrl(ctrlAddr, opts.StartTimeout, p)
	if err != nil {
		b.stop()
		return nil, p.failure(err)
	}
	// A command round trip proves the menu module (which owns the commands)
	// is loaded too.
	if _, err := b.Command("listcalls", ""); err != nil {
		b.stop()
		return nil, p.failure(err)
	}
	return b, nil
}

// writeFiles writes the tone and baresip's configuration into b.dir.
func (b *Baresip) writeFiles(fifo, ctrlAddr string) error {
	tone := filepath.Join(b.dir, "tone.wav")
	if err := WriteToneWAV(tone, b.opts.ToneHz, toneAmplitude, b.opts.ToneSeconds); err != nil {
		return err
	}
	files := map[string]string{
		"config":   b.config(tone, ctrlAddr),
		"accounts": b.account() + "\n",
		// Empty: without a contacts file baresip writes an example one.
		"contacts": "",
		// baresip runs with HOME=b.dir, so ALSA reads this.
		".asoundrc": asoundrc(fifo),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("interop: baresip %s: %w", name, err)
		}
	}
	return nil
}

// stop closes the control connection, ends the process, then stops reading
// what it plays (in that order: a player writing into a FIFO nobody reads
// would block baresip's shutdown).
func (b *Baresip) stop() {
	if b.ctrl != nil {
		b.ctrl.close()
	}
	b.proc.stop()
	b.tap.close()
}

// asoundrc defines ALSA's PCM "heard": raw samples written to fifo, the null
// device as the (unpaced) sink. Keep the file plugin's default truncate=true:
// with false, alsa-lib 1.2.8 does not append but opens a new "fifo.0001" file
// when the name exists.
func asoundrc(fifo string) string {
	return fmt.Sprintf(`pcm.heard {
	type file
	slave.pcm "null"
	file %q
	format "raw"
}
`, fifo)
}

// config is baresip's config file: only the modules the harness needs, SIP and
// RTP bound to 127.0.0.1, the tone file as the microphone and ALSA's "heard"
// PCM (see asoundrc and tap) as the loudspeaker.
func (b *Baresip) config(tone, ctrlAddr string) string {
	lines := []string{
		"poll_method epoll",
		"sip_listen " + b.addr,
		// Without it baresip puts the first non-loopback address in SDP.
		"net_interface 127.0.0.1",
		"call_local_timeout 120",
		"call_max_calls 4",
		"audio_source aufile," + tone,
		"audio_player alsa,heard",
		"audio_alert alsa,null",
		"audio_level no",
		"ausrc_format s16",
		"auplay_format s16",
		"auenc_format s16",
		"audec_format s16",
		"jitter_buffer_delay 1-5",
		"statmode_default off",
		"module_path /usr/lib/baresip/modules",
		"module g711.so",
		"module aufile.so",
		"module alsa.so",
		"module srtp.so",
		"module_tmp account.so",
		"module_app menu.so",
		"module_app ctrl_tcp.so",
		"ctrl_tcp_listen " + ctrlAddr,
	}
	if b.opts.TLSCertificate != "" {
		lines = append(lines, "sip_certificate "+b.opts.TLSCertificate)
	}
	if b.opts.TLSCAFile != "" {
		lines = append(lines, "sip_cafile "+b.opts.TLSCAFile)
	}
	return strings.Join(lines, "\n") + "\n"
}

// account is the accounts file line (no registration, G.711 only).
func (b *Baresip) account() string {
	o := b.opts
	params := []string{"regint=0", "audio_codecs=pcmu,pcma", "ptime=20"}
	if o.AutoAnswer {
		params = append(params, "answermode=auto")
	} else {
		params = append(params, "answermode=manual")
	}
	if o.OutboundProxy != "" {
		params = append(params, `outbound="`+b.outboundURI()+`"`)
	}
	if o.AuthUser != "" {
		params = append(params, "auth_user="+o.AuthUser)
	}
	if o.AuthPassword != "" {
		params = append(params, "auth_pass="+o.AuthPassword)
	}
	if o.MediaEnc != "" {
		params = append(params, "mediaenc="+o.MediaEnc)
	}
	return "<" + b.URI() + ">;" + strings.Join(params, ";")
}

func (b *Baresip) outboundURI() string {
	p := b.opts.OutboundProxy
	if strings.HasPrefix(p, "sip:") {
		return p
	}
	uri := "sip:" + p
	if b.opts.Transport != TransportUDP {
		uri += ";transport=" + b.opts.Transport.String()
	}
	return uri + ";lr"
}

// Addr is the user agent's SIP host:port.
func (b *Baresip) Addr() string { return b.addr }

// URI is the user agent's address, sip:user@127.0.0.1:port (with
// ;transport=tcp for TCP; for TLS the TLS port and ;transport=tls).
func (b *Baresip) URI() string {
	switch b.opts.Transport {
	case TransportTCP:
		return "sip:" + b.opts.User + "@" + b.addr + ";transport=tcp"
	case TransportTLS:
		return "sip:" + b.opts.User + "@" + b.TLSAddr() + ";transport=tls"
	}
	return "sip:" + b.opts.User + "@" + b.addr
}

// TLSAddr is the user agent's SIP/TLS host:port (the SIP port + 1).
func (b *Baresip) TLSAddr() string {
	host, port, _ := net.SplitHostPort(b.addr)
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}

// Command sends one ctrl_tcp command (a menu command's long name without the
// slash, e.g. "dial") and returns baresip's answer text.
func (b *Baresip) Command(command, params string) (string, error) {
	return b.ctrl.command(command, params, commandTimeout)
}

// Dial calls uri. A TCP or TLS agent appends its ";transport=" parameter to
// what it dials, so a trailing one is removed first rather than doubled.
func (b *Baresip) Dial(uri string) error {
	if b.opts.Transport != TransportUDP {
		uri = strings.TrimSuffix(uri, ";transport="+b.opts.Transport.String())
	}
	return b.do("dial", uri)
}

// Accept answers the ringing incoming call (for a manual-answer agent).
func (b *Baresip) Accept() error { return b.do("accept", "") }

// Hangup ends the current call (BYE, or CANCEL while it rings).
func (b *Baresip) Hangup() error { return b.do("hangup", "") }

// Hold puts the current call on hold (re-INVITE with a=sendonly).
func (b *Baresip) Hold() error { return b.do("hold", "") }

// Resume takes the current call off hold (re-INVITE with a=sendrecv).
func (b *Baresip) Resume() error { return b.do("resume", "") }

// SendDTMF sends digits (0-9, *, #, A-D) as RFC 4733 telephone-events.
func (b *Baresip) SendDTMF(digits string) error { return b.do("sndcode", digits) }

func (b *Baresip) do(command, params string) error {
	_, err := b.Command(command, params)
	return err
}

// WaitEvent waits for an event of type typ that no earlier WaitEvent returned,
// oldest first, so waiting twice for CALL_ESTABLISHED waits for two calls.
func (b *Baresip) WaitEvent(typ EventType, timeout time.Duration) (Event, error) {
	return b.ctrl.waitEvent(typ, timeout, b.proc)
}

// Events is every event received so far.
func (b *Baresip) Events() []Event { return b.ctrl.allEvents() }

// Heard is everything the user agent's loudspeaker has played so far (8 kHz
// samples, calls one after the other; silence where the jitter buffer was
// empty, nothing between calls).
func (b *Baresip) Heard() []int16 { return b.tap.heard() }

// HeardFor waits d and returns what the loudspeaker played meanwhile.
func (b *Baresip) HeardFor(d time.Duration) []int16 {
	n := b.tap.count()
	time.Sleep(d)
	return b.tap.since(n)
}

// HeardWAV writes what Heard returns to a WAV file in the user agent's
// directory (for listening to a failed test) and returns its path.
func (b *Baresip) HeardWAV() (string, error) {
	path := filepath.Join(b.dir, "heard.wav")
	return path, WriteWAV(path, b.Heard(), SampleRate)
}

// Output is baresip's console output so far.
func (b *Baresip) Output() string { return b.proc.output() }

// Done is closed when the baresip process has exited.
func (b *Baresip) Done() <-chan struct{} { return b.proc.done }
