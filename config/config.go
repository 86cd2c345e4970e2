// Package config reads matterline's YAML configuration. With no file the embedded
// defaults of DESIGN.md apply. Unknown keys and bad values stop start-up with an
// error that names the key (`sip.trusted_sources[1]: bad CIDR "10.0.0/8"`).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid wraps every configuration error.
var ErrInvalid = errors.New("config")

// Config is the whole configuration file. Field tags are the YAML keys.
type Config struct {
	SIP      SIP      `yaml:"sip"`
	Media    Media    `yaml:"media"`
	HTTP     HTTP     `yaml:"http"`
	Store    Store    `yaml:"store"`
	Clio     Clio     `yaml:"clio"`
	IVR      IVR      `yaml:"ivr"`
	Transfer Transfer `yaml:"transfer"`
	Routing  Routing  `yaml:"routing"`
	Firm     Firm     `yaml:"firm"`
	Log      Log      `yaml:"log"`
	HEP      HEP      `yaml:"hep"`
	Agent    Agent    `yaml:"agent"`
	// DrainTimeout is how long SIGTERM waits for calls to finish before BYE.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// SIP is the signalling side.
type SIP struct {
	// Listen is a list of transport URLs: udp://HOST:PORT, tcp://HOST:PORT.
	Listen []string `yaml:"listen"`
	// ExternalIP is advertised in Contact and SDP (NAT); empty = local address.
	ExternalIP string `yaml:"external_ip"`
	// TrustedSources are the CIDRs allowed to send INVITE; others get 403.
	TrustedSources []string `yaml:"trusted_sources"`
	// OutboundProxy is where destinations that are numbers are sent, e.g. sip:127.0.0.1:5070.
	OutboundProxy string `yaml:"outbound_proxy"`
	// OutboundAuth answers 401/407 digest challenges to outbound INVITEs.
	OutboundAuth OutboundAuth `yaml:"outbound_auth"`
	// ServiceNumber is the caller ID shown when a rule says caller_id: service.
	ServiceNumber string `yaml:"service_number"`
	// MaxCalls caps concurrent calls; INVITEs above it get 503.
	MaxCalls int `yaml:"max_calls"`
	// InviteRate is the new calls one source address may start per second; INVITEs over it get 503.
	InviteRate int `yaml:"invite_rate"`
	// InviteBurst is how many new calls one source may start at once.
	InviteBurst int `yaml:"invite_burst"`
	// TCPMaxConnections caps accepted SIP/TCP connections in all; 0 = from the fd limit, at most 1024.
	TCPMaxConnections int `yaml:"tcp_max_connections"`
	// TCPMaxPerSource caps the TCP connections of one trusted source address.
	TCPMaxPerSource int `yaml:"tcp_max_per_source"`
	// TCPMaxPerUntrustedSource caps the TCP connections of one source outside trusted_sources.
	TCPMaxPerUntrustedSource int `yaml:"tcp_max_per_untrusted_source"`
	// TCPIdleTimeout closes a trusted TCP connection on which nothing arrived for that long.
	TCPIdleTimeout Duration `yaml:"tcp_idle_timeout"`
	// TCPUntrustedIdleTimeout closes an untrusted TCP connection idle for that long.
	TCPUntrustedIdleTimeout Duration `yaml:"tcp_untrusted_idle_timeout"`
	// TCPFirstMessageTimeout is how long an untrusted TCP connection has to send a complete header section.
	TCPFirstMessageTimeout Duration `yaml:"tcp_first_message_timeout"`
	// SessionExpires is the RFC 4028 session interval offered and accepted.
	SessionExpires Duration `yaml:"session_expires"`
	// ReferURI is how numbers appear in Refer-To: "sip" (sip:NUMBER@proxy) or "tel".
	ReferURI string `yaml:"refer_uri"`
	// Mode is "b2bua" (answer and transfer) or "redirect" (302 to the destination).
	Mode string `yaml:"mode"`
}

// OutboundAuth are the digest credentials for challenges to outbound INVITEs.
type OutboundAuth struct {
	Username string `yaml:"username"`
	// Password; env MATTERLINE_SIP_PASSWORD.
	Password string `yaml:"password"`
	// Realm answered; empty = any realm, but only on the way through the outbound proxy.
	Realm string `yaml:"realm"`
}

// Media is RTP and prompts.
type Media struct {
	// RTPPorts is the UDP range for RTP, "MIN-MAX"; only even ports are used.
	RTPPorts string `yaml:"rtp_ports"`
	// PromptsDir overrides built-in prompts by file name (NAME.wav); empty = built-in.
	PromptsDir string `yaml:"prompts_dir"`
	// RTPTimeout ends a call with BYE when no RTP arrives for this long (not on hold).
	RTPTimeout Duration `yaml:"rtp_timeout"`
}

// HTTP is the control and admin API.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Token is the admin bearer token (every route); env MATTERLINE_HTTP_TOKEN.
	Token string `yaml:"token"`
	// AgentToken is the voice agent's bearer token: read calls, follow events,
	// request transfers to existing rules; env MATTERLINE_HTTP_AGENT_TOKEN.
	AgentToken string `yaml:"agent_token"`
	// AllowedHosts are Host header names (NAME or NAME:PORT) accepted besides
	// loopback names and the listen address; others get 421 (DNS rebinding).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// LoopbackOpen lets loopback clients use every route but pprof without a
	// token, state-changing ones included. Off by default; the listen address
	// must be loopback.
	LoopbackOpen bool `yaml:"loopback_open"`
}

// Store is the SQLite database.
type Store struct {
	Path string `yaml:"path"`
}

// Clio is the Clio Manage connection and the caller lookup policy.
type Clio struct {
	Region       string `yaml:"region"`
	BaseURL      string `yaml:"base_url"`
	AccessToken  string `yaml:"access_token"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RedirectURL is the OAuth redirect URI registered with the Clio app; empty =
	// http://<http.listen>/oauth/clio/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Writeback logs decided calls back into Clio (docs/clio.md "Write-back").
	Writeback ClioWriteback `yaml:"writeback"`
	// AnswerWait is how long answering a call waits for the lookup.
	AnswerWait Duration `yaml:"answer_wait"`
	// RequestTimeout bounds each HTTP request to Clio.
	RequestTimeout Duration `yaml:"request_timeout"`
	// LookupTimeout bounds a whole lookup (all pages and the matters request).
	LookupTimeout Duration `yaml:"lookup_timeout"`
	// Match is "full" (the caller's full number must equal a stored one) or "last4".
	Match string `yaml:"match"`
	// MatterStatus lists the matter statuses that count: open, pending.
	MatterStatus []string `yaml:"matter_status"`
	// MatterPolicy picks among several matters: "recent" (newest updated_at) or "first".
	MatterPolicy string `yaml:"matter_policy"`
	// StaffPreference orders the matter's user fields to read the staff member from.
	StaffPreference []string `yaml:"staff_preference"`
	// DefaultCountry is the ISO country (US, CA, GB, AU, ...) for national numbers.
	DefaultCountry string `yaml:"default_country"`
	// CacheTTL and NegativeTTL are the lookup cache lifetimes for found / not found.
	CacheTTL    Duration `yaml:"cache_ttl"`
	NegativeTTL Duration `yaml:"negative_ttl"`
	// MaxPages bounds contact paging per lookup.
	MaxPages int `yaml:"max_pages"`
	// BreakerFailures consecutive failures open the circuit for BreakerCooldown.
	BreakerFailures int      `yaml:"breaker_failures"`
	BreakerCooldown Duration `yaml:"breaker_cooldown"`
	// RateLimitReserve: when X-RateLimit-Remaining is at or below it, a stale cached
	// result is served instead of a request.
	RateLimitReserve int `yaml:"rate_limit_reserve"`

	// Index turns on the local phone index: a full sync at start and every
	// IndexResync, an updated_since poll every IndexPoll, webhooks at WebhookURL;
	// lookups are answered from it first.
	Index bool `yaml:"index"`
	// WebhookURL is the public HTTPS URL that reaches POST /webhooks/clio on
	// http.listen; empty = no webhooks (the poll alone keeps the index fresh).
	WebhookURL  string   `yaml:"webhook_url"`
	IndexPoll   Duration `yaml:"index_poll"`
	IndexResync Duration `yaml:"index_resync"`
}

// ClioWriteback switches what is written back to Clio after a call; all off by
// default. Rules can override time_entry, non_billable and task_priority.
type ClioWriteback struct {
	// Communication logs each decided call as a PhoneCommunication on the matter.
	Communication bool `yaml:"communication"`
	// TimeEntry adds a draft TimeEntry for the staff member who took a bridged call.
	TimeEntry bool `yaml:"time_entry"`
	// Task adds a callback Task when a message was left or nobody answered.
	Task bool `yaml:"task"`
	// Document uploads a left message as a Document on the matter.
	Document bool `yaml:"document"`
	// NonBillable marks the time entries non-billable.
	NonBillable bool `yaml:"non_billable"`
	// TaskPriority is the callback tasks' priority: High, Normal or Low.
	TaskPriority string `yaml:"task_priority"`
	// TaskDueDays is how many days after the call a callback task is due.
	TaskDueDays int `yaml:"task_due_days"`
	// Reserve is the X-RateLimit-Remaining write-back leaves to caller lookups.
	Reserve int `yaml:"reserve"`
}

// Any reports whether any write-back is on.
func (w ClioWriteback) Any() bool { return w.Communication || w.TimeEntry || w.Task || w.Document }

// IVR is the caller menu.
type IVR struct {
	// Menu maps digits to intents: responsible, operator, rule:NAME.
	Menu map[string]string `yaml:"menu"`
	// Operator is the destination of the operator intent.
	Operator string `yaml:"operator"`
	// Timeout is the silence after the menu before it counts as a failed attempt.
	Timeout Duration `yaml:"timeout"`
	// Attempts is the number of failures before goodbye.
	Attempts int `yaml:"attempts"`
}

// Transfer is how decisions are carried out.
type Transfer struct {
	// Fallback after a failed REFER: "bridge" (call out from matterline) or "none".
	Fallback string `yaml:"fallback"`
	// ReferTimeout bounds the wait for the REFER's final NOTIFY.
	ReferTimeout Duration `yaml:"refer_timeout"`
	// MessagesDir holds recorded messages.
	MessagesDir string `yaml:"messages_dir"`
	// MessageMax is the longest recording; MessageSilence ends one early.
	MessageMax     Duration `yaml:"message_max"`
	MessageSilence Duration `yaml:"message_silence"`
}

// Routing limits what rules may do.
type Routing struct {
	// AllowedDestinations are number and SIP URI patterns ('*' any run, '?' one
	// character) every rule destination and ivr.operator must match; empty = any.
	AllowedDestinations []string `yaml:"allowed_destinations"`
}

// Firm holds firm-wide routing settings.
type Firm struct {
	// TimeZone is the IANA zone for rules that name none (e.g. America/Chicago).
	TimeZone string `yaml:"time_zone"`
}

// Log is the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
	// SIPTrace logs every SIP message in and out at start-up; switchable at run
	// time with POST /v1/debug/siptrace.
	SIPTrace bool `yaml:"sip_trace"`
}

// HEP exports SIP messages to a Homer collector (HEPv3 over UDP).
type HEP struct {
	// Address is the collector's HOST:PORT; empty = no export.
	Address string `yaml:"address"`
	// AgentID identifies this node in Homer.
	AgentID uint32 `yaml:"agent_id"`
	// Password is the collector's auth key (sent in the HEP auth chunk), if any.
	Password string `yaml:"password"`
}

// Agent is a voice-AI agent that takes calls after the lookup.
type Agent struct {
	// URI is the SIP URI of an agent reached by a SIP leg.
	URI string `yaml:"uri"`
	// Mode is "off", "first" (every call goes to the agent after the lookup) or
	// "fallback" (the agent takes calls whose menu attempts ran out).
	Mode string `yaml:"mode"`
	// StreamURL is the WebSocket of a Twilio-Media-Streams-style agent:
	// ws:// only to a loopback host, wss:// otherwise.
	StreamURL string `yaml:"stream_url"`
}

// Default returns the embedded defaults of DESIGN.md.
func Default() Config {
	return Config{
		SIP: SIP{
			Listen:                   []string{"udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"},
			TrustedSources:           []string{"127.0.0.1/32", "::1/128"},
			MaxCalls:                 100,
			InviteRate:               20,
			InviteBurst:              50,
			TCPMaxPerSource:          16,
			TCPMaxPerUntrustedSource: 4,
			TCPIdleTimeout:           Duration(2 * time.Hour),
			TCPUntrustedIdleTimeout:  Duration(30 * time.Second),
			TCPFirstMessageTimeout:   Duration(5 * time.Second),
			SessionExpires:           Duration(30 * time.Minute),
			ReferURI:                 "sip",
			Mode:                     "b2bua",
		},
		Media: Media{RTPPorts: "10000-20000", RTPTimeout: Duration(30 * time.Second)},
		HTTP:  HTTP{Listen: "127.0.0.1:8080"},
		Store: Store{Path: "matterline.db"},
		Clio: Clio{
			Region:           "us",
			AnswerWait:       Duration(500 * time.Millisecond),
			RequestTimeout:   Duration(2 * time.Second),
			LookupTimeout:    Duration(5 * time.Second),
			Match:            "full",
			MatterStatus:     []string{"open"},
			MatterPolicy:     "recent",
			StaffPreference:  []string{"responsible_staff", "responsible_attorney"},
			DefaultCountry:   "US",
			CacheTTL:         Duration(15 * time.Minute),
			NegativeTTL:      Duration(2 * time.Minute),
			MaxPages:         10,
			BreakerFailures:  5,
			BreakerCooldown:  Duration(30 * time.Second),
			RateLimitReserve: 5,
			Writeback:        ClioWriteback{TaskPriority: "Normal", TaskDueDays: 1, Reserve: 10},
			IndexPoll:        Duration(15 * time.Minute),
			IndexResync:      Duration(24 * time.Hour),
		},
		IVR: IVR{
			Menu:     map[string]string{"1": "responsible", "0": "operator"},
			Timeout:  Duration(8 * time.Second),
			Attempts: 3,
		},
		Transfer: Transfer{
			Fallback:       "bridge",
			ReferTimeout:   Duration(30 * time.Second),
			MessagesDir:    "messages",
			MessageMax:     Duration(2 * time.Minute),
			MessageSilence: Duration(5 * time.Second),
		},
		Firm:         Firm{TimeZone: "America/New_York"},
		Log:          Log{Level: "info", Format: "text"},
		HEP:          HEP{AgentID: 2001},
		Agent:        Agent{Mode: "off"},
		DrainTimeout: Duration(30 * time.Second),
	}
}

// Load reads path (empty = defaults only), applies environment overrides for
// secrets, and validates. Keys absent from the file keep their defaults.
func Load(path string) (*Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if err := Parse(data, &c); err != nil {
			return nil, err
		}
	}
	c.applyEnv(os.Getenv)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Parse decodes YAML over c, rejecting unknown keys by their full path.
func Parse(data []byte, c *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := checkKeys(&root, c); err != nil {
		return err
	}
	// Maps would merge with defaults; a menu in the file replaces the default menu.
	if hasKey(&root, "ivr", "menu") {
		c.IVR.Menu = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func (c *Config) applyEnv(getenv func(string) string) {
	set := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set(&c.Clio.AccessToken, "MATTERLINE_CLIO_ACCESS_TOKEN")
	set(&c.Clio.ClientID, "MATTERLINE_CLIO_CLIENT_ID")
	set(&c.Clio.ClientSecret, "MATTERLINE_CLIO_CLIENT_SECRET")
	set(&c.HTTP.Token, "MATTERLINE_HTTP_TOKEN")
	set(&c.HTTP.AgentToken, "MATTERLINE_HTTP_AGENT_TOKEN")
	set(&c.HEP.Password, "MATTERLINE_HEP_PASSWORD")
	set(&c.SIP.OutboundAuth.Password, "MATTERLINE_SIP_PASSWORD")
}

// Duration is a time.Duration written as "500ms", "30s", "2m" in YAML.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration like 500ms or 30s", n.Line)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if secs, err2 := strconv.Atoi(strings.TrimSpace(s)); err2 == nil {
			v = time.Duration(secs) * time.Second
		} else {
			return fmt.Errorf("line %d: bad duration %q (want e.g. 500ms, 30s, 2m)", n.Line, s)
		}
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// PortRange parses "MIN-MAX".
func PortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad port range %q (want MIN-MAX, e.g. 10000-20000)", s)
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("bad port range %q (want MIN-MAX, e.g. 10000-20000)", s)
	case lo < 1024 || hi > 65535:
		return 0, 0, fmt.Errorf("port range %q outside 1024-65535", s)
	case hi-lo < 3:
		return 0, 0, fmt.Errorf("port range %q too small (need at least 2 even ports)", s)
	}
	return lo, hi, nil
}

// Prefixes parses CIDRs (a bare address means a single host).
func Prefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, fmt.Errorf("bad CIDR %q", s)
	}
	return out, nil
}
