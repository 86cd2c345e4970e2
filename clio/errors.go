package clio

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrUnauthorized means Clio rejected the token (401) and a refresh did not
	// help: an admin must connect Clio again.
	ErrUnauthorized = errors.New("clio authorization needed")
	// ErrRateLimited is matched by every *RateLimitError.
	ErrRateLimited = errors.New("clio rate limit reached")
	// ErrBadResponse means a 2xx response could not be used (bad JSON, too large).
	ErrBadResponse = errors.New("clio bad response")
	// ErrBodyTooLarge is a response body over the client's limit; it matches ErrBadResponse.
	ErrBodyTooLarge = fmt.Errorf("%w: body too large", ErrBadResponse)
	// ErrNotConnected means no token is stored and no static token is configured.
	ErrNotConnected = errors.New("clio not connected")
	// ErrCircuitOpen is returned while the circuit breaker skips Clio.
	ErrCircuitOpen = errors.New("clio circuit open")
	// ErrBadState is an OAuth callback whose state is unknown, used or expired.
	ErrBadState = errors.New("clio oauth: bad or expired state")
	// ErrAccessDenied is an OAuth callback with error=access_denied.
	ErrAccessDenied = errors.New("clio oauth: access denied by user")
)

// APIError is a non-2xx response from Clio other than 429. Type is the error type
// of Clio's `{"error":{"type","message"}}` body (InvalidFields, ForbiddenError,
// ArgumentError, NotFound) or the OAuth error code of a 401 body (invalid_token).
type APIError struct {
	Status  int
	Type    string
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("clio api: status %d", e.Status)
	if e.Type != "" {
		s += " " + e.Type
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap makes a 401 match ErrUnauthorized.
func (e *APIError) Unwrap() error {
	if e.Status == 401 {
		return ErrUnauthorized
	}
	return nil
}

// Temporary reports whether retrying later may help (5xx).
func (e *APIError) Temporary() bool { return e.Status >= 500 }

// RateLimitError is a 429. RetryAfter comes from the Retry-After header (or the
// X-RateLimit-Reset time when the header is missing). The body is not used: its
// type string is not documented.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("clio rate limit reached: retry after %s", e.RetryAfter)
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
