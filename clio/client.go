package clio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultAPIVersion is sent as X-API-VERSION on every request: the API is
	// pinned so that units cannot change under matterline (a TimeEntry's
	// quantity is in seconds in this version; up to 4.0.3 it was hours).
	DefaultAPIVersion = "4.0.10"
	// DefaultMaxBody caps a response body read.
	DefaultMaxBody = 4 << 20
	// DefaultRequestTimeout bounds one request when ClientOptions.RequestTimeout is zero.
	DefaultRequestTimeout = 2 * time.Second
	maxErrorBody          = 64 << 10
)

// Region is a Clio data region; each has its own host, app credentials and tokens.
type Region string

const (
	RegionUS Region = "us"
	RegionCA Region = "ca"
	RegionEU Region = "eu"
	RegionAU Region = "au"
)

// Host returns the region's host (app.clio.com, ca.app.clio.com, ...); "" for an
// unknown region.
func (r Region) Host() string {
	switch r {
	case RegionUS, "":
		return "app.clio.com"
	case RegionCA, RegionEU, RegionAU:
		return string(r) + ".app.clio.com"
	}
	return ""
}

// ParseRegion accepts us, ca, eu, au in any case.
func ParseRegion(s string) (Region, error) {
	r := Region(strings.ToLower(strings.TrimSpace(s)))
	if r == "" {
		return RegionUS, nil
	}
	if r.Host() == "" {
		return "", fmt.Errorf("clio: unknown region %q (want us, ca, eu or au)", s)
	}
	return r, nil
}

// Endpoints are the URLs of one Clio installation.
type Endpoints struct {
	API         string // https://HOST/api/v4/ (with the trailing slash)
	AuthURL     string // https://HOST/oauth/authorize
	TokenURL    string // https://HOST/oauth/token
	Deauthorize string // https://HOST/oauth/deauthorize
}

// EndpointsFor returns the endpoints of region, or of baseURL when it is set
// (tests, the demo, proxies): baseURL replaces the scheme and host of both the API
// and OAuth URLs.
func EndpointsFor(region Region, baseURL string) (Endpoints, error) {
	root := "https://" + region.Host()
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Endpoints{}, fmt.Errorf("clio: bad base url %q", baseURL)
		}
		root = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	} else if region.Host() == "" {
		return Endpoints{}, fmt.Errorf("clio: unknown region %q", region)
	}
	return Endpoints{
		API:         root + "/api/v4/",
		AuthURL:     root + "/oauth/authorize",
		TokenURL:    root + "/oauth/token",
		Deauthorize: root + "/oauth/deauthorize",
	}, nil
}

// Authorizer supplies the bearer token of each request.
type Authorizer interface {
	// AccessToken returns a usable access token (refreshing one about to expire).
	AccessToken(ctx context.Context) (string, error)
	// Refresh is called once after a 401 for the rejected token. It reports whether
	// a new token is available; false means the 401 stands.
	Refresh(ctx context.Context, rejected string) (bool, error)
}

// StaticToken is a fixed access token (clio.access_token); it cannot refresh.
type StaticToken string

func (t StaticToken) AccessToken(context.Context) (string, error) {
	if t == "" {
		return "", ErrNotConnected
	}
	return string(t), nil
}

func (StaticToken) Refresh(context.Context, string) (bool, error) { return false, nil }

// Rate is the rate-limit state from the last response's X-RateLimit-* headers.
type Rate struct {
	Known     bool
	Limit     int
	Remaining int
	Reset     time.Time
	// At is when the headers were seen.
	At time.Time
}

// Response wraps a Clio response with its paging cursor and rate headers.
type Response struct {
	*http.Response
	// NextPage is meta.paging.next: the absolute URL of the next page, "" on the last.
	NextPage string
	// Rate is this response's X-RateLimit-* headers; Known is false without them.
	Rate Rate
}

// ClientOptions configures NewClient; zero values mean defaults.
type ClientOptions struct {
	Region  Region
	BaseURL string
	Auth    Authorizer
	// HTTPClient sends requests (its Timeout should be zero: RequestTimeout applies).
	HTTPClient     *http.Client
	APIVersion     string
	RequestTimeout time.Duration
	MaxBody        int64
	Now            func() time.Time
}

// Client talks to the Clio Manage API v4.
type Client struct {
	hc             *http.Client
	auth           Authorizer
	endpoints      Endpoints
	apiBase        *url.URL
	apiVersion     string
	requestTimeout time.Duration
	maxBody        int64
	now            func() time.Time

	mu   sync.Mutex
	rate Rate

	Contacts *ContactsService
	Matters  *MattersService
	Users    *UsersService

	// Write-back (resources_write.go).
	Communications *CommunicationsService
	Activities     *ActivitiesService
	Tasks          *TasksService
	Documents      *DocumentsService
}

// NewClient returns a Client for the options' region or base URL.
func NewClient(o ClientOptions) (*Client, error) {
	ep, err := EndpointsFor(o.Region, o.BaseURL)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(ep.API)
	c := &Client{
		hc: o.HTTPClient, auth: o.Auth, endpoints: ep, apiBase: base,
		apiVersion: o.APIVersion, requestTimeout: o.RequestTimeout, maxBody: o.MaxBody, now: o.Now,
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.auth == nil {
		c.auth = StaticToken("")
	}
	if c.apiVersion == "" {
		c.apiVersion = DefaultAPIVersion
	}
	if c.requestTimeout <= 0 {
		c.requestTimeout = DefaultRequestTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBody
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.Contacts = &ContactsService{c}
	c.Matters = &MattersService{c}
	c.Users = &UsersService{c}
	c.Communications = &CommunicationsService{c}
	c.Activities = &ActivitiesService{c}
	c.Tasks = &TasksService{c}
	c.Documents = &DocumentsService{c}
	return c, nil
}

// Endpoints returns the client's URLs.
func (c *Client) Endpoints() Endpoints { return c.endpoints }

// Rate returns the rate-limit state of the last response.
func (c *Client) Rate() Rate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// apiURL resolves a path like "contacts.json" against the API base.
func (c *Client) apiURL(path string, q url.Values) string {
	u := c.apiBase.ResolveReference(&url.URL{Path: path})
	u.RawQuery = q.Encode()
	return u.String()
}

// sameOrigin reports whether rawURL points at the API's scheme and host, so that a
// bearer token is never sent elsewhere by following a next-page URL.
func (c *Client) sameOrigin(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Scheme == c.apiBase.Scheme && u.Host == c.apiBase.Host
}

// get fetches rawURL (absolute) and decodes the JSON body into v.
func (c *Client) get(ctx context.Context, rawURL string, v any) (*Response, error) {
	return c.do(ctx, http.MethodGet, rawURL, nil, v)
}

// do sends one request with the bearer token, retrying once after a 401 when the
// Authorizer can refresh. Each attempt is bounded by the request timeout, body
// read included.
func (c *Client) do(ctx context.Context, method, rawURL string, body []byte, v any) (*Response, error) {
	tok, err := c.auth.AccessToken(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.attempt(ctx, method, rawURL, tok, body, v)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		ok, rerr := c.auth.Refresh(ctx, tok)
		if rerr != nil {
			if errors.Is(rerr, ErrUnauthorized) || errors.Is(rerr, ErrNotConnected) {
				// Keep Clio's 401 first in the chain: errors.As finds its reason.
				return resp, fmt.Errorf("%w; refresh failed: %w", err, rerr)
			}
			return resp, fmt.Errorf("clio: refresh after 401: %w", rerr)
		}
		if !ok {
			return resp, err
		}
		if tok, err = c.auth.AccessToken(ctx); err != nil {
			return nil, err
		}
		resp, err = c.attempt(ctx, method, rawURL, tok, body, v)
	}
	return resp, err
}

func (c *Client) attempt(ctx context.Context, method, rawURL, tok string, body []byte, v any) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("clio: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-API-VERSION", c.apiVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("clio: %s %s: %w", method, req.URL.Path, err)
	}
	defer hr.Body.Close()
	resp := &Response{Response: hr, Rate: c.recordRate(hr.Header)}
	if err := CheckResponse(hr); err != nil {
		var rl *RateLimitError
		if errors.As(err, &rl) && rl.RetryAfter <= 0 && resp.Rate.Known {
			rl.RetryAfter = max(resp.Rate.Reset.Sub(c.now()), time.Second)
		}
		return resp, err
	}
	if v == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(hr.Body, c.maxBody))
		return resp, nil
	}
	data, err := readCapped(hr.Body, c.maxBody)
	if err != nil {
		return resp, fmt.Errorf("clio: %s %s: %w", method, req.URL.Path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return resp, fmt.Errorf("clio: %s %s: %w: %w", method, req.URL.Path, ErrBadResponse, err)
	}
	if p, ok := v.(interface{ nextPage() string }); ok {
		resp.NextPage = p.nextPage()
	}
	return resp, nil
}

// readCapped reads at most limit bytes and fails with ErrBodyTooLarge beyond it.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w (over %d bytes)", ErrBodyTooLarge, limit)
	}
	return data, nil
}

// recordRate reads a response's rate headers and, when it has them, makes them
// the client's last known rate.
func (c *Client) recordRate(h http.Header) Rate {
	rem, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	if err1 != nil {
		return Rate{}
	}
	r := Rate{Known: true, Remaining: rem, At: c.now()}
	r.Limit, _ = strconv.Atoi(h.Get("X-RateLimit-Limit"))
	if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
		r.Reset = time.Unix(reset, 0)
	}
	c.mu.Lock()
	c.rate = r
	c.mu.Unlock()
	return r
}

// CheckResponse returns nil for a 2xx response and otherwise a typed error: a
// *RateLimitError for 429 (keyed on the status and Retry-After, never the body),
// an *APIError for the rest (401 matches ErrUnauthorized). At most 64 KiB of an
// error body is read.
func CheckResponse(r *http.Response) error {
	if r.StatusCode >= 200 && r.StatusCode <= 299 {
		return nil
	}
	if r.StatusCode == http.StatusTooManyRequests {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxErrorBody))
		return &RateLimitError{RetryAfter: parseRetryAfter(r.Header.Get("Retry-After"))}
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	e := &APIError{Status: r.StatusCode}
	var body struct {
		Error json.RawMessage `json:"error"`
		Desc  string          `json:"error_description"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Error) > 0 {
		var obj struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		var code string
		switch {
		case json.Unmarshal(body.Error, &obj) == nil:
			e.Type, e.Message = obj.Type, obj.Message
		case json.Unmarshal(body.Error, &code) == nil:
			e.Type, e.Message = code, body.Desc
		}
	}
	if e.Message == "" && e.Type == "" {
		e.Message = http.StatusText(r.StatusCode)
	}
	e.Message = truncate(e.Message, 200)
	return e
}

func parseRetryAfter(s string) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(s); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
