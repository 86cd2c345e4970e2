package clio

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Paging is the meta object of a list response.
type Paging struct {
	Paging struct {
		Next string `json:"next,omitempty"`
	} `json:"paging"`
	Records *int `json:"records,omitempty"`
}

type listBody[T any] struct {
	Data []T    `json:"data"`
	Meta Paging `json:"meta"`
}

func (b *listBody[T]) nextPage() string { return b.Meta.Paging.Next }

type itemBody[T any] struct {
	Data T `json:"data"`
}

// PhoneNumber is one of a contact's numbers, stored as free text.
type PhoneNumber struct {
	ID      int64  `json:"id,omitempty"`
	Number  string `json:"number"`
	Name    string `json:"name,omitempty"` // Work, Home, Mobile, ...
	Primary bool   `json:"primary,omitempty"`
}

// Contact is a Clio person or company.
type Contact struct {
	ID           int64         `json:"id"`
	Name         string        `json:"name,omitempty"`
	Type         string        `json:"type,omitempty"` // Person | Company
	PhoneNumbers []PhoneNumber `json:"phone_numbers,omitempty"`
}

// User is a Clio user (firm staff), also the shape of a matter's user fields.
type User struct {
	ID               int64  `json:"id"`
	Name             string `json:"name,omitempty"`
	FirstName        string `json:"first_name,omitempty"`
	LastName         string `json:"last_name,omitempty"`
	Email            string `json:"email,omitempty"`
	PhoneNumber      string `json:"phone_number,omitempty"`
	Enabled          *bool  `json:"enabled,omitempty"`
	SubscriptionType string `json:"subscription_type,omitempty"`
}

// Matter is a Clio matter. Status comes capitalized (Open, Pending, Closed); any
// of the user fields may be null.
type Matter struct {
	ID                  int64     `json:"id"`
	DisplayNumber       string    `json:"display_number,omitempty"`
	Description         string    `json:"description,omitempty"`
	Status              string    `json:"status,omitempty"`
	UpdatedAt           Timestamp `json:"updated_at,omitzero"`
	Client              *Contact  `json:"client,omitempty"`
	ResponsibleStaff    *User     `json:"responsible_staff,omitempty"`
	ResponsibleAttorney *User     `json:"responsible_attorney,omitempty"`
	OriginatingAttorney *User     `json:"originating_attorney,omitempty"`
}

// Timestamp is a Clio time (ISO 8601 with offset). Null, empty or unreadable
// values decode as the zero time instead of failing the whole response.
type Timestamp struct{ time.Time }

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	t.Time = time.Time{}
	return nil
}

// MatterStatus is a matter status as sent in the status filter (lowercase).
type MatterStatus string

const (
	MatterOpen    MatterStatus = "open"
	MatterPending MatterStatus = "pending"
	MatterClosed  MatterStatus = "closed"
)

// ParseMatterStatus accepts open, pending, closed in any case.
func ParseMatterStatus(s string) (MatterStatus, error) {
	switch m := MatterStatus(strings.ToLower(strings.TrimSpace(s))); m {
	case MatterOpen, MatterPending, MatterClosed:
		return m, nil
	}
	return "", fmt.Errorf("clio: unknown matter status %q", s)
}

// Default field lists: Clio returns only id and etag without `fields`.
const (
	ContactFields = "id,name,type,phone_numbers{number,name}"
	userSubFields = "{id,name,email,phone_number}"
	MatterFields  = "id,display_number,description,status,updated_at," +
		"responsible_staff" + userSubFields + ",responsible_attorney" + userSubFields +
		",originating_attorney" + userSubFields
	UserFields = "id,name,first_name,last_name,email,phone_number,enabled,subscription_type"
)

// ListOptions are the common list parameters. Zero values are not sent, except
// Fields, which defaults per resource.
type ListOptions struct {
	Fields string
	Limit  int
	Order  string
}

func (o ListOptions) values(defFields string) url.Values {
	q := url.Values{}
	q.Set("fields", cmpOr(o.Fields, defFields))
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Order != "" {
		q.Set("order", o.Order)
	}
	return q
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ContactsService is GET /api/v4/contacts.json.
type ContactsService struct{ c *Client }

// ContactListOptions filter contacts. Clio has no phone filter: Query is a
// substring search over names, emails, addresses, phone strings as typed, ...
type ContactListOptions struct {
	ListOptions
	Query string
	Type  string // Person | Company; empty = both
}

// List returns the first page; follow Response.NextPage with ListNext.
func (s *ContactsService) List(ctx context.Context, o ContactListOptions) ([]Contact, *Response, error) {
	if o.Order == "" {
		o.Order = "id(asc)"
	}
	q := o.values(ContactFields)
	if o.Query != "" {
		q.Set("query", o.Query)
	}
	if o.Type != "" {
		q.Set("type", o.Type)
	}
	return list[Contact](ctx, s.c, s.c.apiURL("contacts.json", q))
}

// ListNext fetches the page at next (meta.paging.next, used verbatim).
func (s *ContactsService) ListNext(ctx context.Context, next string) ([]Contact, *Response, error) {
	return listNext[Contact](ctx, s.c, next)
}

// MattersService is GET /api/v4/matters.json.
type MattersService struct{ c *Client }

// MatterListOptions filter matters. Status is sent lowercase as a comma list;
// without it closed matters come back too.
type MatterListOptions struct {
	ListOptions
	ClientID int64
	Status   []MatterStatus
}

// List returns the first page of matters.
func (s *MattersService) List(ctx context.Context, o MatterListOptions) ([]Matter, *Response, error) {
	q := o.values(MatterFields)
	if o.ClientID != 0 {
		q.Set("client_id", strconv.FormatInt(o.ClientID, 10))
	}
	if len(o.Status) > 0 {
		ss := make([]string, len(o.Status))
		for i, st := range o.Status {
			ss[i] = strings.ToLower(string(st))
		}
		q.Set("status", strings.Join(ss, ","))
	}
	return list[Matter](ctx, s.c, s.c.apiURL("matters.json", q))
}

// ListNext fetches the page at next.
func (s *MattersService) ListNext(ctx context.Context, next string) ([]Matter, *Response, error) {
	return listNext[Matter](ctx, s.c, next)
}

// UsersService is GET /api/v4/users.json and users/who_am_i.json.
type UsersService struct{ c *Client }

// List returns the first page of users (limit up to 2000).
func (s *UsersService) List(ctx context.Context, o ListOptions) ([]User, *Response, error) {
	if o.Limit == 0 {
		o.Limit = 2000
	}
	return list[User](ctx, s.c, s.c.apiURL("users.json", o.values(UserFields)))
}

// ListNext fetches the page at next.
func (s *UsersService) ListNext(ctx context.Context, next string) ([]User, *Response, error) {
	return listNext[User](ctx, s.c, next)
}

// WhoAmIFields are the fields WhoAmI asks for.
const WhoAmIFields = "id,name,email"

// WhoAmI returns the user the token belongs to: GET users/who_am_i.json with
// fields=id,name,email, one request. It is the cheap authenticated check of
// `clio status` and of the OAuth callback. Response.Rate holds the response's
// rate-limit headers. A rejected token is an *APIError with Status 401 (after one
// refresh when the Authorizer can); 429 is a *RateLimitError.
//
// It takes the client's request path (bearer, refresh once after a 401, request
// timeout, capped body) but not the lookup Service's circuit breaker and
// rate-limit gate, which wrap lookups only: an admin asking whether Clio answers
// must get Clio's answer, not the breaker's memory of earlier failures.
func (s *UsersService) WhoAmI(ctx context.Context) (*User, *Response, error) {
	var b itemBody[User]
	resp, err := s.c.get(ctx, s.c.apiURL("users/who_am_i.json", url.Values{"fields": {WhoAmIFields}}), &b)
	if err != nil {
		return nil, resp, err
	}
	return &b.Data, resp, nil
}

func list[T any](ctx context.Context, c *Client, rawURL string) ([]T, *Response, error) {
	var b listBody[T]
	resp, err := c.get(ctx, rawURL, &b)
	if err != nil {
		return nil, resp, err
	}
	return b.Data, resp, nil
}

func listNext[T any](ctx context.Context, c *Client, next string) ([]T, *Response, error) {
	if !c.sameOrigin(next) {
		return nil, nil, fmt.Errorf("clio: %w: next page url on another host", ErrBadResponse)
	}
	return list[T](ctx, c, next)
}
