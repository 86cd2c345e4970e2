package sip

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// sessionTimerReq is what an INVITE or UPDATE says about RFC 4028 session timers.
type sessionTimerReq struct {
	expires   time.Duration // Session-Expires delta, 0 when absent
	refresher string        // "uac", "uas" or ""
	minSE     time.Duration // Min-SE, 0 when absent
	supported bool          // "timer" in Supported or Require
}

// unsupportedRequire returns the Require options (RFC 3261 §20.32) we do not
// support; "timer" is the only one we do.
func unsupportedRequire(require []string) []string {
	var out []string
	for _, v := range require {
		for _, opt := range strings.Split(v, ",") {
			opt = strings.TrimSpace(opt)
			if opt != "" && !strings.EqualFold(opt, "timer") && len(out) < 8 {
				out = append(out, opt)
			}
		}
	}
	return out
}

// maxSessionExpires caps absurd intervals (a day).
const maxSessionExpires = 24 * time.Hour

// parseSessionTimer reads Session-Expires (compact x), Min-SE, Supported (k) and
// Require. Malformed values wrap ErrBadRequest (RFC 4028 §4: 400).
func parseSessionTimer(se, minSE, supported, require []string) (sessionTimerReq, error) {
	var r sessionTimerReq
	if len(se) > 0 {
		d, params, err := parseDeltaSeconds(se[0])
		if err != nil {
			return r, fmt.Errorf("session-expires %q: %w", se[0], err)
		}
		r.expires = d
		for _, p := range params {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "refresher") {
				r.refresher = strings.ToLower(strings.TrimSpace(v))
			}
		}
	}
	if len(minSE) > 0 {
		d, _, err := parseDeltaSeconds(minSE[0])
		if err != nil {
			return r, fmt.Errorf("min-se %q: %w", minSE[0], err)
		}
		r.minSE = d
	}
	for _, v := range append(append([]string(nil), supported...), require...) {
		for _, opt := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "timer") {
				r.supported = true
			}
		}
	}
	return r, nil
}

func parseDeltaSeconds(v string) (time.Duration, []string, error) {
	parts := strings.Split(v, ";")
	n, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 32)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: bad delta-seconds", ErrBadRequest)
	}
	d := time.Duration(n) * time.Second
	if d > maxSessionExpires {
		d = maxSessionExpires
	}
	return d, parts[1:], nil
}

// negotiate returns the session interval for the 2xx (0 = no session timer). A
// requested interval below our Min-SE is an *IntervalTooSmallError (RFC 4028 §6:
// 422). Intervals are only run when the caller supports timers, so that the caller
// is the refresher (refresher=uac).
func (r sessionTimerReq) negotiate(ours time.Duration) (time.Duration, error) {
	if r.expires > 0 && r.expires < MinSE {
		return 0, &IntervalTooSmallError{Requested: r.expires, MinSE: MinSE}
	}
	if !r.supported {
		return 0, nil
	}
	if r.expires > 0 {
		return r.expires, nil
	}
	return max(ours, r.minSE, MinSE), nil
}

func sessionTimerFromRequest(req *gosip.Request) (sessionTimerReq, error) {
	return parseSessionTimer(
		headerValues(req, "Session-Expires", "x"),
		headerValues(req, "Min-SE"),
		headerValues(req, "Supported", "k"),
		headerValues(req, "Require"),
	)
}

// sessionTimerHeaders are the RFC 4028 §9 headers of our 2xx.
func sessionTimerHeaders(interval time.Duration) []gosip.Header {
	if interval <= 0 {
		return nil
	}
	return []gosip.Header{
		gosip.NewHeader("Session-Expires", strconv.Itoa(int(interval/time.Second))+";refresher=uac"),
		gosip.NewHeader("Require", "timer"),
	}
}

// expireAfter is when the session ends without a refresh: RFC 4028 §10, the
// interval minus min(32s, interval/3).
func expireAfter(interval time.Duration) time.Duration {
	return interval - min(32*time.Second, interval/3)
}
