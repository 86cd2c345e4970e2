package metrics

import "github.com/prometheus/client_golang/prometheus"

// Known label values of matterline_clio_writeback_total.
var (
	writebackKinds  = [...]string{"communication", "time_entry", "task", "document"}
	writebackStates = [...]string{"queued", "done", "failed"}
)

func (m *Metrics) registerWriteback() {
	m.writeback = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
		Name: "clio_writeback_total", Help: "Clio write-back items by kind (communication, time_entry, task, document) and state reached (queued, done, failed)."},
		[]string{"kind", "state"})
	m.reg.MustRegister(m.writeback)
	for _, k := range writebackKinds {
		for _, s := range writebackStates {
			m.writeback.WithLabelValues(k, s)
		}
	}
}

// ClioWriteback counts a write-back item of kind reaching state (queued when
// enqueued or retried, done, failed).
func (m *Metrics) ClioWriteback(kind, state string) {
	if m == nil {
		return
	}
	m.writeback.WithLabelValues(label(writebackKinds[:], kind), label(writebackStates[:], state)).Inc()
}

func label(known []string, v string) string {
	for _, k := range known {
		if k == v {
			return v
		}
	}
	return Other
}
