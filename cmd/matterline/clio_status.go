package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matterline/matterline/clio"
)

// `clio status` asks Clio, with one request (GET users/who_am_i.json?fields=id,name,email),
// whether it accepts the configured token, whose token it is and how much of the
// rate-limit window is left. The request goes through the clio.Client (bearer,
// one refresh after a 401 for OAuth tokens, request timeout) but not through the
// lookup Service's circuit breaker: an admin who asks must get Clio's answer.

// statusCheck is the outcome of the status request.
type statusCheck uint8

const (
	checkUnknown       statusCheck = iota
	checkOK                        // Clio answered who_am_i
	checkNotConnected              // no token to send
	checkTokenRejected             // 401, or an expired token whose refresh was refused
	checkUnreachable               // no HTTP answer: DNS, connect, TLS, timeout
	checkRateLimited               // 429
	checkFailed                    // another answer: 403, 5xx, a body that does not decode
)

func (c statusCheck) String() string {
	switch c {
	case checkOK:
		return "ok"
	case checkNotConnected:
		return "not_connected"
	case checkTokenRejected:
		return "token_rejected"
	case checkUnreachable:
		return "unreachable"
	case checkRateLimited:
		return "rate_limited"
	case checkFailed:
		return "error"
	}
	return "unknown"
}

// tokenSource is where the token of the check came from.
type tokenSource uint8

const (
	sourceNone   tokenSource = iota
	sourceConfig             // clio.access_token in the config file
	sourceEnv                // MATTERLINE_CLIO_ACCESS_TOKEN
	sourceOAuth              // stored in the database by `clio connect`
)

const envClioAccessToken = "MATTERLINE_CLIO_ACCESS_TOKEN"

func (s tokenSource) String() string {
	switch s {
	case sourceConfig:
		return "config"
	case sourceEnv:
		return "env"
	case sourceOAuth:
		return "oauth"
	}
	return "none"
}

func (s tokenSource) describe() string {
	switch s {
	case sourceConfig:
		return "static, from clio.access_token in the config file"
	case sourceEnv:
		return "static, from " + envClioAccessToken
	case sourceOAuth:
		return "OAuth, stored in the database by `matterline clio connect`"
	}
	return "none"
}

// clioStatusJSON is `clio status --json`. It never holds a token.
type clioStatusJSON struct {
	Connected bool   `json:"connected"` // Clio accepted the token just now
	Check     string `json:"check"`     // a statusCheck
	Error     string `json:"error,omitempty"`
	Hint      string `json:"hint,omitempty"`
	Mode      string `json:"mode"` // static_token | oauth | none
	Region    string `json:"region"`
	APIURL    string `json:"api_url"`

	User       *statusUserJSON `json:"user"`
	Token      statusTokenJSON `json:"token"`
	RateLimit  *rateJSON       `json:"rate_limit"`
	RetryAfter *int            `json:"retry_after_seconds,omitempty"`

	ClientID        string `json:"client_id,omitempty"`
	ClientSecretSet bool   `json:"client_secret_set"` // never the secret, nor part of it

	// From the last lookups of any matterline process on this database.
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
	LastOKAt     *time.Time `json:"last_ok_at,omitempty"`
	RetryUntil   *time.Time `json:"retry_until,omitempty"`
	CacheEntries int        `json:"cache_entries"`

	TokensSealed bool   `json:"tokens_sealed"`
	TokenError   string `json:"token_error,omitempty"`

	src tokenSource
}

type statusUserJSON struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type statusTokenJSON struct {
	Source string `json:"source"` // a tokenSource
	// Expiry is an RFC 3339 time (OAuth) or "unknown": a static token is an access
	// token issued elsewhere, matterline is not told when it ends.
	Expiry    string     `json:"expiry"`
	ExpiresAt *time.Time `json:"expires_at"`
	// Refreshed says the check refreshed an OAuth token (it was about to expire or
	// Clio rejected it).
	Refreshed       bool `json:"refreshed,omitempty"`
	HasRefreshToken bool `json:"has_refresh_token,omitempty"`
}

type rateJSON struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Reset     time.Time `json:"reset"`
	SeenAt    time.Time `json:"seen_at"`
	// From is "check" (this status request) or "last_lookup" (saved by lookups).
	From string `json:"from"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// statusTimeout bounds the whole check, an OAuth refresh included.
const statusTimeout = 15 * time.Second

// printClioStatus checks the Clio connection of cfg and prints the result, as
// text or as one JSON object. It returns an error (exit 1) when Clio did not
// accept the token, after printing.
func (c *cli) printClioStatus(ctx context.Context, asJSON bool) error {
	s := c.stdio
	env, err := c.openClioEnv(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.done()
	st, err := clioStatusOf(ctx, env)
	if err != nil {
		return err
	}
	if asJSON {
		err = writeJSONOut(s.out, st)
	} else {
		err = writeClioStatus(s.out, st, time.Now())
	}
	if err != nil {
		return err
	}
	if !st.Connected {
		return errors.New(st.Error)
	}
	return nil
}

// clioStatusOf gathers the local state and makes the check request. Its error is
// a local failure (database); Clio's answer is in the result.
func clioStatusOf(ctx context.Context, env *clioEnv) (clioStatusJSON, error) {
	d, c := env.deps, env.cfg.Clio
	st := clioStatusJSON{Mode: d.mode.String(), ClientID: c.ClientID, ClientSecretSet: c.ClientSecret != "",
		TokensSealed: d.storage.Sealed(), Token: statusTokenJSON{Source: sourceNone.String()}}
	if d.tokenErr != nil {
		st.TokenError = d.tokenErr.Error()
	}
	ep, err := clio.EndpointsFor(d.region, c.BaseURL)
	if err != nil {
		return st, err
	}
	st.APIURL = ep.API
	apiHost := hostOf(ep.API)
	st.Region = string(d.region)
	if r, ok := regionOfHost(apiHost); ok {
		st.Region = string(r) // requests go there, whatever the configuration says
	}

	state, err := d.storage.LoadState(ctx)
	if err != nil {
		return st, err
	}
	st.LastError, st.LastErrorAt, st.LastOKAt = state.LastError, timePtr(state.LastErrorAt), timePtr(state.LastOKAt)
	st.RetryUntil = timePtr(state.RetryUntil)
	if st.CacheEntries, err = d.storage.CacheSize(ctx); err != nil {
		return st, err
	}

	var before clio.StoredToken
	switch d.mode {
	case clioStatic:
		src := sourceConfig
		if v := os.Getenv(envClioAccessToken); v != "" && v == c.AccessToken {
			src = sourceEnv
		}
		st.src, st.Token = src, statusTokenJSON{Source: src.String(), Expiry: "unknown"}
	case clioOAuth:
		if before, err = d.conn.Stored(ctx); err != nil {
			return st, err
		}
		st.src, st.Token = sourceOAuth, statusTokenJSON{Source: sourceOAuth.String(), HasRefreshToken: before.RefreshToken != ""}
		if before.Region != "" && before.Region != clio.Region(st.Region) {
			st.Hint = fmt.Sprintf("the tokens were issued in region %s but requests go to %s", before.Region, apiHost)
		}
	default:
		st.Check = checkNotConnected.String()
		switch {
		case d.tokenErr != nil:
			st.Error = "clio not connected: " + d.tokenErr.Error()
			st.Hint = "set the key that sealed the tokens, or run `matterline clio connect` again"
		default:
			st.Error = "clio not connected"
			st.Hint = "run `matterline clio connect` (needs clio.client_id and clio.client_secret) " +
				"or set clio.access_token (or " + envClioAccessToken + ")"
		}
		st.RateLimit = savedRate(state.Rate)
		return st, nil
	}

	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	me, resp, err := d.client.Users.WhoAmI(cctx)
	check, reason := classifyCheck(err, apiHost)
	st.Check, st.Connected = check.String(), check == checkOK
	if check != checkOK {
		st.Error = reason
	}
	if me != nil {
		st.User = &statusUserJSON{ID: me.ID, Name: me.Name, Email: me.Email}
	}
	// A rejected token's window says nothing about the connection.
	if resp != nil && resp.Rate.Known && check != checkTokenRejected {
		r := resp.Rate
		st.RateLimit = &rateJSON{Limit: r.Limit, Remaining: r.Remaining, Reset: r.Reset.UTC(), SeenAt: r.At.UTC(), From: "check"}
	} else {
		st.RateLimit = savedRate(state.Rate)
	}
	var rl *clio.RateLimitError
	if errors.As(err, &rl) {
		secs := int((rl.RetryAfter + time.Second - 1) / time.Second)
		st.RetryAfter = &secs
	}

	switch d.mode {
	case clioOAuth:
		after, serr := d.conn.Stored(ctx)
		if serr != nil && !errors.Is(serr, clio.ErrNotConnected) {
			return st, serr
		}
		if serr == nil {
			st.Token.Refreshed = after.Updated.After(before.Updated)
			before = after
		}
		st.Token.ExpiresAt = timePtr(before.Expiry)
		st.Token.Expiry = "unknown"
		if st.Token.ExpiresAt != nil {
			st.Token.Expiry = st.Token.ExpiresAt.Format(time.RFC3339)
		}
		if check == checkTokenRejected {
			st.Hint = joinHint(st.Hint, "the refresh did not help: run `matterline clio connect` again")
		}
	case clioStatic:
		if check == checkTokenRejected {
			st.Hint = joinHint(st.Hint, "Clio does not accept clio.access_token ("+envClioAccessToken+" overrides it); "+
				"a token of another region is rejected too; or remove it and run `matterline clio connect`")
		}
	}
	return st, nil
}

func joinHint(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func savedRate(r clio.Rate) *rateJSON {
	if !r.Known {
		return nil
	}
	return &rateJSON{Limit: r.Limit, Remaining: r.Remaining, Reset: r.Reset.UTC(), SeenAt: r.At.UTC(), From: "last_lookup"}
}

// classifyCheck turns the error of the who_am_i request into an outcome and a
// one-line reason (no token in it: Clio's error bodies do not echo it).
func classifyCheck(err error, host string) (statusCheck, string) {
	var ae *clio.APIError
	var rl *clio.RateLimitError
	var ue *url.Error
	var ne net.Error
	switch {
	case err == nil:
		return checkOK, ""
	case errors.As(err, &rl):
		return checkRateLimited, fmt.Sprintf("rate limited by clio: retry after %s", rl.RetryAfter)
	case errors.As(err, &ae) && ae.Status == 401:
		return checkTokenRejected, "token rejected: " + apiReason(ae)
	case errors.Is(err, clio.ErrUnauthorized):
		// The token had expired and its refresh was refused before any request.
		reason := "token expired and its refresh was refused"
		if errors.As(err, &ae) {
			reason += ": " + apiReason(ae)
		}
		return checkTokenRejected, "token rejected: " + reason
	case errors.Is(err, clio.ErrNotConnected):
		return checkNotConnected, "clio not connected: the stored tokens were deleted meanwhile"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return checkUnreachable, fmt.Sprintf("could not reach clio at %s: no answer in time", host)
	case errors.As(err, &ae):
		return checkFailed, fmt.Sprintf("clio answered %d: %s", ae.Status, apiReason(ae))
	case errors.Is(err, clio.ErrBadResponse):
		return checkFailed, err.Error()
	case errors.As(err, &ue):
		return checkUnreachable, fmt.Sprintf("could not reach clio at %s: %v", host, ue.Err)
	}
	return checkFailed, err.Error()
}

func apiReason(ae *clio.APIError) string {
	switch {
	case ae.Type != "" && ae.Message != "":
		return ae.Type + ": " + ae.Message
	case ae.Type != "":
		return ae.Type
	case ae.Message != "":
		return ae.Message
	}
	return fmt.Sprintf("status %d", ae.Status)
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// regionOfHost names the Clio region whose host is host.
func regionOfHost(host string) (clio.Region, bool) {
	for _, r := range []clio.Region{clio.RegionUS, clio.RegionCA, clio.RegionEU, clio.RegionAU} {
		if strings.EqualFold(host, r.Host()) {
			return r, true
		}
	}
	return "", false
}

// writeClioStatus prints st as aligned "key: value" lines.
func writeClioStatus(out io.Writer, st clioStatusJSON, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	if st.Connected {
		row("connected", "yes")
	} else {
		row("connected", "no ("+st.Error+")")
	}
	if u := st.User; u != nil {
		who := fmt.Sprintf("%s (id %d", u.Name, u.ID)
		if u.Email != "" {
			who += ", " + u.Email
		}
		row("clio user", who+")")
	}
	host := hostOf(st.APIURL)
	if _, ok := regionOfHost(host); ok {
		row("region", fmt.Sprintf("%s (%s)", st.Region, host))
	} else {
		row("region", fmt.Sprintf("%s (configured; requests go to %s, not a Clio host)", st.Region, st.APIURL))
	}
	if src := st.src; src != sourceNone {
		desc := src.describe()
		if src == sourceOAuth && !st.Token.HasRefreshToken {
			desc += " (no refresh token)"
		}
		row("token", desc)
		switch {
		case st.Token.ExpiresAt != nil:
			exp := st.Token.ExpiresAt.Format(time.RFC3339) + " (" + relative(st.Token.ExpiresAt.Sub(now)) + ")"
			if st.Token.Refreshed {
				exp += ", refreshed by this check"
			}
			row("token expiry", exp)
		case src == sourceOAuth:
			row("token expiry", "unknown (Clio sent no expires_in)")
		default:
			row("token expiry", "unknown (a static token is never refreshed by matterline)")
		}
	}
	if r := st.RateLimit; r != nil {
		v := fmt.Sprintf("%d of %d requests left, window resets %s (%s)", r.Remaining, r.Limit,
			relative(r.Reset.Sub(now)), r.Reset.Format(time.RFC3339))
		if r.From != "check" {
			v += ", as seen by a lookup at " + r.SeenAt.Format(time.RFC3339)
		}
		row("rate limit", v)
	}
	if st.RetryAfter != nil {
		row("retry after", fmt.Sprintf("%ds", *st.RetryAfter))
	}
	row("client id", st.ClientID)
	if st.ClientSecretSet {
		row("client secret", "set")
	}
	if st.LastError != "" {
		at := ""
		if st.LastErrorAt != nil {
			at = " at " + st.LastErrorAt.Format(time.RFC3339)
		}
		row("last lookup error", st.LastError+at)
	}
	if st.LastOKAt != nil {
		row("last lookup success", st.LastOKAt.Format(time.RFC3339))
	}
	if st.RetryUntil != nil && st.RetryUntil.After(now) {
		row("lookups paused until", st.RetryUntil.Format(time.RFC3339))
	}
	row("cached lookups", fmt.Sprint(st.CacheEntries))
	row("tokens sealed", map[bool]string{true: "yes", false: "no (set " + clio.EnvSecretKey + ")"}[st.TokensSealed])
	row("token error", st.TokenError)
	row("hint", st.Hint)
	return w.Flush()
}

// relative says "in 29 days" / "3h ago" for d rounded to a readable unit.
func relative(d time.Duration) string {
	abs := d.Abs()
	var s string
	switch {
	case abs >= 48*time.Hour:
		s = fmt.Sprintf("%d days", int(abs/(24*time.Hour)))
	case abs >= 2*time.Hour:
		s = fmt.Sprintf("%dh", int(abs/time.Hour))
	case abs >= 2*time.Minute:
		s = fmt.Sprintf("%dm", int(abs/time.Minute))
	default:
		s = fmt.Sprintf("%ds", int(abs.Round(time.Second)/time.Second))
	}
	if d < 0 {
		return s + " ago"
	}
	return "in " + s
}
