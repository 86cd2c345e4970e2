package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/matterline/matterline/events"
)

// sseBuffer is the per-stream event buffer: a client that falls this far
// behind is dropped by the bus and told so with a "lagged" event.
const sseBuffer = 256

// sseWriteTimeout bounds each write, so a client that stops reading cannot pin
// the handler.
const sseWriteTimeout = 10 * time.Second

// events streams call events as server-sent events (WHATWG HTML, §9.2
// "Server-sent events"). ?call_id=ID limits the stream to one call. The stream
// ends when the client goes away, when the server closes (Server.Close), or
// after a "lagged" event when the client could not keep up; clients reconnect.
// Past events are not replayed (Last-Event-ID is ignored).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.opts.Events == nil {
		notImplemented(w, "events")
		return
	}
	rc := http.NewResponseController(w)
	callID := r.URL.Query().Get("call_id")
	sub := s.opts.Events.Subscribe(sseBuffer)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}

	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The retry field sets the client's reconnection delay in milliseconds;
	// the comment makes the response start at once.
	if !write("retry: 2000\n: matterline events\n\n") {
		return
	}
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-heartbeat.C:
			if !write(": heartbeat\n\n") {
				return
			}
		case e, ok := <-sub.C():
			if !ok {
				if sub.Lagged() {
					write("event: lagged\ndata: {\"error\":\"lagged\",\"message\":\"events were lost; reconnect\"}\n\n")
				}
				return
			}
			if callID != "" && e.CallID != callID {
				continue
			}
			if !s.writeEvent(write, e) {
				return
			}
		}
	}
}

func (s *Server) writeEvent(write func(string, ...any) bool, e events.Event) bool {
	data, err := json.Marshal(e)
	if err != nil {
		s.opts.Logger.Error("httpapi: event not encodable", "type", e.Type.String(), "seq", e.Seq, "err", err)
		return true // skip it, keep the stream
	}
	// json.Marshal output has no raw newlines, so one data: line suffices.
	return write("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data)
}
