package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// Config configures a Server. Zero values mean defaults; NewServer defaults a copy.
type Config struct {
	// Listen are the SIP listeners: "udp://127.0.0.1:5060", "tcp://0.0.0.0:5060",
	// "tls://0.0.0.0:5061". Port 0 picks a free port; UDP and TCP on the same
	// host get the same port (TLS one of its own).
	Listen []string
	// TLS names the certificate, key and extra CA of SIP over TLS (tls.go).
	TLS TLSFiles
	// ExternalIP is advertised in Contact and SDP when valid.
	ExternalIP netip.Addr
	// TrustedSources may send INVITE and any other out-of-dialog request; others get
	// 403 and nothing else happens. Default 127.0.0.0/8 and ::1/128.
	TrustedSources []netip.Prefix
	// MaxCalls caps concurrent calls; an INVITE over it gets 503 with Retry-After.
	// Default 100.
	MaxCalls int
	// RTPInactivity ends a call with BYE when no RTP arrives for this long (not while
	// the caller holds the call). Default 30s.
	RTPInactivity time.Duration
	// SRTP is the SDES-SRTP policy of every leg (config media.srtp, srtp.go); the
	// zero value is media.SRTPOff.
	SRTP media.SRTPPolicy
	// AnswerWait is how long answering waits for the caller lookup. Default 500ms.
	AnswerWait time.Duration
	// LookupTimeout bounds the caller lookup as a whole; after it the call goes on
	// without a result (status error, reason "timeout"). Default 5s.
	LookupTimeout time.Duration
	// Menu maps a DTMF key to an intent text (routing.ParseIntent).
	// Default {"1": "responsible", "0": "operator"}.
	Menu map[string]string
	// MenuTimeout is the silence after a menu prompt counted as one failure. Default 8s.
	MenuTimeout time.Duration
	// MenuAttempts is the number of failures before goodbye and BYE. Default 3.
	MenuAttempts int
	// SessionExpires is the RFC 4028 session interval we ask for when the caller
	// supports timers and names none. Default 1800s; never below MinSE (90s).
	SessionExpires time.Duration
	// UserAgent is sent in User-Agent and Server headers. Default "matterline".
	UserAgent string

	// Transfer settings (issue 5); see transfer.go for the types and defaults.
	// OutboundProxy is where number destinations go: "sip:host[:port][;transport=tcp]"
	// or "host[:port]" (sip.outbound_proxy). Empty: numbers cannot be dialled.
	OutboundProxy string
	// ServiceNumber is the caller ID for caller_id: service and the number named in
	// Diversion and Referred-By (sip.service_number).
	ServiceNumber string
	// ReferURI is how numbers appear in Refer-To (sip.refer_uri). Default sip.
	ReferURI ReferURIScheme
	// Mode is b2bua (default) or redirect (sip.mode).
	Mode ServerMode
	// TransferFallback is what a failed REFER falls back to (transfer.fallback).
	// Default bridge.
	TransferFallback TransferFallback
	// ReferTimeout bounds the wait for the REFER's final NOTIFY (transfer.refer_timeout).
	// Default 30s.
	ReferTimeout time.Duration
	// MessageMax and MessageSilence bound a recorded message (transfer.message_max,
	// transfer.message_silence). Defaults 2m and 5s.
	MessageMax     time.Duration
	MessageSilence time.Duration
	// AcceptTimeout is how long a warm transfer waits for the callee's accept digit
	// after the whisper. Default 10s.
	AcceptTimeout time.Duration
	// DigitTimeout is the inter-digit timeout of an extension dialled from the
	// menu. Default 2s.
	DigitTimeout time.Duration
	// CancelWait bounds the wait for the final response after we CANCEL an
	// outbound INVITE (RFC 3261 §9.1 allows 64*T1). Default 4s.
	CancelWait time.Duration
	// OutboundAuth answers 401/407 challenges to outbound INVITEs
	// (sip.outbound_auth).
	OutboundAuth DigestCredentials
	// InviteRate and InviteBurst bound the new calls one source address may
	// start (per second, and at once), trusted sources included: a PBX gone
	// wrong or a compromised one cannot fill MaxCalls (sip.invite_rate,
	// sip.invite_burst). Defaults 20 and 50.
	InviteRate  float64
	InviteBurst int

	// Voice-AI agent (agent.go). AgentURI is the agent's SIP URI (agent.uri);
	// AgentMode when calls go to it (agent.mode, default off);
	// AgentAnswerTimeout how long it may take to answer before the menu takes
	// the call. Default 8s.
	AgentURI           string
	AgentMode          AgentMode
	AgentAnswerTimeout time.Duration

	// TCP guard (tcpguard.go), against fd exhaustion by idle connections.
	// TCPMaxConns caps accepted TCP connections in all; over it a new one is
	// closed at once. Default: the fd limit less room for RTP (4 per call of
	// MaxCalls) and 256 more, at most 1024 (sip.tcp_max_connections).
	TCPMaxConns int
	// TCPMaxPerSource and TCPMaxPerUntrustedSource cap the connections one
	// source address (an IPv6 /64) may hold, inside and outside TrustedSources
	// (sip.tcp_max_per_source, sip.tcp_max_per_untrusted_source). Defaults 16, 4.
	TCPMaxPerSource          int
	TCPMaxPerUntrustedSource int
	// TCPIdleTimeout and TCPUntrustedIdleTimeout close a connection on which
	// nothing arrived for that long (sip.tcp_idle_timeout,
	// sip.tcp_untrusted_idle_timeout). Defaults 2h, 30s.
	TCPIdleTimeout          time.Duration
	TCPUntrustedIdleTimeout time.Duration
	// TCPFirstMessageTimeout is how long an untrusted connection has to send a
	// complete header section (sip.tcp_first_message_timeout). Default 5s.
	TCPFirstMessageTimeout time.Duration
}

// DigestCredentials answer a digest challenge (RFC 3261 §22.2-§22.3). With Realm
// empty, only challenges on the way through the outbound proxy are answered; with
// a realm, only challenges of that realm.
type DigestCredentials struct {
	Username string
	Password string `json:"-"`
	Realm    string
}

// Defaults of Config.
const (
	DefaultInviteRate  = 20
	DefaultInviteBurst = 50
	// unackedGrace is how long an answered call may wait for its ACK before it
	// is ended to make room when MaxCalls is reached (instead of 64*T1).
	unackedGrace = 4 * time.Second
	// minUnconfirmedPerSource is the least number of calls awaiting their ACK
	// one source may hold once half the slots are taken (MaxCalls/10 when that
	// is more); see Server.holdsUnconfirmed.
	minUnconfirmedPerSource = 20
	DefaultMaxCalls         = 100
	DefaultRTPInactivity    = 30 * time.Second
	DefaultAnswerWait       = 500 * time.Millisecond
	DefaultLookupTimeout    = 5 * time.Second
	DefaultMenuTimeout      = 8 * time.Second
	DefaultMenuAttempts     = 3
	DefaultSessionExpires   = 1800 * time.Second
	// MinSE is our RFC 4028 Min-SE: session intervals below it get 422.
	MinSE = 90 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	out := c
	if out.InviteRate <= 0 {
		out.InviteRate = DefaultInviteRate
	}
	if out.InviteBurst <= 0 {
		out.InviteBurst = DefaultInviteBurst
	}
	if len(out.Listen) == 0 {
		out.Listen = []string{"udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"}
	}
	out.Listen = append([]string(nil), out.Listen...)
	if len(out.TrustedSources) == 0 {
		out.TrustedSources = []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		}
	} else {
		out.TrustedSources = append([]netip.Prefix(nil), out.TrustedSources...)
	}
	if out.MaxCalls <= 0 {
		out.MaxCalls = DefaultMaxCalls
	}
	if out.TCPMaxConns <= 0 {
		out.TCPMaxConns = tcpMaxConnsFor(out.MaxCalls)
	}
	if out.TCPMaxPerSource <= 0 {
		out.TCPMaxPerSource = DefaultTCPMaxPerSource
	}
	if out.TCPMaxPerUntrustedSource <= 0 {
		out.TCPMaxPerUntrustedSource = DefaultTCPMaxPerUntrustedSource
	}
	if out.TCPIdleTimeout <= 0 {
		out.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if out.TCPUntrustedIdleTimeout <= 0 {
		out.TCPUntrustedIdleTimeout = DefaultTCPUntrustedIdleTimeout
	}
	if out.TCPFirstMessageTimeout <= 0 {
		out.TCPFirstMessageTimeout = DefaultTCPFirstMessageTimeout
	}
	if out.RTPInactivity <= 0 {
		out.RTPInactivity = DefaultRTPInactivity
	}
	if out.AnswerWait <= 0 {
		out.AnswerWait = DefaultAnswerWait
	}
	if out.LookupTimeout <= 0 {
		out.LookupTimeout = DefaultLookupTimeout
	}
	if len(out.Menu) == 0 {
		out.Menu = map[string]string{"1": "responsible", "0": "operator"}
	}
	menu := make(map[string]string, len(out.Menu))
	for k, v := range out.Menu {
		if len(k) != 1 || !strings.ContainsRune("0123456789*#ABCD", rune(k[0])) {
			return out, fmt.Errorf("sip: menu key %q is not one dtmf digit", k)
		}
		if _, err := routing.ParseIntent(v); err != nil {
			return out, fmt.Errorf("sip: menu key %q: %w", k, err)
		}
		menu[k] = v
	}
	out.Menu = menu
	if out.MenuTimeout <= 0 {
		out.MenuTimeout = DefaultMenuTimeout
	}
	if out.MenuAttempts <= 0 {
		out.MenuAttempts = DefaultMenuAttempts
	}
	if out.SessionExpires <= 0 {
		out.SessionExpires = DefaultSessionExpires
	}
	if out.SessionExpires < MinSE {
		out.SessionExpires = MinSE
	}
	if out.UserAgent == "" {
		out.UserAgent = "matterline"
	}
	out.UserAgent = stripCRLF(out.UserAgent)
	if err := out.transferDefaults(); err != nil {
		return out, err
	}
	if err := out.agentDefaults(); err != nil {
		return out, err
	}
	return out, nil
}

// Lookup finds a caller in the practice-management system. Implementations honour
// ctx and never panic; a failure is a Result with StatusError.
type Lookup interface {
	Lookup(ctx context.Context, callerID string) lookup.Result
}

// Router decides what an intent means for a call (package routing implements the
// pure decision; sip only executes it).
type Router interface {
	Decide(ctx context.Context, call CallInfo, intent routing.Intent) routing.Decision
	// Fallback resolves the unavailable handling rule:NAME of the rule named rule
	// (routing.Fallback): the next rule's decision, never looping.
	Fallback(ctx context.Context, call CallInfo, rule string) routing.Decision
}

// ExtensionLister is optionally implemented by a Router: the extensions of the
// rules, so that the menu knows when a mapped digit may start an extension.
type ExtensionLister interface {
	Extensions(ctx context.Context) []string
}

// CallInfo is what routing and transfer need to know about a call.
type CallInfo struct {
	ID         string // our call id
	SIPCallID  string
	Caller     string // user part of P-Asserted-Identity or From; empty when withheld
	Callee     string // user part of the Request-URI
	Lookup     lookup.Result
	LookupDone bool
}

// TransferRequest is handed to a Transferer when routing returns ActionTransfer.
type TransferRequest struct {
	Call     CallInfo
	Decision routing.Decision
	// Media is the caller leg's RTP session (for ringback, whisper and bridging).
	Media *media.Session
}

// Transferer replaces the built-in transfer executor (cold REFER, warm bridge,
// transfer.go) when plugged in with WithTransferer: for embedding and tests.
// Transfer returns nil when the call has been handed off (the menu stops; the
// transferer ends the caller leg via the Hangup API or its own signalling) and an
// error when nobody could be reached (the caller hears nobody_available and
// returns to the menu).
type Transferer interface {
	Transfer(ctx context.Context, req TransferRequest) error
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger; each call's lines carry a call_id attribute.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithLookup sets the caller lookup. Without it every call's lookup status is
// unconfigured.
func WithLookup(l Lookup) Option { return func(s *Server) { s.lookup = l } }

// WithRouter sets the router. Without it every intent is unserved.
func WithRouter(r Router) Option { return func(s *Server) { s.router = r } }

// WithTransferer plugs in an external transfer executor instead of the built-in one.
func WithTransferer(t Transferer) Option { return func(s *Server) { s.transferer = t } }

// WithPorts sets the RTP port allocator (default 10000-20000).
func WithPorts(p *media.PortAllocator) Option { return func(s *Server) { s.ports = p } }

// WithPrompts sets the prompt set (default: the built-in prompts).
func WithPrompts(p *media.Prompts) Option { return func(s *Server) { s.prompts = p } }

// WithClock sets the clock used for call start times (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

func stripCRLF(s string) string {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}
