package sip

import (
	"context"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// Message recording bounds.
const (
	// minMessage is the shortest recording worth keeping.
	minMessage = 500 * time.Millisecond
	// beepLength and beepHz make the tone before recording.
	beepLength = 400 * time.Millisecond
	beepHz     = 1000
	// storeTimeout bounds storing a message row.
	storeTimeout = 5 * time.Second
)

// takeMessage is the unavailable handling "message": leave_message and a beep,
// the caller's audio recorded to a WAV in the messages folder (at most
// Config.MessageMax, ending on Config.MessageSilence), a row stored with the
// caller's number, the Clio ids and the intended rule, then thank_you, goodbye
// and BYE. A caller who hangs up while recording still leaves the message.
func (c *call) takeMessage(dec routing.Decision) {
	sess := c.session()
	if sess == nil {
		return
	}
	if c.srv.messages == nil {
		c.log.Warn("message handling without a message store: goodbye")
		c.playPrompts(media.PromptNobody, media.PromptGoodbye)
		c.finish(EndOurBye)
		return
	}
	c.playPrompts(media.PromptLeaveMessage)
	if c.ending() {
		return
	}
	_ = c.play(media.Tone(beepHz, beepLength))
	if c.ending() {
		return
	}
	start := c.srv.now()
	w, err := c.srv.messages.NewRecording(start, c.id)
	if err != nil {
		c.log.Error("message recording not started", "error", err)
		c.playPrompts(media.PromptGoodbye)
		c.finish(EndOurBye)
		return
	}
	c.log.Info("recording message", "rule", dec.Rule, "max", c.srv.cfg.MessageMax)
	// A caller who hangs up while recording still leaves the message: the BYE
	// ends the recording, what was said is kept.
	var rec media.Recording
	rerr := c.await(func(ctx context.Context) error {
		var err error
		rec, err = sess.Record(ctx, w, media.RecordOptions{
			MaxLength: c.srv.cfg.MessageMax,
			Silence:   c.srv.cfg.MessageSilence,
			MinLength: 2 * c.srv.cfg.MessageSilence, // a caller who needs a moment to start
		})
		return err
	})
	if rerr != nil {
		c.log.Warn("recording failed", "error", rerr)
	}
	if rec.Duration < minMessage {
		c.log.Info("message too short, discarded", "duration", rec.Duration, "reason", rec.Reason.String())
		_ = w.Discard()
	} else if err := w.Close(); err != nil {
		c.log.Error("message file not closed", "error", err)
		_ = w.Discard()
	} else {
		info := c.info()
		m := records.Message{Time: start, CallID: c.id, Caller: info.Caller, Rule: dec.Rule,
			Duration: rec.Duration, File: w.Path()}
		if info.Lookup.Contact != nil {
			m.ContactID = info.Lookup.Contact.ID
		}
		if info.Lookup.Matter != nil {
			m.MatterID = info.Lookup.Matter.ID
		}
		sctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		stored, err := c.srv.messages.Add(sctx, m)
		cancel()
		if err != nil {
			c.log.Error("message not stored", "error", err)
		} else {
			c.setOutcome(records.OutcomeMessage)
			c.log.Info("message stored", "message_id", stored.ID, "duration", rec.Duration.Round(time.Millisecond),
				"reason", rec.Reason.String())
		}
	}
	if c.ending() {
		return
	}
	c.playPrompts(media.PromptThankYou, media.PromptGoodbye)
	c.finish(EndOurBye)
}
