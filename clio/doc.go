// Package clio is matterline's client for the Clio Manage API v4 and the caller
// lookup built on it.
//
// The client is shaped like go-github: one [Client] with a service per resource
// ([ContactsService], [MattersService], [UsersService]), ctx first on every call,
// and [CheckResponse] turning non-2xx responses into typed errors ([*APIError],
// [*RateLimitError], [ErrUnauthorized]) after a capped body read. Region hosts
// (us, ca, eu, au) or a base URL override select the API and OAuth endpoints.
//
// [Connection] holds the OAuth authorization-code connection (golang.org/x/oauth2,
// client credentials in the form body) with its tokens stored in SQLite: it
// refreshes before expiry and once after a 401, keeps the old refresh token when a
// refresh response carries none and stores a new one when it does. [OAuthHandler]
// serves /oauth/clio/start and /oauth/clio/callback for an admin with a browser.
//
// [Service] is the caller lookup (DESIGN.md "Caller matching"): it normalizes the
// caller ID to E.164, searches contacts by the last four digits, follows cursor
// paging, and accepts only contacts whose stored number, normalized, equals the
// caller's. It then picks the open matter and the responsible staff member by
// policy. It survives Clio being slow, down, rate limited or unauthorized (per
// request and per lookup timeouts, a circuit breaker, Retry-After remembered and
// never waited out) and caches results in SQLite (singleflight per number, stale
// results served when the rate-limit budget runs low or Clio fails).
//
// The facts this package relies on are in shared/CLIO-API.md; clio/cliotest is a
// fake Clio that follows them and is used by the tests and by `matterline demo`.
package clio
