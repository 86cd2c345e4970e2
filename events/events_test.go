package events

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

func TestTypeText(t *testing.T) {
	for ty := TypeCallStarted; ty <= TypeCallEnded; ty++ {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Errorf("ParseType(%q) = %v, %v; want %v", ty.String(), got, err, ty)
		}
	}
	if TypeUnknown.String() != "unknown" || Type(200).String() != "unknown" {
		t.Errorf("unknown types must print as unknown")
	}
	if _, err := ParseType("unknown"); err == nil {
		t.Errorf("ParseType(unknown) must fail")
	}
	want := map[Type]string{TypeCallStarted: "call_started", TypeLookupDone: "lookup_done", TypeIntent: "intent",
		TypeDecision: "decision", TypeTransferResult: "transfer_result", TypeCallEnded: "call_ended"}
	for ty, name := range want {
		if ty.String() != name {
			t.Errorf("%d.String() = %q, want %q", ty, ty.String(), name)
		}
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e := Event{Seq: 3, Time: at, Type: TypeLookupDone, CallID: "c1", Data: map[string]any{"status": "found"}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":3,"time":"2026-11-24T10:00:00Z","type":"lookup_done","call_id":"c1","data":{"status":"found"}}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Type != TypeLookupDone || back.Seq != 3 {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
}

func TestPublishOrderAndStamp(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	b := NewBus(WithClock(func() time.Time { return at }))
	s1, s2 := b.Subscribe(10), b.Subscribe(10)
	defer s1.Close()
	defer s2.Close()
	types := []Type{TypeCallStarted, TypeLookupDone, TypeIntent, TypeDecision, TypeTransferResult, TypeCallEnded}
	for _, ty := range types {
		b.Publish(Event{Type: ty, CallID: "c1"})
	}
	for _, s := range []*Subscription{s1, s2} {
		for i, ty := range types {
			e := <-s.C()
			if e.Seq != uint64(i+1) || e.Type != ty || !e.Time.Equal(at) || e.CallID != "c1" {
				t.Fatalf("event %d = %+v", i, e)
			}
		}
	}
	// An explicit time is kept.
	other := at.Add(time.Hour)
	if e := b.Publish(Event{Type: TypeCallEnded, Time: other}); !e.Time.Equal(other) || e.Seq != 7 {
		t.Fatalf("stamped = %+v", e)
	}
}

func TestSlowSubscriberDroppedPublisherNeverBlocks(t *testing.T) {
	drops := 0
	b := NewBus(WithDropHook(func() { drops++ }))
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	defer fast.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			b.Publish(Event{Type: TypeIntent})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	// The slow one got its first two events, then its channel was closed.
	n := 0
	for range slow.C() {
		n++
	}
	if n != 2 || !slow.Lagged() {
		t.Fatalf("slow got %d events, lagged=%v; want 2, true", n, slow.Lagged())
	}
	if b.Dropped() != 1 || drops != 1 {
		t.Fatalf("Dropped() = %d, hook = %d; want 1", b.Dropped(), drops)
	}
	if len(fast.C()) != 50 || fast.Lagged() {
		t.Fatalf("fast has %d buffered, lagged=%v", len(fast.C()), fast.Lagged())
	}
	slow.Close() // closing a dropped subscription is fine
	if b.Subscribers() != 1 {
		t.Fatalf("Subscribers() = %d, want 1", b.Subscribers())
	}
}

func TestCloseIdempotent(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(0)
	if cap(s.c) != DefaultBuffer {
		t.Fatalf("default buffer = %d", cap(s.c))
	}
	b.Publish(Event{Type: TypeCallStarted})
	s.Close()
	s.Close()
	if e, ok := <-s.C(); !ok || e.Type != TypeCallStarted {
		t.Fatalf("buffered event lost after Close: %+v %v", e, ok)
	}
	if _, ok := <-s.C(); ok {
		t.Fatal("channel open after Close")
	}
	if s.Lagged() {
		t.Fatal("closed subscription reported lagged")
	}
	b.Publish(Event{Type: TypeCallEnded}) // no subscriber: no panic

	s2 := b.Subscribe(1)
	b.Close()
	b.Close()
	if _, ok := <-s2.C(); ok {
		t.Fatal("subscription open after bus Close")
	}
	s2.Close()
	if e := b.Publish(Event{Type: TypeCallEnded}); e.Seq != 0 {
		t.Fatalf("publish after close stamped %d", e.Seq)
	}
	s3 := b.Subscribe(1)
	if _, ok := <-s3.C(); ok {
		t.Fatal("subscribe after Close must return a closed subscription")
	}
	s3.Close()
}

func TestConcurrent(t *testing.T) {
	b := NewBus()
	stop := make(chan struct{})
	var pubs, subs sync.WaitGroup
	for p := 0; p < 4; p++ {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for {
				select {
				case <-stop:
					return
				default:
					b.Publish(Event{Type: TypeIntent, CallID: "c"})
				}
			}
		}()
	}
	for r := 0; r < 4; r++ {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for i := 0; i < 50; i++ {
				s := b.Subscribe(8)
				var last uint64
				for j := 0; j < 4; j++ {
					e, ok := <-s.C()
					if !ok {
						break // dropped for lagging: fine under this load
					}
					if e.Seq <= last {
						t.Errorf("out of order: %d after %d", e.Seq, last)
					}
					last = e.Seq
				}
				s.Close()
			}
		}()
	}
	subs.Wait()
	close(stop)
	pubs.Wait()
	b.Close()
}
