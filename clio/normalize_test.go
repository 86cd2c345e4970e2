package clio

import (
	"strings"
	"testing"
)

func TestNormalizeCallerID(t *testing.T) {
	tests := []struct {
		in, country, want string
		prob              NumberProblem
	}{
		{"+12175552171", "US", "+12175552171", NumberOK},
		{"12175552171", "US", "+12175552171", NumberOK},
		{"2175552171", "US", "+12175552171", NumberOK},
		{"(217) 555-2171", "US", "+12175552171", NumberOK},
		{"217.555.2171", "US", "+12175552171", NumberOK},
		{"+1 217-555-2171", "US", "+12175552171", NumberOK},
		{"sip:+12175552171@pbx.example.com", "US", "+12175552171", NumberOK},
		{"sip:2175552171@10.0.0.1:5060;user=phone", "US", "+12175552171", NumberOK},
		{"sips:+12175552171@pbx.example.com", "US", "+12175552171", NumberOK},
		{`"Ada Quist" <sip:+12175552171@pbx.example.com>;tag=abc`, "US", "+12175552171", NumberOK},
		{"<tel:+1-217-555-2171;phone-context=example.com>", "US", "+12175552171", NumberOK},
		{"tel:+12175552171", "US", "+12175552171", NumberOK},
		{"01144207946095", "US", "+44207946095", NumberOK},
		{"2175552171", "CA", "+12175552171", NumberOK},
		{"020 7946 0958", "GB", "+442079460958", NumberOK},
		{"+44 20 7946 0958", "GB", "+442079460958", NumberOK},
		{"00442079460958", "GB", "+442079460958", NumberOK},
		{"442079460958", "GB", "+442079460958", NumberOK},
		{"02 9374 4000", "AU", "+61293744000", NumberOK},
		{"0412 345 678", "AU", "+61412345678", NumberOK},
		{"0011 1 217 555 2171", "AU", "+12175552171", NumberOK},
		{"4930123456", "ZZ", "+4930123456", NumberOK},
		{"0049 30 123456", "ZZ", "+4930123456", NumberOK},
		{"", "US", "", NumberWithheld},
		{"anonymous", "US", "", NumberWithheld},
		{"Anonymous", "US", "", NumberWithheld},
		{"sip:anonymous@anonymous.invalid", "US", "", NumberWithheld},
		{`"Anonymous" <sip:anonymous@anonymous.invalid>`, "US", "", NumberWithheld},
		{"withheld", "US", "", NumberWithheld},
		{"Restricted", "US", "", NumberWithheld},
		{"private", "US", "", NumberWithheld},
		{"unknown", "US", "", NumberWithheld},
		{"101", "US", "", NumberTooShort},
		{"sip:101@pbx", "US", "", NumberTooShort},
		{"2171", "US", "", NumberTooShort},
		{"555-2171", "US", "", NumberInvalid},
		{"21755521712", "US", "", NumberInvalid},
		{"+", "US", "", NumberTooShort},
		{"call me", "US", "", NumberInvalid},
		{"+1234567890123456789012", "US", "", NumberInvalid},
	}
	for _, tt := range tests {
		got, prob := NormalizeCallerID(tt.in, tt.country)
		if got != tt.want || prob != tt.prob {
			t.Errorf("NormalizeCallerID(%q, %s) = %q, %v; want %q, %v", tt.in, tt.country, got, prob, tt.want, tt.prob)
		}
	}
}

// TestNormalizeStored covers every stored format listed in CLIO-API.md, with
// extensions and notes.
func TestNormalizeStored(t *testing.T) {
	const ada = "+12175552171"
	tests := []struct {
		in, country, want string
	}{
		{"(217) 555-2171", "US", ada},
		{"217-555-2171", "US", ada},
		{"217.555.2171", "US", ada},
		{"1 (217) 555-2171", "US", ada},
		{"+12175552171", "US", ada},
		{"+1 217-555-2171", "US", ada},
		{"2175552171", "US", ada},
		{"217 555 2171", "US", ada},
		{"1-217-555-2171", "US", ada},
		{"+1 (217) 555-2171", "US", ada},
		{"(217) 555-2171 ext 2", "US", ada},
		{"(217) 555-2171 ext. 2", "US", ada},
		{"217-555-2171 Ext.2", "US", ada},
		{"217-555-2171x2", "US", ada},
		{"217-555-2171 x 2", "US", ada},
		{"217-555-2171 #2", "US", ada},
		{"217-555-2171,2", "US", ada},
		{"217-555-2171 (cell)", "US", ada},
		{"217-555-2171 call after 5pm", "US", ada},
		{"Cell: 217-555-2171", "US", ada},
		{"217/555-2171", "US", ada},
		{"\u00a0217\u00a0555\u00a02171", "US", ada},
		{"+44 (0)20 7946 0958", "US", "+442079460958"},
		{"+44 20 7946 0958", "US", "+442079460958"},
		{"020 7946 0958", "GB", "+442079460958"},
		{"+61 2 9374 4000", "US", "+61293744000"},
		{"555-2171", "US", ""},
		{"", "US", ""},
		{"n/a", "US", ""},
		{"ext 2171", "US", ""},
	}
	for _, tt := range tests {
		got, _ := NormalizeStored(tt.in, tt.country)
		if got != tt.want {
			t.Errorf("NormalizeStored(%q, %s) = %q; want %q", tt.in, tt.country, got, tt.want)
		}
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{"+12175552171": "…2171", "": "…", "123": "…", "(217) 555-2171": "…2171"} {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalizeCallerID(f *testing.F) {
	for _, s := range []string{"+12175552171", "sip:+12175552171@pbx;user=phone", `"A" <sip:anonymous@anonymous.invalid>`,
		"tel:+1-217-555-2171", "020 7946 0958", "101", "", "<", "<sip:", "sip:@", "+", "0011", "ü+1"} {
		f.Add(s, "US")
		f.Add(s, "GB")
	}
	f.Fuzz(func(t *testing.T, in, country string) {
		n, prob := NormalizeCallerID(in, country)
		checkE164(t, n, prob)
	})
}

func FuzzNormalizeStored(f *testing.F) {
	for _, s := range []string{"(217) 555-2171", "217-555-2171 ext 2", "1 (217) 555-2171", "+44 (0)20 7946 0958",
		"217-555-2171 (cell)", "Cell: 217.555.2171 #2", "(((", "+(0)", "x", "+1 217-555-2171"} {
		f.Add(s, "US")
	}
	f.Fuzz(func(t *testing.T, in, country string) {
		n, prob := NormalizeStored(in, country)
		checkE164(t, n, prob)
	})
}

func checkE164(t *testing.T, n string, prob NumberProblem) {
	t.Helper()
	if prob != NumberOK {
		if n != "" {
			t.Fatalf("problem %v with number %q", prob, n)
		}
		return
	}
	if len(n) < 9 || len(n) > 16 || n[0] != '+' || n[1] == '0' || strings.Trim(n[1:], "0123456789") != "" {
		t.Fatalf("not E.164: %q", n)
	}
}
