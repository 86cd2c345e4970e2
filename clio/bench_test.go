package clio

import (
	"context"
	"testing"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
)

// BenchmarkLookupCacheHit is a lookup answered from the SQLite cache.
func BenchmarkLookupCacheHit(b *testing.B) {
	e := newTestEnv(b, nil, envOpts{fake: cliotest.Options{RateLimit: 1 << 30}})
	ctx := context.Background()
	if r := e.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusFound {
		b.Fatal(r)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := e.svc.Lookup(ctx, "+12175552171"); !r.Cached {
			b.Fatal("miss")
		}
	}
}

// BenchmarkLookupCacheMiss is a full lookup against the fake on loopback:
// contacts and matters requests, matching, and the cache write.
func BenchmarkLookupCacheMiss(b *testing.B) {
	e := newTestEnv(b, nil, envOpts{fake: cliotest.Options{RateLimit: 1 << 30}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := e.svc.LookupWith(ctx, "+12175552171", LookupOptions{NoCache: true}); r.Status != lookup.StatusFound || r.Cached {
			b.Fatal(r)
		}
	}
}
