package sip

import (
	"net/netip"
	"testing"
)

// The per-source count of unconfirmed calls follows calls as they are
// reserved, confirmed and removed, once each, and forgets a source at zero.
func TestRegistryUnconfirmedCounts(t *testing.T) {
	r := newRegistry()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	mk := func(id string, src netip.Addr) *call {
		c := &call{id: id, sourceIP: src}
		if err := r.reserve(c, 10); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1, a2, a3, b1 := mk("a1", a), mk("a2", a), mk("a3", a), mk("b1", b)
	if n := r.unconfirmedFrom(a); n != 3 {
		t.Fatalf("a: %d unconfirmed, want 3", n)
	}
	r.confirmed(a1)
	r.confirmed(a1) // twice: counted once
	r.remove(a2)    // ended unconfirmed
	r.remove(a1)    // ended confirmed: already out of the count
	if n := r.unconfirmedFrom(a); n != 1 {
		t.Fatalf("a: %d unconfirmed, want 1", n)
	}
	r.remove(a3)
	r.remove(a3)
	if n := r.unconfirmedFrom(a); n != 0 {
		t.Fatalf("a: %d unconfirmed, want 0", n)
	}
	if _, ok := r.unconfirmed[a]; ok {
		t.Error("a source at zero is still in the map")
	}
	if n := r.unconfirmedFrom(b); n != 1 {
		t.Fatalf("b: %d unconfirmed, want 1", n)
	}
	r.remove(b1)
	if len(r.unconfirmed) != 0 {
		t.Errorf("left: %v", r.unconfirmed)
	}
}
