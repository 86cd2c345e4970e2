// Package metrics exposes matterline's Prometheus metrics (text exposition
// format, https://prometheus.io/docs/instrumenting/exposition_formats/), all
// named matterline_*, on a registry of their own together with the standard Go
// runtime and process collectors.
//
// Other packages call typed methods (CallStarted, SIPResponse, Lookup, ...) on
// a *Metrics; a nil *Metrics is valid and records nothing, so tests and tools
// can pass nil.
//
// Label values are confidential-data safe by construction: every label takes
// its value from a fixed, known set (SIP methods, status codes, enum names) and
// anything else is recorded as "other". A caller's number, a contact's name or a
// matter id can therefore never become a label value, however a caller misuses
// the API.
package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "matterline"

// Other is the label value recorded for any value outside a label's known set.
const Other = "other"

// Known label values: values outside these sets are recorded as Other.
// WithCallOutcomes and WithTransferOutcomes extend the outcome sets.
var (
	defaultCallOutcomes = [...]string{"transferred", "message", "hangup", "caller_hangup", "abandoned",
		"rejected", "failed", "timeout", "drained"}
	defaultTransferOutcomes = [...]string{"success", "declined", "no_answer", "busy", "timeout", "failed",
		"rejected", "fallback", "cancelled", "unavailable"}
	clioEndpoints = [...]string{"contacts", "matters", "users", "token", "who_am_i",
		"communications", "activities", "tasks", "documents"}
	dtmfSources    = [...]string{"rfc4733", "info", "inband"}
	rtpDropReasons = [...]string{"malformed", "wrong_source", "payload_type", "queue_full", "late",
		"srtp_auth", "srtp_replay"}
	// sipMethods are RFC 3261's methods and the extensions matterline meets.
	sipMethods = [...]string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "REFER", "NOTIFY",
		"INFO", "SUBSCRIBE", "MESSAGE", "UPDATE", "PRACK", "PUBLISH"}
	// lookupBuckets are the lookup latency buckets, in seconds: Clio answers in
	// tens to hundreds of milliseconds, and a call waits at most a few seconds.
	lookupBuckets = [...]float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10}
)

// Option configures New.
type Option func(*Metrics)

// WithCallOutcomes adds call outcome label values (for example the SIP core's
// end-of-call reasons) to the built-in set: transferred, message, hangup,
// caller_hangup, abandoned, rejected, failed, timeout, drained. Each value must
// be a short snake_case word (it panics otherwise, as a programming error).
func WithCallOutcomes(outcomes ...string) Option {
	return func(m *Metrics) { m.callOutcomes.add(outcomes...) }
}

// WithTransferOutcomes adds transfer outcome label values to the built-in set:
// success, declined, no_answer, busy, timeout, failed, rejected, fallback,
// cancelled, unavailable. Values must be short snake_case words.
func WithTransferOutcomes(outcomes ...string) Option {
	return func(m *Metrics) { m.transferOutcomes.add(outcomes...) }
}

// Metrics holds matterline's collectors on its own registry. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	activeCalls   prometheus.Gauge
	calls         *prometheus.CounterVec
	sipResponses  *prometheus.CounterVec
	transfers     *prometheus.CounterVec
	lookups       *prometheus.CounterVec
	lookupLatency prometheus.Histogram
	clioRequests  *prometheus.CounterVec
	clioRemaining prometheus.Gauge
	rtpPackets    *prometheus.CounterVec
	rtpDropped    *prometheus.CounterVec
	dtmfDigits    *prometheus.CounterVec
	draining      prometheus.Gauge
	writeback     *prometheus.CounterVec // writeback.go

	callOutcomes, transferOutcomes, clioEndpoints, dtmfSources, rtpDropReasons, sipMethods set
}

type set map[string]bool

func newSet(vals ...string) set {
	s := make(set, len(vals))
	s.add(vals...)
	return s
}

// add puts vals in the set. Only short snake_case words are accepted, so that
// a number or a name cannot be configured as a label value either.
func (s set) add(vals ...string) {
	for _, v := range vals {
		if !isWord(v) {
			panic(fmt.Sprintf("metrics: label value %q is not a short snake_case word", v))
		}
		s[v] = true
	}
}

func isWord(v string) bool {
	if len(v) == 0 || len(v) > 32 || v[0] < 'a' || v[0] > 'z' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// label returns v when it is in the set, Other otherwise.
func (s set) label(v string) string {
	if s[v] {
		return v
	}
	return Other
}

// New returns a Metrics with every collector registered on a new registry,
// plus the Go runtime and process collectors.
func New(opts ...Option) *Metrics {
	m := &Metrics{
		reg:              prometheus.NewRegistry(),
		callOutcomes:     newSet(defaultCallOutcomes[:]...),
		transferOutcomes: newSet(defaultTransferOutcomes[:]...),
		clioEndpoints:    newSet(clioEndpoints[:]...),
		dtmfSources:      newSet(dtmfSources[:]...),
		rtpDropReasons:   newSet(rtpDropReasons[:]...),
		sipMethods:       make(set),
	}
	for _, v := range sipMethods {
		m.sipMethods[v] = true // upper case: not a snake_case word
	}
	for _, o := range opts {
		o(m)
	}
	m.activeCalls = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
		Name: "active_calls", Help: "Calls currently in progress."})
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "calls_total", Help: "Calls ended, by outcome."}, []string{"outcome"})
	m.sipResponses = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "sip_responses_total", Help: "SIP responses sent, by request method and status code."},
		[]string{"method", "code"})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "transfers_total", Help: "Transfers finished, by mode (cold, warm) and outcome."},
		[]string{"mode", "outcome"})
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "lookups_total", Help: "Caller lookups finished, by status."}, []string{"status"})
	m.lookupLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
		Name: "lookup_duration_seconds", Help: "Time a caller lookup took.", Buckets: lookupBuckets[:]})
	m.clioRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "clio_requests_total", Help: "Requests to the Clio API, by endpoint, status class and status code (class and code \"error\" when no response arrived)."},
		[]string{"endpoint", "class", "code"})
	m.clioRemaining = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
		Name: "clio_rate_limit_remaining", Help: "Requests left in Clio's current rate-limit window (X-RateLimit-Remaining)."})
	m.rtpPackets = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "rtp_packets_total", Help: "RTP packets received (in) and sent (out)."}, []string{"direction"})
	m.rtpDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "rtp_dropped_total", Help: "RTP packets dropped, by reason."}, []string{"reason"})
	m.dtmfDigits = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "dtmf_digits_total", Help: "DTMF digits received, by source (rfc4733, info, inband)."}, []string{"source"})
	m.draining = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
		Name: "draining", Help: "1 while the server drains calls before stopping, else 0."})

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.activeCalls, m.calls, m.sipResponses, m.transfers, m.lookups, m.lookupLatency,
		m.clioRequests, m.clioRemaining, m.rtpPackets, m.rtpDropped, m.dtmfDigits, m.draining,
	)
	m.registerWriteback()
	// Known label combinations start at zero so rate() and absent() work from
	// the first scrape.
	for o := range m.callOutcomes {
		m.calls.WithLabelValues(o)
	}
	for s := lookup.StatusFound; s <= lookup.StatusUnconfigured; s++ {
		m.lookups.WithLabelValues(s.String())
	}
	m.rtpPackets.WithLabelValues("in")
	m.rtpPackets.WithLabelValues("out")
	return m
}

// Registry returns the registry, for registering further collectors (they
// should be named matterline_* too).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// CallStarted counts a new active call.
func (m *Metrics) CallStarted() {
	if m == nil {
		return
	}
	m.activeCalls.Inc()
}

// CallEnded ends an active call with its outcome (see WithCallOutcomes).
func (m *Metrics) CallEnded(outcome string) {
	if m == nil {
		return
	}
	m.activeCalls.Dec()
	m.calls.WithLabelValues(m.callOutcomes.label(outcome)).Inc()
}

// SetActiveCalls sets the active call gauge, for a registry that knows the
// exact number.
func (m *Metrics) SetActiveCalls(n int) {
	if m == nil {
		return
	}
	m.activeCalls.Set(float64(n))
}

// SIPResponse counts a SIP response sent for a request method ("INVITE") with a
// status code (100-699).
func (m *Metrics) SIPResponse(method string, code int) {
	if m == nil {
		return
	}
	m.sipResponses.WithLabelValues(m.sipMethods.label(strings.ToUpper(method)), codeLabel(code, 100, 699)).Inc()
}

// Transfer counts a finished transfer by mode and outcome (see WithTransferOutcomes).
func (m *Metrics) Transfer(mode routing.Mode, outcome string) {
	if m == nil {
		return
	}
	md := Other
	if mode == routing.ModeCold || mode == routing.ModeWarm {
		md = mode.String()
	}
	m.transfers.WithLabelValues(md, m.transferOutcomes.label(outcome)).Inc()
}

// Lookup counts a finished caller lookup and observes how long it took.
func (m *Metrics) Lookup(status lookup.Status, took time.Duration) {
	if m == nil {
		return
	}
	st := Other
	if status >= lookup.StatusFound && status <= lookup.StatusUnconfigured {
		st = status.String()
	}
	m.lookups.WithLabelValues(st).Inc()
	m.lookupLatency.Observe(took.Seconds())
}

// ClioRequest counts a Clio API request to endpoint (contacts, matters, users, token or who_am_i)
// answered with an HTTP status code; code 0 means no response (network error,
// timeout).
func (m *Metrics) ClioRequest(endpoint string, code int) {
	if m == nil {
		return
	}
	class, c := "error", "error"
	if code != 0 {
		c = codeLabel(code, 100, 599)
		if c != Other {
			class = c[:1] + "xx"
		} else {
			class = Other
		}
	}
	m.clioRequests.WithLabelValues(m.clioEndpoints.label(endpoint), class, c).Inc()
}

// ClioRateLimitRemaining records Clio's X-RateLimit-Remaining.
func (m *Metrics) ClioRateLimitRemaining(n int) {
	if m == nil {
		return
	}
	m.clioRemaining.Set(float64(n))
}

// RTPIn counts n RTP packets received.
func (m *Metrics) RTPIn(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rtpPackets.WithLabelValues("in").Add(float64(n))
}

// RTPOut counts n RTP packets sent.
func (m *Metrics) RTPOut(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rtpPackets.WithLabelValues("out").Add(float64(n))
}

// RTPDropped counts n RTP packets dropped for reason (malformed, wrong_source, payload_type, queue_full,
// late, srtp_auth or srtp_replay).
func (m *Metrics) RTPDropped(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rtpDropped.WithLabelValues(m.rtpDropReasons.label(reason)).Add(float64(n))
}

// DTMFDigit counts one DTMF digit received from source (rfc4733, info or inband).
// The digit itself is never recorded.
func (m *Metrics) DTMFDigit(source string) {
	if m == nil {
		return
	}
	m.dtmfDigits.WithLabelValues(m.dtmfSources.label(source)).Inc()
}

// SetDraining records whether the server is draining.
func (m *Metrics) SetDraining(draining bool) {
	if m == nil {
		return
	}
	v := 0.0
	if draining {
		v = 1
	}
	m.draining.Set(v)
}

// CounterFunc registers a counter named matterline_NAME whose value is read
// from f at scrape time, for components that keep their own counts (for
// example the HEP exporter's dropped packets or the event bus's dropped
// subscribers). It panics when the name is already registered, like
// prometheus.MustRegister.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, f))
}

// codeLabel renders an integer status code within [lo, hi] as its decimal
// text, anything else as Other.
func codeLabel(code, lo, hi int) string {
	if code < lo || code > hi {
		return Other
	}
	return strconv.Itoa(code)
}
