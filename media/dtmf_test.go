package media

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

// sippDTMF1 is the RTP of a '1' key press from sipp's dtmf_2833_1.pcap
// (/usr/share/sip-tester), extracted with tshark: seven updates every 40 ms of
// duration, then the end packet sent three times, all with timestamp 13280.
var sippDTMF1 = []string{
	"80e51f30000033e00e05384e010a0000",
	"80651f31000033e00e05384e010a0140",
	"80651f32000033e00e05384e010a0280",
	"80651f33000033e00e05384e010a03c0",
	"80651f34000033e00e05384e010a0500",
	"80651f35000033e00e05384e010a0640",
	"80651f36000033e00e05384e010a0780",
	"80651f37000033e00e05384e018a08c0",
	"80651f37000033e00e05384e018a08c0",
	"80651f37000033e00e05384e018a08c0",
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTelephoneEvent(t *testing.T) {
	pkt := mustHex(t, sippDTMF1[7])
	ev, err := ParseTelephoneEvent(pkt[12:])
	if err != nil {
		t.Fatal(err)
	}
	want := TelephoneEvent{Event: 1, End: true, Volume: 10, Duration: 2240}
	if ev != want {
		t.Fatalf("event = %+v, want %+v", ev, want)
	}
	var b [4]byte
	ev.MarshalTo(b[:])
	if hex.EncodeToString(b[:]) != "018a08c0" {
		t.Errorf("marshal = %x", b)
	}
	if _, err := ParseTelephoneEvent([]byte{1, 2, 3}); !errors.Is(err, ErrBadDTMF) {
		t.Errorf("short payload: err = %v", err)
	}
}

// feed runs payloads (RTP timestamp, event, end, duration) through a receiver.
type evIn struct {
	ts    uint32
	event uint8
	end   bool
	dur   uint16
}

func feed(r *dtmfReceiver, now time.Time, in []evIn) []Digit {
	var out []Digit
	for i, e := range in {
		out = r.handle(e.ts, TelephoneEvent{Event: e.event, End: e.end, Volume: 10, Duration: e.dur},
			now.Add(time.Duration(i)*20*time.Millisecond), out)
	}
	return out
}

func keys(ds []Digit) string {
	s := ""
	for _, d := range ds {
		s += string(d.Key)
	}
	return s
}

func TestDTMFReceiver(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		in   []evIn
		want string
	}{
		{"one press with triple end", []evIn{{100, 5, false, 160}, {100, 5, false, 320}, {100, 5, true, 800}, {100, 5, true, 800}, {100, 5, true, 800}}, "5"},
		{"start lost, only ends", []evIn{{100, 7, true, 800}, {100, 7, true, 800}, {100, 7, true, 800}}, "7"},
		{"same key pressed twice", []evIn{{100, 1, false, 160}, {100, 1, true, 640}, {100, 1, true, 640}, {900, 1, false, 160}, {900, 1, true, 640}, {900, 1, true, 640}}, "11"},
		{"end lost, next press flushes", []evIn{{100, 2, false, 160}, {100, 2, false, 320}, {900, 3, false, 160}, {900, 3, true, 480}}, "23"},
		{"star pound A D", []evIn{{1, 10, true, 400}, {2, 11, true, 400}, {3, 12, true, 400}, {4, 15, true, 400}}, "*#AD"},
		{"non-dtmf events ignored", []evIn{{1, 16, true, 400}, {2, 32, true, 400}, {3, 255, false, 1}}, ""},
		// RFC 4733 §2.5.1.4 end retransmissions of '4' interleaved with the next press.
		{"end retransmissions interleaved with the next event", []evIn{
			{100, 4, false, 160}, {100, 4, true, 480},
			{600, 6, false, 160}, {100, 4, true, 480},
			{600, 6, false, 320}, {100, 4, true, 480},
			{600, 6, true, 640}, {600, 6, true, 640}, {600, 6, true, 640}}, "46"},
		{"two events' end packets interleaved", []evIn{
			{100, 1, true, 400}, {300, 2, true, 400}, {100, 1, true, 400}, {300, 2, true, 400},
			{100, 1, true, 400}, {300, 2, true, 400}}, "12"},
		{"late update of an ended event", []evIn{{100, 8, true, 400}, {500, 9, false, 160}, {100, 8, false, 320}, {500, 9, true, 480}}, "89"},
		{"same key again after interleaving", []evIn{
			{100, 1, true, 400}, {300, 1, true, 400}, {100, 1, true, 400}, {300, 1, true, 400}, {700, 1, true, 400}}, "111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r dtmfReceiver
			if got := keys(feed(&r, now, tt.in)); got != tt.want {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
		})
	}

	// An event whose end never comes is delivered after dtmfEndWait.
	var r dtmfReceiver
	out := feed(&r, now, []evIn{{100, 9, false, 160}, {100, 9, false, 320}})
	if len(out) != 0 {
		t.Fatalf("delivered before end: %v", out)
	}
	if out := r.expire(now.Add(50*time.Millisecond), nil); len(out) != 0 {
		t.Fatalf("expired too early: %v", out)
	}
	out = r.expire(now.Add(time.Second), nil)
	if keys(out) != "9" || out[0].Duration != 40*time.Millisecond {
		t.Fatalf("expire = %+v", out)
	}
	if out := feed(&r, now, []evIn{{100, 9, true, 800}}); len(out) != 0 {
		t.Fatalf("late end delivered again: %v", out)
	}
}

func TestDTMFReceiverSippCapture(t *testing.T) {
	var (
		r   dtmfReceiver
		out []Digit
	)
	now := time.Now()
	for _, h := range sippDTMF1 {
		b := mustHex(t, h)
		ts := uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
		ev, err := ParseTelephoneEvent(b[12:])
		if err != nil {
			t.Fatal(err)
		}
		out = r.handle(ts, ev, now, out)
	}
	if len(out) != 1 || out[0].Key != '1' || out[0].Duration != 280*time.Millisecond || out[0].Source != DTMFSourceRFC4733 {
		t.Fatalf("digits = %+v", out)
	}
}

func TestParseDTMFRelay(t *testing.T) {
	ok := []struct {
		body string
		key  rune
		dur  time.Duration
	}{
		{"Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond},
		{"Signal=5\nDuration=160", '5', 160 * time.Millisecond},
		{"signal = 9 \r\n duration = 250\r\n", '9', 250 * time.Millisecond},
		{"SIGNAL=*\r\nDURATION=100", '*', 100 * time.Millisecond},
		{"Signal=#", '#', 0},
		{"Signal=10\r\nDuration=100", '*', 100 * time.Millisecond},
		{"Signal=11\r\nDuration=100", '#', 100 * time.Millisecond},
		{"Signal=a\r\n", 'A', 0},
		{"Signal=D\r\n", 'D', 0},
		{"Signal=0\r\nDuration=160\r\nVolume=10\r\n", '0', 160 * time.Millisecond},
	}
	for _, c := range ok {
		d, err := ParseDTMFRelay([]byte(c.body))
		if err != nil {
			t.Errorf("%q: %v", c.body, err)
			continue
		}
		if d.Key != c.key || d.Duration != c.dur || d.Source != DTMFSourceINFO {
			t.Errorf("%q = %+v, want %c %v", c.body, d, c.key, c.dur)
		}
	}
	bad := []string{"", "hello", "Signal=", "Signal=E", "Signal=16", "Signal=55", "Duration=100",
		"Signal=1\r\nDuration=abc", "Signal=1\r\nDuration=-5", "\x00\x01", "Signal=1\r\ngarbage"}
	for _, b := range bad {
		if _, err := ParseDTMFRelay([]byte(b)); !errors.Is(err, ErrBadDTMF) {
			t.Errorf("%q: err = %v, want ErrBadDTMF", b, err)
		}
	}
}

func FuzzParseDTMFRelay(f *testing.F) {
	for _, s := range []string{"Signal=5\r\nDuration=160\r\n", "signal = 9 \n", "Signal=11", "Signal=A\r\nDuration=100", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseDTMFRelay(body)
		if err != nil {
			if !errors.Is(err, ErrBadDTMF) {
				t.Fatalf("error %v does not wrap ErrBadDTMF", err)
			}
			return
		}
		if !isDTMFKey(d.Key) {
			t.Fatalf("key %q is not a dtmf key", d.Key)
		}
	})
}

func FuzzTelephoneEvent(f *testing.F) {
	for _, h := range sippDTMF1 {
		b := mustHex(f, h)
		f.Add(b[12:], uint32(13280))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint32(0))
	f.Fuzz(func(t *testing.T, payload []byte, ts uint32) {
		ev, err := ParseTelephoneEvent(payload)
		if err != nil {
			if !errors.Is(err, ErrBadDTMF) {
				t.Fatalf("error %v does not wrap ErrBadDTMF", err)
			}
			return
		}
		var r dtmfReceiver
		now := time.Now()
		out := r.handle(ts, ev, now, nil)
		out = r.handle(ts, ev, now, out)
		out = r.expire(now.Add(time.Second), out)
		if len(out) > 1 {
			t.Fatalf("one event delivered %d times", len(out))
		}
		for _, d := range out {
			if !isDTMFKey(d.Key) {
				t.Fatalf("key %q", d.Key)
			}
		}
	})
}

func isDTMFKey(r rune) bool {
	for _, k := range dtmfKeys {
		if k == r {
			return true
		}
	}
	return false
}
