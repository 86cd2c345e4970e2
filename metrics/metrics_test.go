package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches the handler's text exposition and returns it raw and as
// "name{label="v",...}" -> value, labels in sorted order.
func scrape(t *testing.T, m *Metrics) (string, map[string]float64) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, mt := range f.GetMetric() {
			key := name
			if len(mt.GetLabel()) > 0 {
				var parts []string
				for _, l := range mt.GetLabel() {
					parts = append(parts, l.GetName()+"="+`"`+l.GetValue()+`"`)
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case mt.Counter != nil:
				out[key] = mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				out[key] = mt.GetGauge().GetValue()
			case mt.Histogram != nil:
				out[key+"_count"] = float64(mt.GetHistogram().GetSampleCount())
				out[key+"_sum"] = mt.GetHistogram().GetSampleSum()
			}
		}
	}
	return string(body), out
}

func TestScrapeAfterCalls(t *testing.T) {
	m := New()
	// Three calls: two transferred (one cold, one warm declined then message), one hung up.
	for range 3 {
		m.CallStarted()
	}
	m.Lookup(lookup.StatusFound, 120*time.Millisecond)
	m.Lookup(lookup.StatusFound, 80*time.Millisecond)
	m.Lookup(lookup.StatusNotFound, 300*time.Millisecond)
	m.SIPResponse("INVITE", 100)
	m.SIPResponse("invite", 200)
	m.SIPResponse("INVITE", 200)
	m.SIPResponse("BYE", 200)
	m.Transfer(routing.ModeCold, "success")
	m.Transfer(routing.ModeWarm, "declined")
	m.ClioRequest("contacts", 200)
	m.ClioRequest("contacts", 200)
	m.ClioRequest("matters", 429)
	m.ClioRequest("token", 0)
	m.ClioRateLimitRemaining(47)
	m.RTPIn(500)
	m.RTPOut(480)
	m.RTPDropped("malformed", 2)
	m.DTMFDigit("rfc4733")
	m.DTMFDigit("info")
	m.CallEnded("transferred")
	m.CallEnded("message")
	m.SetDraining(true)

	raw, got := scrape(t, m)
	want := map[string]float64{
		`matterline_active_calls`:                                                     1,
		`matterline_calls_total{outcome="transferred"}`:                               1,
		`matterline_calls_total{outcome="message"}`:                                   1,
		`matterline_calls_total{outcome="hangup"}`:                                    0,
		`matterline_lookups_total{status="found"}`:                                    2,
		`matterline_lookups_total{status="not_found"}`:                                1,
		`matterline_lookups_total{status="error"}`:                                    0,
		`matterline_lookup_duration_seconds_count`:                                    3,
		`matterline_lookup_duration_seconds_sum`:                                      0.5,
		`matterline_sip_responses_total{code="100",method="INVITE"}`:                  1,
		`matterline_sip_responses_total{code="200",method="INVITE"}`:                  2,
		`matterline_sip_responses_total{code="200",method="BYE"}`:                     1,
		`matterline_transfers_total{mode="cold",outcome="success"}`:                   1,
		`matterline_transfers_total{mode="warm",outcome="declined"}`:                  1,
		`matterline_clio_requests_total{class="2xx",code="200",endpoint="contacts"}`:  2,
		`matterline_clio_requests_total{class="4xx",code="429",endpoint="matters"}`:   1,
		`matterline_clio_requests_total{class="error",code="error",endpoint="token"}`: 1,
		`matterline_clio_rate_limit_remaining`:                                        47,
		`matterline_rtp_packets_total{direction="in"}`:                                500,
		`matterline_rtp_packets_total{direction="out"}`:                               480,
		`matterline_rtp_dropped_total{reason="malformed"}`:                            2,
		`matterline_dtmf_digits_total{source="rfc4733"}`:                              1,
		`matterline_dtmf_digits_total{source="info"}`:                                 1,
		`matterline_draining`:                                                         1,
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		if diff := g - v; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	// The standard collectors are there too, on this registry only.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := got[name]; !ok && !strings.Contains(raw, name) {
			t.Errorf("missing %s", name)
		}
	}
	// Everything of ours carries the prefix.
	for k := range got {
		if !strings.HasPrefix(k, "matterline_") && !strings.HasPrefix(k, "go_") && !strings.HasPrefix(k, "process_") && !strings.HasPrefix(k, "promhttp_") {
			t.Errorf("metric without matterline_ prefix: %s", k)
		}
	}
	m.SetDraining(false)
	if v := gaugeValue(t, m.draining); v != 0 {
		t.Errorf("draining = %v after SetDraining(false)", v)
	}
}

// TestNoConfidentialLabels feeds phone numbers, names and matter numbers
// where label values go and checks none reaches the exposition.
func TestNoConfidentialLabels(t *testing.T) {
	m := New()
	secrets := []string{"+12175552171", "2175552171", "Ada Quist", "00101-Quist", "felix@firm.example"}
	for _, s := range secrets {
		m.CallStarted()
		m.CallEnded(s)
		m.SIPResponse(s, 200)
		m.Transfer(routing.Mode(99), s)
		m.ClioRequest(s, 200)
		m.ClioRequest("contacts", 2175552171)
		m.RTPDropped(s, 1)
		m.DTMFDigit(s)
	}
	m.SIPResponse("INVITE", 2171)
	m.Lookup(lookup.Status(200), time.Second)
	raw, got := scrape(t, m)
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("exposition contains %q", s)
		}
	}
	if strings.Contains(raw, "2171") {
		t.Errorf("exposition contains digits of a number")
	}
	n := float64(len(secrets))
	for k, v := range map[string]float64{
		`matterline_calls_total{outcome="other"}`:                                        n,
		`matterline_sip_responses_total{code="200",method="other"}`:                      n,
		`matterline_sip_responses_total{code="other",method="INVITE"}`:                   1,
		`matterline_transfers_total{mode="other",outcome="other"}`:                       n,
		`matterline_clio_requests_total{class="2xx",code="200",endpoint="other"}`:        n,
		`matterline_clio_requests_total{class="other",code="other",endpoint="contacts"}`: n,
		`matterline_rtp_dropped_total{reason="other"}`:                                   n,
		`matterline_dtmf_digits_total{source="other"}`:                                   n,
		`matterline_lookups_total{status="other"}`:                                       1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestOptionsAndCounterFunc(t *testing.T) {
	m := New(WithCallOutcomes("no_route"), WithTransferOutcomes("refer_rejected"))
	m.CallEnded("no_route")
	m.Transfer(routing.ModeCold, "refer_rejected")
	var dropped float64 = 3
	m.CounterFunc("hep_dropped_total", "HEP packets dropped.", func() float64 { return dropped })
	_, got := scrape(t, m)
	for k, v := range map[string]float64{
		`matterline_calls_total{outcome="no_route"}`:                       1,
		`matterline_transfers_total{mode="cold",outcome="refer_rejected"}`: 1,
		`matterline_hep_dropped_total`:                                     3,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, bad := range []string{"+12175552171", "Ada Quist", "", "x-y", strings.Repeat("a", 33)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WithCallOutcomes(%q) did not panic", bad)
				}
			}()
			New(WithCallOutcomes(bad))
		}()
	}
}

func TestTwoInstancesIndependent(t *testing.T) {
	a, b := New(), New() // own registries: no duplicate registration panic
	a.CallStarted()
	if gaugeValue(t, b.activeCalls) != 0 || gaugeValue(t, a.activeCalls) != 1 {
		t.Fatal("instances share state")
	}
}

func TestNilMetricsIsNoop(t *testing.T) {
	var m *Metrics
	m.CallStarted()
	m.CallEnded("transferred")
	m.SetActiveCalls(2)
	m.SIPResponse("INVITE", 200)
	m.Transfer(routing.ModeCold, "success")
	m.Lookup(lookup.StatusFound, time.Second)
	m.ClioRequest("contacts", 200)
	m.ClioRateLimitRemaining(1)
	m.RTPIn(1)
	m.RTPOut(1)
	m.RTPDropped("late", 1)
	m.DTMFDigit("info")
	m.SetDraining(true)
	m.CounterFunc("x_total", "x", func() float64 { return 0 })
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
