package sip

import (
	"net/netip"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// sourceAddr is the transport source address of req (not its Via).
func sourceAddr(req *gosip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.MessageData.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trusted reports whether req came from a trusted source (Config.TrustedSources).
func (s *Server) trusted(req *gosip.Request) bool {
	return addrTrusted(sourceAddr(req), s.cfg.TrustedSources)
}

func addrTrusted(a netip.Addr, prefixes []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// withheld reports user parts that mean "no caller ID" (RFC 3323 §4.1.1.3
// anonymous, and common PBX spellings).
func withheld(user string) bool {
	switch strings.ToLower(user) {
	case "anonymous", "restricted", "unavailable", "unknown", "withheld", "private", "blocked":
		return true
	}
	return false
}

// callerNumber extracts the caller's number: the user part of P-Asserted-Identity
// (RFC 3325, only honoured from a trusted source) else of From. Withheld or
// anonymous callers give "". The result has no control characters and at most 64
// bytes.
func callerNumber(from string, pai []string, trusted bool) string {
	if trusted {
		for _, v := range pai {
			// A PAI may carry a sip/sips and a tel URI, comma separated.
			for _, part := range splitAddressList(v) {
				if n, ok := userOf(part); ok {
					return n
				}
			}
		}
	}
	n, _ := userOf(from)
	return n
}

// userOf returns the cleaned user part of a name-addr/addr-spec and whether it is
// a usable number (not withheld, not empty).
func userOf(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 1024 {
		return "", false
	}
	var uri gosip.Uri
	params := gosip.NewParams()
	if _, err := gosip.ParseAddressValue(v, &uri, &params); err != nil {
		return "", false
	}
	user := uri.User
	if strings.EqualFold(uri.Scheme, "tel") {
		user = uri.Host
		if user == "" {
			user = uri.Raw()
		}
		if i := strings.IndexByte(user, ';'); i >= 0 {
			user = user[:i]
		}
	}
	if strings.EqualFold(uri.Host, "anonymous.invalid") {
		return "", false
	}
	user = cleanNumber(user)
	if user == "" || withheld(user) {
		return "", false
	}
	return user, true
}

// cleanNumber drops control characters and spaces and caps the length.
func cleanNumber(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// splitAddressList splits a header value on commas outside quotes and <>.
func splitAddressList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// calledNumber is the user part of the Request-URI (else of To).
func calledNumber(req *gosip.Request) string {
	if u := cleanNumber(req.Recipient.User); u != "" {
		return u
	}
	if to := req.To(); to != nil {
		return cleanNumber(to.Address.User)
	}
	return ""
}

func headerValues(req *gosip.Request, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range req.GetHeaders(n) {
			out = append(out, h.Value())
		}
	}
	return out
}
