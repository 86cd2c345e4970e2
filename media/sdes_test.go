package media

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// testKey is a 30-byte key||salt whose bytes count from b.
func testKey(b byte) (k [sdesKeyLen]byte) {
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func inline(k [sdesKeyLen]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }

// The example of RFC 4568 §4 (with lifetime and MKI) and what real endpoints send.
const rfcKey = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"

func TestParseCrypto(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Crypto
		isErr error
	}{
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, want: Crypto{Tag: 1, Suite: SuiteAES128SHA1_80}},
		{in: "2 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey + "|2^31", want: Crypto{Tag: 2, Suite: SuiteAES128SHA1_32}},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20", want: Crypto{Tag: 1, Suite: SuiteAES128SHA1_80}},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " WSH=64", want: Crypto{Tag: 1, Suite: SuiteAES128SHA1_80}},
		{in: "999999999 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, want: Crypto{Tag: 999999999, Suite: SuiteAES128SHA1_80}},
		// RFC 4568 §4's example: an MKI we cannot honour.
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:32", isErr: ErrUnsupportedCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|1:4", isErr: ErrUnsupportedCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + ";inline:" + rfcKey, isErr: ErrUnsupportedCrypto},
		{in: "1 AES_256_CM_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrUnsupportedCrypto},
		{in: "1 F8_128_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrUnsupportedCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " UNENCRYPTED_SRTP", isErr: ErrUnsupportedCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " KDR=1", isErr: ErrUnsupportedCrypto},
		{in: "", isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80", isErr: ErrBadCrypto},
		{in: "x AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrBadCrypto},
		{in: "-1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrBadCrypto},
		{in: "+1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrBadCrypto},
		{in: "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 outline:" + rfcKey, isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 " + rfcKey, isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey[:36], isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "AAAA", isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.Repeat("!", 40), isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^x", isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|", isErr: ErrBadCrypto},
		{in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|1|2|3", isErr: ErrBadCrypto},
	} {
		got, err := ParseCrypto(tc.in)
		if tc.isErr != nil {
			if !errors.Is(err, tc.isErr) {
				t.Errorf("ParseCrypto(%q) = %v, want %v", tc.in, err, tc.isErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCrypto(%q): %v", tc.in, err)
			continue
		}
		want, _ := base64.StdEncoding.DecodeString(rfcKey)
		if got.Tag != tc.want.Tag || got.Suite != tc.want.Suite || !bytes.Equal(got.Key[:], want) {
			t.Errorf("ParseCrypto(%q) = %+v", tc.in, got)
		}
	}
}

func TestCryptoRoundTrip(t *testing.T) {
	c := Crypto{Tag: 7, Suite: SuiteAES128SHA1_32, Key: testKey(3)}
	line := string(appendCrypto(nil, c))
	val, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r\n"), "a=crypto:")
	if !ok {
		t.Fatalf("line %q", line)
	}
	got, err := ParseCrypto(val)
	if err != nil || got != c {
		t.Fatalf("round trip %q = %+v, %v", line, got, err)
	}
	if strings.Contains(c.String(), inline(c.Key)) {
		t.Error("String shows the key")
	}
}

// FuzzParseCrypto: any attribute value gives a Crypto or an error, never a panic,
// and what parses renders to a line that parses the same.
func FuzzParseCrypto(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey,
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:32",
		"2 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey + "|2^31 WSH=64",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + ";inline:" + rfcKey,
		"3 AES_256_CM_HMAC_SHA1_80 inline:xxxx",
		"", "1", "1 x inline:", "1 AES_CM_128_HMAC_SHA1_80 inline:|||",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCrypto(s)
		if err != nil {
			if !errors.Is(err, ErrBadCrypto) && !errors.Is(err, ErrUnsupportedCrypto) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		line := strings.TrimSuffix(strings.TrimPrefix(string(appendCrypto(nil, c)), "a=crypto:"), "\r\n")
		if again, err := ParseCrypto(line); err != nil || again != c {
			t.Fatalf("%q -> %q -> %+v, %v", s, line, again, err)
		}
	})
}

func savpOffer(proto string, cryptos ...string) []byte {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n")
	b.WriteString("m=audio 4000 " + proto + " 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
	b.WriteString("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
	for _, c := range cryptos {
		b.WriteString("a=crypto:" + c + "\r\n")
	}
	return []byte(b.String())
}

func TestParseSDPCrypto(t *testing.T) {
	k1, k2 := testKey(1), testKey(50)
	body := savpOffer("RTP/SAVP",
		"1 AES_256_CM_HMAC_SHA1_80 inline:"+inline(k1),
		"2 AES_CM_128_HMAC_SHA1_80 inline:"+inline(k1)+"|2^20|1:32",
		"3 AES_CM_128_HMAC_SHA1_32 inline:"+inline(k1),
		"4 AES_CM_128_HMAC_SHA1_80 inline:"+inline(k2))
	d, err := ParseSDP(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Negotiate(d, nil); !errors.Is(err, ErrUnsupportedTransport) {
		t.Errorf("Negotiate (plain RTP only) = %v", err)
	}
	if _, err := negotiate(d, nil, true); err != nil {
		t.Errorf("negotiate with srtp: %v", err)
	}
	if d.Proto != "RTP/SAVP" || len(d.Crypto) != 2 {
		t.Fatalf("proto %q crypto %+v", d.Proto, d.Crypto)
	}
	if d.Crypto[0] != (Crypto{Tag: 3, Suite: SuiteAES128SHA1_32, Key: k1}) || d.Crypto[1] != (Crypto{Tag: 4, Suite: SuiteAES128SHA1_80, Key: k2}) {
		t.Errorf("crypto %+v", d.Crypto)
	}
	// A plain stream's crypto lines are not read.
	d, err = ParseSDP(savpOffer("RTP/AVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+inline(k1)))
	if err != nil || len(d.Crypto) != 0 {
		t.Errorf("plain: %v %+v", err, d.Crypto)
	}
	// SAVP without a usable line: parsed, but Negotiate refuses the transport.
	d, err = ParseSDP(savpOffer("RTP/SAVP", "1 AES_256_CM_HMAC_SHA1_80 inline:"+inline(k1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := negotiate(d, nil, true); !errors.Is(err, ErrUnsupportedTransport) || !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("Negotiate = %v", err)
	}
	// A usable SAVP stream after an unusable one is chosen.
	two := string(savpOffer("RTP/SAVP")) + "m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + inline(k2) + "\r\n"
	d, err = parseSDP([]byte(two), SRTPOffer)
	if err != nil || d.AudioIndex != 1 || len(d.Crypto) != 1 {
		t.Errorf("two streams: %v index %d crypto %d", err, d.AudioIndex, len(d.Crypto))
	}
}

func TestBuildSDPCrypto(t *testing.T) {
	c := Crypto{Tag: 1, Suite: SuiteAES128SHA1_80, Key: testKey(9)}
	body := BuildSDP(LocalSDP{Addr: netip.MustParseAddr("192.0.2.1"), Port: 5000, Crypto: []Crypto{c}})
	if !bytes.Contains(body, []byte("m=audio 5000 RTP/SAVP 0 8\r\n")) ||
		!bytes.Contains(body, []byte("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+inline(c.Key)+"\r\n")) {
		t.Fatalf("body:\n%s", body)
	}
	d, err := ParseSDP(body)
	if err != nil || len(d.Crypto) != 1 || d.Crypto[0] != c {
		t.Fatalf("round trip: %v %+v", err, d.Crypto)
	}
	body = BuildSDP(LocalSDP{Port: 5000, Crypto: []Crypto{c}, Proto: "RTP/SAVPF"})
	if !bytes.Contains(body, []byte("m=audio 5000 RTP/SAVPF ")) {
		t.Errorf("proto override:\n%s", body)
	}
}

func newOA(p SRTPPolicy, offer bool) *OfferAnswer {
	return NewOfferAnswer(OfferAnswerConfig{Addr: netip.MustParseAddr("192.0.2.1"), Port: 6000, SessionID: 5, SRTP: p, OfferSRTP: offer})
}

func TestOfferAnswerSRTPPolicy(t *testing.T) {
	k := testKey(1)
	savp := savpOffer("RTP/SAVP", "5 AES_CM_128_HMAC_SHA1_32 inline:"+inline(k), "6 AES_CM_128_HMAC_SHA1_80 inline:"+inline(k))
	plain := savpOffer("RTP/AVP")
	for _, tc := range []struct {
		p      SRTPPolicy
		body   []byte
		secure bool
		err    error
	}{
		{SRTPUnknown, savp, false, ErrSRTPRefused},
		{SRTPOff, savp, false, ErrSRTPRefused},
		{SRTPOff, plain, false, nil},
		{SRTPOffer, savp, true, nil},
		{SRTPOffer, plain, false, nil},
		{SRTPRequire, savp, true, nil},
		{SRTPRequire, plain, false, ErrSRTPRequired},
	} {
		oa := newOA(tc.p, false)
		ans, neg, err := oa.AnswerOffer(tc.body)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrNoCommonCodec) {
				t.Errorf("%v: err %v, want %v (and ErrNoCommonCodec)", tc.p, err, tc.err)
			}
			if _, ok := oa.Negotiated(); ok {
				t.Errorf("%v: state changed on error", tc.p)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.p, err)
		}
		d, err := ParseSDP(ans)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.secure {
			if neg.SRTP.Enabled() || d.Proto != "RTP/AVP" || len(d.Crypto) != 0 {
				t.Errorf("%v: plain answer %q %+v", tc.p, d.Proto, neg.SRTP)
			}
			continue
		}
		// The first supported line (tag 5, the _32 suite), our own key.
		if d.Proto != "RTP/SAVP" || len(d.Crypto) != 1 || d.Crypto[0].Tag != 5 || d.Crypto[0].Suite != SuiteAES128SHA1_32 {
			t.Fatalf("%v: answer %q %+v", tc.p, d.Proto, d.Crypto)
		}
		if neg.SRTP.Suite != SuiteAES128SHA1_32 || neg.SRTP.Remote != k || neg.SRTP.Local != d.Crypto[0].Key || neg.SRTP.Local == k {
			t.Errorf("%v: keys %+v", tc.p, neg.SRTP)
		}
		if neg.SRTP.Local == ([sdesKeyLen]byte{}) {
			t.Errorf("%v: zero local key", tc.p)
		}
	}
}

func TestOfferAnswerSRTPOffers(t *testing.T) {
	for _, tc := range []struct {
		p      SRTPPolicy
		offer  bool
		secure bool
	}{
		{SRTPOff, true, false},
		{SRTPOffer, false, false},
		{SRTPOffer, true, true},
		{SRTPRequire, false, true},
	} {
		oa := newOA(tc.p, tc.offer)
		body, err := oa.Offer()
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseSDP(body)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(d.Crypto) == 1 && d.Proto == "RTP/SAVP"; got != tc.secure {
			t.Errorf("%v offer=%v: proto %q crypto %d", tc.p, tc.offer, d.Proto, len(d.Crypto))
		}
	}
}

// answerTo builds a peer's answer to our offer: its own key on our tag.
func answerTo(t *testing.T, offer []byte, key [sdesKeyLen]byte, proto string) []byte {
	t.Helper()
	d, err := ParseSDP(offer)
	if err != nil {
		t.Fatal(err)
	}
	l := LocalSDP{Addr: netip.MustParseAddr("192.0.2.20"), Port: 7000, SessionID: 9, Version: 1, Codecs: d.Codecs[:1], Proto: proto}
	if len(d.Crypto) > 0 && strings.Contains(proto, "SAVP") {
		l.Crypto = []Crypto{{Tag: d.Crypto[0].Tag, Suite: d.Crypto[0].Suite, Key: key}}
	}
	return BuildSDP(l)
}

func TestOfferAnswerSRTPAnswerAndRekey(t *testing.T) {
	oa := newOA(SRTPRequire, false)
	offer, err := oa.Offer()
	if err != nil {
		t.Fatal(err)
	}
	od, _ := ParseSDP(offer)
	peerKey := testKey(100)

	// A plain answer to an SAVP offer is refused and the offer rolled back.
	if _, err := oa.ReceiveAnswer(answerTo(t, offer, peerKey, "RTP/AVP")); !errors.Is(err, ErrNoCommonCodec) {
		t.Fatalf("plain answer: %v", err)
	}
	if oa.OfferPending() {
		t.Fatal("offer still pending")
	}
	// The re-sent initial offer keeps its key.
	offer, _ = oa.Offer()
	if od2, _ := ParseSDP(offer); od2.Crypto[0] != od.Crypto[0] {
		t.Errorf("re-sent offer changed its key")
	}
	// A wrong tag is refused.
	wrong := bytes.Replace(answerTo(t, offer, peerKey, "RTP/SAVP"), []byte("a=crypto:1 "), []byte("a=crypto:2 "), 1)
	if _, err := oa.ReceiveAnswer(wrong); !errors.Is(err, ErrUnsupportedCrypto) {
		t.Fatalf("wrong tag: %v", err)
	}
	offer, _ = oa.Offer()
	neg, err := oa.ReceiveAnswer(answerTo(t, offer, peerKey, "RTP/SAVP"))
	if err != nil {
		t.Fatal(err)
	}
	ours := od.Crypto[0].Key
	if neg.SRTP != (SRTPKeys{Suite: SuiteAES128SHA1_80, Local: ours, Remote: peerKey}) {
		t.Fatalf("keys %+v", neg.SRTP)
	}

	// Hold keeps SAVP and our key.
	hold, err := oa.Hold()
	if err != nil {
		t.Fatal(err)
	}
	hd, _ := ParseSDP(hold)
	if hd.Proto != "RTP/SAVP" || len(hd.Crypto) != 1 || hd.Crypto[0].Key != ours {
		t.Fatalf("hold offer %q %+v", hd.Proto, hd.Crypto)
	}
	if _, err := oa.ReceiveAnswer(answerTo(t, hold, peerKey, "RTP/SAVP")); err != nil {
		t.Fatal(err)
	}

	// The peer's re-offer with a new key rekeys its side; ours stays.
	newKey := testKey(200)
	reoffer := savpOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+inline(newKey))
	ans, neg, err := oa.AnswerOffer(reoffer)
	if err != nil {
		t.Fatal(err)
	}
	if neg.SRTP.Remote != newKey || neg.SRTP.Local != ours {
		t.Errorf("rekey: %+v", neg.SRTP)
	}
	ad, _ := ParseSDP(ans)
	if len(ad.Crypto) != 1 || ad.Crypto[0].Key != ours {
		t.Errorf("answer to rekey %+v", ad.Crypto)
	}
	// The same offer again gives the same answer (o= version unchanged).
	ans2, _, err := oa.AnswerOffer(reoffer)
	if err != nil || !bytes.Equal(ans, ans2) {
		t.Errorf("repeat answer differs: %v", err)
	}
}

func TestOfferAnswerSRTPDowngrade(t *testing.T) {
	// Under "offer", a peer that re-offers plain RTP gets plain RTP.
	oa := newOA(SRTPOffer, false)
	if _, _, err := oa.AnswerOffer(savpOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+inline(testKey(1)))); err != nil {
		t.Fatal(err)
	}
	// Our re-offer stays SAVP while the session runs SRTP.
	re, err := oa.Hold()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := ParseSDP(re); d.Proto != "RTP/SAVP" {
		t.Errorf("re-offer %q", d.Proto)
	}
	oa.Rollback()
	_, neg, err := oa.AnswerOffer(savpOffer("RTP/AVP"))
	if err != nil || neg.SRTP.Enabled() {
		t.Fatalf("downgrade: %v %+v", err, neg.SRTP)
	}
	// Under "require" it is refused and the SRTP session stays.
	oa = newOA(SRTPRequire, false)
	if _, _, err := oa.AnswerOffer(savpOffer("RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+inline(testKey(1)))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oa.AnswerOffer(savpOffer("RTP/AVP")); !errors.Is(err, ErrSRTPRequired) {
		t.Fatalf("downgrade under require: %v", err)
	}
	if n, _ := oa.Negotiated(); !n.SRTP.Enabled() {
		t.Error("session lost srtp")
	}
}

func TestParseSRTPPolicy(t *testing.T) {
	for in, want := range map[string]SRTPPolicy{"": SRTPOff, "off": SRTPOff, "offer": SRTPOffer, "Require": SRTPRequire} {
		if got, err := ParseSRTPPolicy(in); err != nil || got != want {
			t.Errorf("%q = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSRTPPolicy("on"); err == nil {
		t.Error("on accepted")
	}
}
