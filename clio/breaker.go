package clio

import (
	"sync"
	"time"
)

// BreakerState is the circuit breaker's state.
type BreakerState uint8

const (
	BreakerUnknown  BreakerState = iota
	BreakerClosed                // requests go to Clio
	BreakerOpen                  // Clio is skipped until the cool-down ends
	BreakerHalfOpen              // the cool-down ended; the next result decides
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return "unknown"
}

// breaker opens after `threshold` consecutive failures and skips Clio for
// `cooldown`; after it, calls go through again and one failure re-opens it, one
// success closes it.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	opened    uint64
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !now.Before(b.openUntil)
}

func (b *breaker) state(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case now.Before(b.openUntil):
		return BreakerOpen
	case b.failures >= b.threshold:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

func (b *breaker) success() {
	b.mu.Lock()
	b.failures = 0
	b.mu.Unlock()
}

// failure records one and reports whether the breaker opened now.
func (b *breaker) failure(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.failures >= b.threshold && !now.Before(b.openUntil) {
		b.openUntil = now.Add(b.cooldown)
		b.opened++
		return true
	}
	return false
}
