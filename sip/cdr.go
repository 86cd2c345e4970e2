package sip

import (
	"context"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
)

// cdrTimeout bounds writing one call record.
const cdrTimeout = 5 * time.Second

// cdrStartTimeout bounds writing the row at the INVITE; the final write waits for
// it at most this long.
const cdrStartTimeout = 2 * time.Second

// CallRecorder stores call records (records.CallStore implements it).
type CallRecorder interface {
	Upsert(ctx context.Context, rec records.CallRecord) error
}

// MessageStore keeps recorded messages (records.MessageStore implements it).
type MessageStore interface {
	NewRecording(t time.Time, callID string) (*records.WAVWriter, error)
	Add(ctx context.Context, m records.Message) (records.Message, error)
}

// Speaker renders text to a prompt (media.TTS implements it; media.ErrNoTTS means
// not installed).
type Speaker interface {
	Render(ctx context.Context, text string) (*media.Prompt, error)
}

// WithCallRecords stores one call record per call: a row written when the call
// starts (outcome in_progress, no end), replaced by the full record when it ends.
func WithCallRecords(r CallRecorder) Option { return func(s *Server) { s.cdr = r } }

// WithMessages sets where recorded messages go (unavailable handling "message").
func WithMessages(m MessageStore) Option { return func(s *Server) { s.messages = m } }

// WithTTS sets the text-to-speech for rule messages and whispers.
func WithTTS(t Speaker) Option { return func(s *Server) { s.tts = t } }

// record builds the call's record.
func (c *call) record(end time.Time) records.CallRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := records.CallRecord{
		ID: c.id, CallID: c.sipCallID, Start: c.started, End: end,
		Caller: c.caller, Called: c.callee, Outcome: c.outcome,
	}
	rec.Answer = c.answered
	rec.SetLookup(c.lookupRes)
	for _, in := range c.intents {
		rec.Intents = append(rec.Intents, in.String())
	}
	if c.hasDec {
		rec.SetDecision(c.dec)
	}
	c.agent.recordAgent(&rec, end)
	if rec.Outcome == records.OutcomeUnknown {
		rec.Outcome = records.OutcomeNone
	}
	if r, err := records.ParseEndReason(c.endReason.String()); err == nil {
		rec.EndReason = r
	}
	return rec
}

// startRecord writes the call's first row (outcome in_progress, no end), so a call
// cut off by a crash still leaves a row (matterline serve marks it interrupted on
// the next start). live calls it first thing; the write runs on its own goroutine,
// bounded by cdrStartTimeout, so a slow database never delays the answer.
// writeRecord waits for it before the final write, so the final record wins.
func (c *call) startRecord() {
	if c.srv.cdr == nil {
		return
	}
	rec := records.CallRecord{ID: c.id, CallID: c.sipCallID, Start: c.started,
		Caller: c.caller, Called: c.callee, Outcome: records.OutcomeInProgress}
	done := make(chan struct{})
	c.recStart = done
	c.srv.goTracked(func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), cdrStartTimeout)
		defer cancel()
		if err := c.srv.cdr.Upsert(ctx, rec); err != nil {
			c.log.Warn("call record not started", "error", err)
		}
	})
}

// writeRecord stores the call record; teardown calls it once per call.
func (c *call) writeRecord() {
	rec := c.record(c.srv.now())
	c.log.Info("call record", "outcome", rec.Outcome.String(), "end_reason", rec.EndReason.String(),
		"rule", rec.Rule, "mode", rec.Mode.String())
	if c.srv.cdr == nil {
		return
	}
	if c.recStart != nil {
		<-c.recStart // returns within cdrStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), cdrTimeout)
	defer cancel()
	if err := c.srv.cdr.Upsert(ctx, rec); err != nil {
		c.log.Error("call record not stored", "error", err)
	}
}
