package clio

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
)

// benchNumbers are the first numbers of n contacts of a synced 5,000-contact index.
func benchIndex(b *testing.B) (*indexEnv, []string) {
	e := newIndexEnv(b, 5000)
	e.sync(b)
	nums := make([]string, 0, 5000)
	for id := int64(100001); id < 100001+5000; id++ {
		nums = append(nums, e.gen.Numbers[id])
	}
	return e, nums
}

// reportPercentiles adds p50 and p99 of the sampled durations (ns/op).
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkIndexLookup is Index.Lookup of a known number (E.164) in a
// 5,000-contact index. The allocations are the result's contact, matter and
// staff copies.
func BenchmarkIndexLookup(b *testing.B) {
	e, nums := benchIndex(b)
	samples := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		r, ok := e.ix.Lookup(nums[i%len(nums)])
		samples[i] = time.Since(t)
		if !ok || r.Status == lookup.StatusUnknown {
			b.Fatal("miss")
		}
	}
	b.StopTimer()
	reportPercentiles(b, samples)
}

// BenchmarkLookupIndexed is a whole Service lookup answered from the index:
// caller ID normalization, the index, the log line (discarded).
func BenchmarkLookupIndexed(b *testing.B) {
	e, nums := benchIndex(b)
	svc := NewService(ServiceOptions{Client: e.client, Storage: e.storage, Index: e.ix})
	ctx := context.Background()
	samples := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		r := svc.Lookup(ctx, nums[i%len(nums)])
		samples[i] = time.Since(t)
		if r.Source != lookup.SourceIndex {
			b.Fatal(r)
		}
	}
	b.StopTimer()
	reportPercentiles(b, samples)
}

// BenchmarkIndexSync is a full pass of 5,000 contacts (and their matters)
// against the fake on loopback, into SQLite: contacts/s.
func BenchmarkIndexSync(b *testing.B) {
	g := cliotest.Generate(cliotest.GenOptions{Contacts: 5000, Token: testToken})
	e := newTestEnv(b, g.Fixture, envOpts{fake: cliotest.Options{RateLimit: 1 << 30}})
	ix, err := OpenIndex(context.Background(), IndexOptions{Storage: e.storage, Client: e.client})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var contacts int
	for b.Loop() {
		res, err := ix.Sync(context.Background(), SyncOptions{})
		if err != nil {
			b.Fatal(err)
		}
		contacts += res.Contacts
	}
	b.ReportMetric(float64(contacts)/b.Elapsed().Seconds(), "contacts/s")
}
