package clio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// refreshSkew is how long before expiry an access token is refreshed.
const refreshSkew = 2 * time.Minute

// ConnectionOptions configures NewConnection.
type ConnectionOptions struct {
	Region       Region
	BaseURL      string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Storage      *Storage
	HTTPClient   *http.Client
	Logger       *slog.Logger
	Now          func() time.Time
}

// Connection is the OAuth connection to Clio: authorize URL, code exchange,
// stored tokens and their refresh. It implements Authorizer.
type Connection struct {
	cfg     oauth2.Config
	ep      Endpoints
	region  Region
	storage *Storage
	hc      *http.Client
	log     *slog.Logger
	now     func() time.Time

	mu  sync.Mutex
	tok *StoredToken // nil until loaded
}

// NewConnection returns a Connection; it does not touch the network.
func NewConnection(o ConnectionOptions) (*Connection, error) {
	if o.Storage == nil {
		return nil, errors.New("clio: connection needs storage")
	}
	region := o.Region
	if region == "" {
		region = RegionUS
	}
	ep, err := EndpointsFor(region, o.BaseURL)
	if err != nil {
		return nil, err
	}
	c := &Connection{
		cfg: oauth2.Config{
			ClientID:     o.ClientID,
			ClientSecret: o.ClientSecret,
			RedirectURL:  o.RedirectURL,
			Endpoint: oauth2.Endpoint{
				AuthURL: ep.AuthURL, TokenURL: ep.TokenURL, AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		ep: ep, region: region, storage: o.Storage, hc: o.HTTPClient, log: o.Logger, now: o.Now,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Region returns the connection's region.
func (c *Connection) Region() Region { return c.region }

// RedirectURL returns the OAuth redirect URI in use.
func (c *Connection) RedirectURL() string { return c.cfg.RedirectURL }

// NewState returns a random OAuth state value.
func NewState() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("clio oauth: random state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// AuthCodeURL is the authorize URL for state (with redirect_on_decline=true, so a
// refusal comes back to the callback as error=access_denied).
func (c *Connection) AuthCodeURL(state string) string {
	return c.cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("redirect_on_decline", "true"))
}

func (c *Connection) oauthCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.hc)
}

// Exchange trades an authorization code for tokens and stores them.
func (c *Connection) Exchange(ctx context.Context, code string) error {
	if c.cfg.ClientID == "" || c.cfg.ClientSecret == "" {
		return errors.New("clio oauth: clio.client_id and clio.client_secret are required")
	}
	t, err := c.cfg.Exchange(c.oauthCtx(ctx), code)
	if err != nil {
		return fmt.Errorf("clio oauth: exchange code: %w", oauthErr(err))
	}
	st := StoredToken{
		Region: c.region, AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		TokenType: t.TokenType, Expiry: t.Expiry, Updated: c.now(),
	}
	if err := c.storage.SaveToken(ctx, st); err != nil {
		return err
	}
	c.mu.Lock()
	c.tok = &st
	c.mu.Unlock()
	c.log.Info("clio connected", "region", c.region, "expiry", t.Expiry.UTC().Format(time.RFC3339))
	return nil
}

// SetAccount records who the token belongs to (from who_am_i).
func (c *Connection) SetAccount(ctx context.Context, u *User) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return err
	}
	c.tok.AccountID, c.tok.AccountName = u.ID, u.Name
	return c.storage.SaveToken(ctx, *c.tok)
}

// Stored returns a copy of the stored token (secrets included: do not log it).
func (c *Connection) Stored(ctx context.Context) (StoredToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return StoredToken{}, err
	}
	return *c.tok, nil
}

func (c *Connection) loadLocked(ctx context.Context) error {
	if c.tok != nil {
		return nil
	}
	t, err := c.storage.LoadToken(ctx)
	if err != nil {
		return err
	}
	c.tok = &t
	return nil
}

// AccessToken implements Authorizer: it returns the stored access token,
// refreshing it first when it expires within two minutes.
func (c *Connection) AccessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return "", err
	}
	if !c.tok.Expiry.IsZero() && c.now().Add(refreshSkew).After(c.tok.Expiry) && c.tok.RefreshToken != "" {
		if err := c.refreshLocked(ctx); err != nil {
			// An access token that has not expired yet is still worth a try.
			if c.now().After(c.tok.Expiry) {
				return "", err
			}
		}
	}
	return c.tok.AccessToken, nil
}

// Refresh implements Authorizer: after a 401 for rejected it first re-reads the
// stored token (another process may have connected, refreshed or disconnected),
// then refreshes once unless another request already did, and reports whether a
// new token is available.
func (c *Connection) Refresh(ctx context.Context, rejected string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tok = nil
	if err := c.loadLocked(ctx); err != nil {
		return false, err
	}
	if c.tok.AccessToken != rejected {
		return true, nil // refreshed or reconnected meanwhile
	}
	if c.tok.RefreshToken == "" {
		return false, nil
	}
	if err := c.refreshLocked(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// refreshLocked runs the refresh_token grant and stores the result. A response
// without a refresh token keeps the old one; a new one replaces it.
func (c *Connection) refreshLocked(ctx context.Context) error {
	old := c.tok.RefreshToken
	t, err := c.cfg.TokenSource(c.oauthCtx(ctx), &oauth2.Token{RefreshToken: old}).Token()
	if err != nil {
		err = oauthErr(err)
		c.log.Warn("clio token refresh failed", "err", err)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
			// invalid_grant / invalid_client: only a new connection helps.
			return fmt.Errorf("%w: refresh: %w", ErrUnauthorized, err)
		}
		return fmt.Errorf("clio oauth: refresh: %w", err)
	}
	nt := *c.tok
	nt.AccessToken, nt.TokenType, nt.Expiry, nt.Updated = t.AccessToken, cmpOr(t.TokenType, "bearer"), t.Expiry, c.now()
	rotated := t.RefreshToken != "" && t.RefreshToken != old
	if t.RefreshToken != "" {
		nt.RefreshToken = t.RefreshToken
	}
	if err := c.storage.SaveToken(ctx, nt); err != nil {
		return err
	}
	c.tok = &nt
	c.log.Info("clio token refreshed", "rotated", rotated, "expiry", t.Expiry.UTC().Format(time.RFC3339))
	return nil
}

// Disconnect revokes the token at Clio (POST /oauth/deauthorize) and deletes it
// locally. The local delete happens even when the revoke fails; the revoke error
// is returned.
func (c *Connection) Disconnect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return err
	}
	var revokeErr error
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ep.Deauthorize, nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+c.tok.AccessToken)
		var resp *http.Response
		resp, err = c.hc.Do(req)
		if err == nil {
			err = CheckResponse(resp)
			resp.Body.Close()
		}
	}
	if err != nil {
		revokeErr = fmt.Errorf("clio oauth: deauthorize: %w", err)
	}
	if err := c.storage.DeleteToken(ctx); err != nil {
		return errors.Join(revokeErr, err)
	}
	c.tok = nil
	return revokeErr
}

// oauthErr strips the response body (which might echo secrets) from oauth2's
// RetrieveError and keeps the error code.
func oauthErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &APIError{Status: status, Type: re.ErrorCode, Message: truncate(re.ErrorDescription, 200)}
	}
	return err
}
