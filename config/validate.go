package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/matterline/matterline/routing"
)

// checkKeys walks the YAML document against the struct tags of v and reports the
// first key that the struct does not have, by its dotted path and line.
func checkKeys(root *yaml.Node, v any) error {
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	return walkKeys(root, reflect.TypeOf(v).Elem(), "")
}

func walkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if t.Kind() != reflect.Struct {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		where := path
		if where == "" {
			where = "top level"
		}
		return fmt.Errorf("%w: line %d: %s: want a mapping of keys", ErrInvalid, n.Line, where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(t, k.Value)
		key := join(path, k.Value)
		if !ok {
			return fmt.Errorf("%w: line %d: unknown key %s (known under %s: %s)",
				ErrInvalid, k.Line, key, orTop(path), strings.Join(Keys(t), ", "))
		}
		if err := walkKeys(val, f.Type, key); err != nil {
			return err
		}
	}
	return nil
}

func orTop(p string) string {
	if p == "" {
		return "top level"
	}
	return p
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return tag
}

// Keys lists the YAML keys of a struct type, in declaration order.
func Keys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if n := tagName(t.Field(i)); n != "" && n != "-" {
			out = append(out, n)
		}
	}
	return out
}

// AllKeys lists every leaf key of Config as a dotted path (sip.listen, clio.region, ...),
// for documentation checks.
func AllKeys() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			n := tagName(f)
			if n == "" || n == "-" {
				continue
			}
			p := join(path, n)
			if f.Type.Kind() == reflect.Struct && f.Type.Name() != "Duration" {
				walk(f.Type, p)
				continue
			}
			out = append(out, p)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

func hasKey(root *yaml.Node, path ...string) bool {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

var (
	digitKey    = regexp.MustCompile(`^[0-9*#]$`)
	intentRE    = regexp.MustCompile(`^(responsible|operator|(rule|staff|extension):\S.*)$`)
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	if len(c.SIP.Listen) == 0 {
		return bad("sip.listen", "at least one listener is needed (e.g. udp://0.0.0.0:5060)")
	}
	tlsListener := false
	for i, l := range c.SIP.Listen {
		n, _, err := ParseListen(l)
		if err != nil {
			return bad(fmt.Sprintf("sip.listen[%d]", i), "%v", err)
		}
		tlsListener = tlsListener || n == "tls"
	}
	if err := c.SIP.TLS.validate(tlsListener); err != nil {
		return err
	}
	if c.SIP.ExternalIP != "" {
		if _, err := netip.ParseAddr(c.SIP.ExternalIP); err != nil {
			return bad("sip.external_ip", "bad IP address %q", c.SIP.ExternalIP)
		}
	}
	for i, s := range c.SIP.TrustedSources {
		if _, err := Prefixes([]string{s}); err != nil {
			return bad(fmt.Sprintf("sip.trusted_sources[%d]", i), "%v", err)
		}
	}
	if c.SIP.OutboundProxy != "" {
		if err := checkSIPURI(c.SIP.OutboundProxy); err != nil {
			return bad("sip.outbound_proxy", "%v", err)
		}
	}
	if c.SIP.ServiceNumber != "" && !dialable.MatchString(c.SIP.ServiceNumber) {
		return bad("sip.service_number", "%q is not a phone number (digits, optional leading +)", c.SIP.ServiceNumber)
	}
	if c.SIP.MaxCalls < 1 {
		return bad("sip.max_calls", "must be at least 1, got %d", c.SIP.MaxCalls)
	}
	if c.SIP.InviteRate < 1 {
		return bad("sip.invite_rate", "must be at least 1 call per second, got %d", c.SIP.InviteRate)
	}
	if c.SIP.InviteBurst < 1 {
		return bad("sip.invite_burst", "must be at least 1, got %d", c.SIP.InviteBurst)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"sip.tcp_max_connections", c.SIP.TCPMaxConnections}, {"sip.tcp_max_per_source", c.SIP.TCPMaxPerSource},
		{"sip.tcp_max_per_untrusted_source", c.SIP.TCPMaxPerUntrustedSource}} {
		if v.n < 0 {
			return bad(v.key, "must not be negative, got %d", v.n)
		}
	}
	for _, v := range []struct {
		key string
		d   Duration
	}{{"sip.tcp_idle_timeout", c.SIP.TCPIdleTimeout}, {"sip.tcp_untrusted_idle_timeout", c.SIP.TCPUntrustedIdleTimeout},
		{"sip.tcp_first_message_timeout", c.SIP.TCPFirstMessageTimeout}} {
		if v.d.D() < 0 {
			return bad(v.key, "must not be negative")
		}
	}
	if c.SIP.SessionExpires.D() != 0 && c.SIP.SessionExpires.D().Seconds() < 90 {
		return bad("sip.session_expires", "must be at least 90s (RFC 4028 Min-SE)")
	}
	if err := oneOf(c.SIP.ReferURI, "sip", "tel"); err != nil {
		return bad("sip.refer_uri", "%v", err)
	}
	if err := oneOf(c.SIP.Mode, "b2bua", "redirect"); err != nil {
		return bad("sip.mode", "%v", err)
	}
	if _, _, err := PortRange(c.Media.RTPPorts); err != nil {
		return bad("media.rtp_ports", "%v", err)
	}
	if err := oneOf(c.Media.SRTP, "off", "offer", "require"); err != nil {
		return bad("media.srtp", "%v", err)
	}
	if c.Media.PromptsDir != "" {
		st, err := os.Stat(c.Media.PromptsDir)
		if err != nil {
			return bad("media.prompts_dir", "%v", err)
		}
		if !st.IsDir() {
			return bad("media.prompts_dir", "%s is not a directory", c.Media.PromptsDir)
		}
		if _, err := os.ReadDir(c.Media.PromptsDir); err != nil {
			return bad("media.prompts_dir", "%v", err)
		}
	}
	if c.HTTP.Listen != "" {
		if _, err := netip.ParseAddrPort(c.HTTP.Listen); err != nil {
			return bad("http.listen", "want IP:PORT, got %q", c.HTTP.Listen)
		}
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	if c.Store.Path == "" {
		return bad("store.path", "must not be empty")
	}
	if err := oneOf(c.Clio.Region, "us", "ca", "eu", "au"); err != nil {
		return bad("clio.region", "%v", err)
	}
	if c.Clio.BaseURL != "" {
		u, err := url.Parse(c.Clio.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("clio.base_url", "want an http(s) URL, got %q", c.Clio.BaseURL)
		}
	}
	if c.Clio.RedirectURL != "" {
		u, err := url.Parse(c.Clio.RedirectURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("clio.redirect_url", "want an http(s) URL, got %q", c.Clio.RedirectURL)
		}
	}
	if err := oneOf(c.Clio.Match, "full", "last4"); err != nil {
		return bad("clio.match", "%v", err)
	}
	if len(c.Clio.MatterStatus) == 0 {
		return bad("clio.matter_status", "list at least one of open, pending")
	}
	for i, s := range c.Clio.MatterStatus {
		if err := oneOf(s, "open", "pending"); err != nil {
			return bad(fmt.Sprintf("clio.matter_status[%d]", i), "%v", err)
		}
	}
	if err := oneOf(c.Clio.MatterPolicy, "recent", "first"); err != nil {
		return bad("clio.matter_policy", "%v", err)
	}
	if len(c.Clio.StaffPreference) == 0 {
		return bad("clio.staff_preference", "list at least one of responsible_staff, responsible_attorney, originating_attorney")
	}
	for i, s := range c.Clio.StaffPreference {
		if err := oneOf(s, "responsible_staff", "responsible_attorney", "originating_attorney"); err != nil {
			return bad(fmt.Sprintf("clio.staff_preference[%d]", i), "%v", err)
		}
	}
	if !countryCode.MatchString(c.Clio.DefaultCountry) {
		return bad("clio.default_country", "want a two-letter ISO country code like US, got %q", c.Clio.DefaultCountry)
	}
	if c.Clio.MaxPages < 1 || c.Clio.MaxPages > 100 {
		return bad("clio.max_pages", "must be 1..100, got %d", c.Clio.MaxPages)
	}
	if c.Clio.BreakerFailures < 1 {
		return bad("clio.breaker_failures", "must be at least 1, got %d", c.Clio.BreakerFailures)
	}
	if c.Clio.RateLimitReserve < 0 {
		return bad("clio.rate_limit_reserve", "must not be negative")
	}
	switch c.Clio.Writeback.TaskPriority {
	case "High", "Normal", "Low":
	default:
		return bad("clio.writeback.task_priority", "want High, Normal or Low, got %q", c.Clio.Writeback.TaskPriority)
	}
	if d := c.Clio.Writeback.TaskDueDays; d < 0 || d > 365 {
		return bad("clio.writeback.task_due_days", "must be 0..365, got %d", d)
	}
	if r := c.Clio.Writeback.Reserve; r < 1 || r > 1000 {
		return bad("clio.writeback.reserve", "must be 1..1000, got %d", r)
	}
	if c.Clio.WebhookURL != "" {
		u, err := url.Parse(c.Clio.WebhookURL)
		h := ""
		if err == nil {
			h = strings.TrimSuffix(u.Hostname(), ".")
		}
		ip, _ := netip.ParseAddr(h)
		loop := h == "localhost" || (ip.IsValid() && ip.IsLoopback())
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loop)) {
			return bad("clio.webhook_url", "want an https URL (http:// only for a loopback host), got %q", c.Clio.WebhookURL)
		}
	}
	if c.Clio.Index && c.Clio.IndexPoll.D() < time.Minute {
		return bad("clio.index_poll", "must be at least 1m, got %s", c.Clio.IndexPoll.D())
	}
	if c.Clio.Index && c.Clio.IndexResync.D() < time.Hour {
		return bad("clio.index_resync", "must be at least 1h, got %s", c.Clio.IndexResync.D())
	}
	for d, intent := range c.IVR.Menu {
		if !digitKey.MatchString(d) {
			return bad("ivr.menu", "key %q is not a single digit, * or #", d)
		}
		if !intentRE.MatchString(intent) {
			return bad("ivr.menu."+d, "unknown intent %q (want responsible, operator, rule:NAME, extension:N or staff:NAME)", intent)
		}
	}
	if c.IVR.Operator != "" && !dialableDest(c.IVR.Operator) {
		return bad("ivr.operator", "%q is not a phone number or SIP URI", c.IVR.Operator)
	}
	allow, err := routing.ParseAllowList(c.Routing.AllowedDestinations)
	if err != nil {
		return bad("routing.allowed_destinations", "%v", err)
	}
	if c.IVR.Operator != "" && !allow.Allows(c.IVR.Operator) {
		return bad("ivr.operator", "%q matches none of routing.allowed_destinations %s", c.IVR.Operator, allow)
	}
	if c.IVR.Attempts < 1 || c.IVR.Attempts > 10 {
		return bad("ivr.attempts", "must be 1..10, got %d", c.IVR.Attempts)
	}
	if c.IVR.Timeout.D() <= 0 {
		return bad("ivr.timeout", "must be positive")
	}
	if err := oneOf(c.Transfer.Fallback, "bridge", "none"); err != nil {
		return bad("transfer.fallback", "%v", err)
	}
	if _, err := time.LoadLocation(c.Firm.TimeZone); err != nil || c.Firm.TimeZone == "" || strings.EqualFold(c.Firm.TimeZone, "local") {
		return bad("firm.time_zone", "unknown IANA time zone %q", c.Firm.TimeZone)
	}
	if err := oneOf(strings.ToLower(c.Log.Level), "debug", "info", "warn", "error"); err != nil {
		return bad("log.level", "%v", err)
	}
	if err := oneOf(c.Log.Format, "text", "json"); err != nil {
		return bad("log.format", "%v", err)
	}
	if c.HEP.Address != "" {
		if _, _, err := net.SplitHostPort(c.HEP.Address); err != nil {
			return bad("hep.address", "want HOST:PORT, got %q", c.HEP.Address)
		}
	}
	if err := c.Agent.validate(); err != nil {
		return err
	}
	return nil
}

var dialable = regexp.MustCompile(`^\+?[0-9]{2,15}$`)

func dialableDest(s string) bool {
	if dialable.MatchString(s) {
		return true
	}
	return checkSIPURI(s) == nil
}

func checkSIPURI(s string) error {
	if strings.ContainsAny(s, "\r\n \t<>\"") {
		return fmt.Errorf("%q contains spaces or forbidden characters", s)
	}
	if !strings.HasPrefix(s, "sip:") && !strings.HasPrefix(s, "sips:") {
		return fmt.Errorf("%q is not a sip: URI", s)
	}
	_, rest, _ := strings.Cut(s, ":")
	if rest == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

// ParseListen parses a listener URL "udp://HOST:PORT", "tcp://HOST:PORT" or
// "tls://HOST:PORT".
func ParseListen(s string) (network string, addr netip.AddrPort, err error) {
	network, hostport, ok := strings.Cut(s, "://")
	if !ok || (network != "udp" && network != "tcp" && network != "tls") {
		return "", netip.AddrPort{}, fmt.Errorf("%q: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", s)
	}
	addr, err = netip.ParseAddrPort(hostport)
	if err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("%q: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", s)
	}
	return network, addr, nil
}

// validate checks that a tls:// listener has its certificate and key and that
// the named files exist; their contents (PEM, key matching the certificate,
// expiry) are checked by serve and config check (sip.LoadTLSCertificate).
func (t SIPTLS) validate(tlsListener bool) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	if tlsListener && t.CertFile == "" {
		return bad("sip.tls.cert_file", "required with a tls:// listener in sip.listen (PEM certificate)")
	}
	if tlsListener && t.KeyFile == "" {
		return bad("sip.tls.key_file", "required with a tls:// listener in sip.listen (PEM private key)")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return bad("sip.tls", "cert_file and key_file go together")
	}
	for _, f := range []struct{ key, path string }{
		{"sip.tls.cert_file", t.CertFile}, {"sip.tls.key_file", t.KeyFile}, {"sip.tls.ca_file", t.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return bad(f.key, "%v", err)
		}
	}
	return nil
}

// validate checks the tokens, the Host allow-list and the loopback opt-in.
func (h HTTP) validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
	}
	if h.AgentToken != "" && h.AgentToken == h.Token {
		return bad("http.agent_token", "must differ from http.token (the agent token has fewer rights)")
	}
	for _, name := range h.AllowedHosts {
		host := name
		if hp, err := netip.ParseAddrPort(name); err == nil {
			host = hp.Addr().String()
		} else if hn, port, err := net.SplitHostPort(name); err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				return bad("http.allowed_hosts", "%q: bad port", name)
			}
			host = hn
		}
		if host == "" || strings.ContainsAny(host, "/@*? \t") || strings.Contains(host, "://") {
			return bad("http.allowed_hosts", "want NAME or NAME:PORT as in a Host header, got %q", name)
		}
	}
	if h.LoopbackOpen && h.Listen != "" {
		ap, err := netip.ParseAddrPort(h.Listen)
		if err == nil && !ap.Addr().Unmap().IsLoopback() {
			return bad("http.loopback_open", "only allowed when http.listen is a loopback address, not %s", h.Listen)
		}
	}
	return nil
}
