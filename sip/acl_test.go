package sip

import (
	"net/netip"
	"testing"
	"time"
)

func TestCallerNumber(t *testing.T) {
	tests := []struct {
		name    string
		from    string
		pai     []string
		trusted bool
		want    string
	}{
		{"from", `"Ada" <sip:+12175552171@pbx.example;user=phone>;tag=1`, nil, true, "+12175552171"},
		{"pai wins when trusted", `<sip:1000@pbx>;tag=1`, []string{`<sip:+12175552171@pbx>`}, true, "+12175552171"},
		{"pai ignored when untrusted", `<sip:1000@pbx>;tag=1`, []string{`<sip:+12175552171@pbx>`}, false, "1000"},
		{"pai tel uri", `<sip:1000@pbx>;tag=1`, []string{`<tel:+12175552171;cpc=ordinary>`}, true, "+12175552171"},
		{"pai list, first usable", `<sip:1000@pbx>`, []string{`<sip:anonymous@anonymous.invalid>, <tel:+15550001>`}, true, "+15550001"},
		{"anonymous from", `"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1`, nil, true, ""},
		{"restricted", `<sip:Restricted@pbx>;tag=1`, nil, true, ""},
		{"anonymous pai falls back to from", `<sip:+1555@pbx>`, []string{`<sip:anonymous@anonymous.invalid>`}, true, "+1555"},
		{"empty user", `<sip:pbx.example>;tag=1`, nil, true, ""},
		{"garbage", `<<<`, []string{"\x00\r\n"}, true, ""},
		{"control characters dropped", "<sip:+1\t555@pbx>", nil, true, "+1555"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callerNumber(tt.from, tt.pai, tt.trusted); got != tt.want {
				t.Fatalf("callerNumber = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzCallerNumber(f *testing.F) {
	f.Add(`"Ada" <sip:+12175552171@pbx.example;user=phone>;tag=1`, `<tel:+12175552171>`)
	f.Add(`<sip:anonymous@anonymous.invalid>`, `"x,y" <sip:a@b>, <sip:c@d>`)
	f.Add(`sip:1000@pbx`, ``)
	f.Fuzz(func(t *testing.T, from, pai string) {
		n := callerNumber(from, []string{pai}, true)
		if len(n) > 64 {
			t.Fatalf("number longer than 64 bytes: %q", n)
		}
		for _, r := range n {
			if r < 0x21 || r == 0x7f {
				t.Fatalf("control character in %q", n)
			}
		}
	})
}

func TestAddrTrusted(t *testing.T) {
	p := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for a, want := range map[string]bool{"127.0.0.1": true, "::1": true, "10.0.0.1": false, "::ffff:127.0.0.1": false} {
		if got := addrTrusted(netip.MustParseAddr(a), p); got != want {
			t.Errorf("%s: %v, want %v", a, got, want)
		}
	}
	if addrTrusted(netip.Addr{}, p) {
		t.Error("invalid address trusted")
	}
}

func TestSessionTimerParse(t *testing.T) {
	tests := []struct {
		name      string
		se, minSE []string
		supported []string
		interval  time.Duration
		err       bool
		tooSmall  bool
	}{
		{"none", nil, nil, nil, 0, false, false},
		{"supported only: our default", nil, nil, []string{"100rel, timer"}, DefaultSessionExpires, false, false},
		{"requested", []string{"120;refresher=uac"}, nil, []string{"timer"}, 120 * time.Second, false, false},
		{"too small", []string{"60"}, nil, []string{"timer"}, 0, true, true},
		{"too small without support", []string{"30"}, nil, nil, 0, true, true},
		{"min-se raises ours", nil, []string{"3600"}, []string{"timer"}, 3600 * time.Second, false, false},
		{"not a number", []string{"soon"}, nil, nil, 0, true, false},
		{"huge capped", []string{"99999999"}, nil, []string{"timer"}, maxSessionExpires, false, false},
		{"session expires without support: no timer", []string{"1800"}, nil, nil, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseSessionTimer(tt.se, tt.minSE, tt.supported, nil)
			var iv time.Duration
			if err == nil {
				iv, err = r.negotiate(DefaultSessionExpires)
			}
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if tt.tooSmall && mapError(err).Code != 422 {
				t.Fatalf("err %v does not map to 422", err)
			}
			if iv != tt.interval {
				t.Fatalf("interval = %s, want %s", iv, tt.interval)
			}
		})
	}
	if got := expireAfter(1800 * time.Second); got != 1768*time.Second {
		t.Errorf("expireAfter(1800s) = %s", got)
	}
	if got := expireAfter(90 * time.Second); got != 60*time.Second {
		t.Errorf("expireAfter(90s) = %s", got)
	}
}

func FuzzSessionTimer(f *testing.F) {
	f.Add("1800;refresher=uac", "90", "timer")
	f.Add("x", "", "")
	f.Fuzz(func(t *testing.T, se, minSE, supported string) {
		r, err := parseSessionTimer([]string{se}, []string{minSE}, []string{supported}, nil)
		if err != nil {
			return
		}
		iv, err := r.negotiate(DefaultSessionExpires)
		if err == nil && iv != 0 && (iv < MinSE || iv > maxSessionExpires) {
			t.Fatalf("interval %s out of range", iv)
		}
	})
}

func TestConfigDefaults(t *testing.T) {
	in := Config{Menu: map[string]string{"2": "rule:billing"}}
	out, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if out.MaxCalls != 100 || out.RTPInactivity != 30*time.Second || out.AnswerWait != 500*time.Millisecond ||
		out.MenuTimeout != 8*time.Second || out.MenuAttempts != 3 || out.SessionExpires != 1800*time.Second ||
		len(out.TrustedSources) != 2 || len(out.Listen) != 2 || out.UserAgent == "" {
		t.Errorf("defaults = %+v", out)
	}
	if in.MaxCalls != 0 || in.TrustedSources != nil {
		t.Error("defaults written into the caller's config")
	}
	if _, err := (Config{Menu: map[string]string{"1": "nonsense"}}).withDefaults(); err == nil {
		t.Error("bad menu intent accepted")
	}
	if _, err := (Config{Menu: map[string]string{"12": "operator"}}).withDefaults(); err == nil {
		t.Error("two-digit menu key accepted")
	}
	if _, err := NewServer(Config{Listen: []string{"sctp://1.2.3.4:5"}}); err == nil {
		t.Error("bad listen accepted")
	}
}
