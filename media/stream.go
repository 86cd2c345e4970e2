package media

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pion/rtp"
)

// Streaming a call's audio to something outside the session (a media-stream
// agent, package agentstream): TapAudio hands over what the peer sends, PlayStream
// sends what a FrameSource produces, one 20 ms frame at a time.

// tapStream marks the packet hook as owned by a TapAudio (see Session.tap).
const tapStream = tapRecord + 1

// FrameSamples is the number of 8 kHz samples in one 20 ms frame.
const FrameSamples = frameSamples

// AudioHandler receives one accepted audio payload (G.711 of codec, telephone-event
// excluded) on the session's read goroutine. payload is reused after it returns:
// copy it. It must not block.
type AudioHandler func(payload []byte, codec Codec)

// TapAudio installs h for every audio packet the session accepts, until untap is
// called (idempotent). The session's read goroutine calls h, so h only copies
// (into a ring, a channel with a default case) and returns. ErrBridged on a
// bridged session, ErrBusy while a Record or another tap runs.
func (s *Session) TapAudio(h AudioHandler) (untap func(), err error) {
	if h == nil {
		return nil, fmt.Errorf("media: tap audio: nil handler")
	}
	if !s.tap.CompareAndSwap(tapNone, tapStream) {
		if s.bridged() {
			return nil, ErrBridged
		}
		return nil, fmt.Errorf("media: tap audio: %w", ErrBusy)
	}
	ph := PacketHandler(func(pkt *rtp.Packet, _ netip.AddrPort) {
		c := s.format().codec
		if pkt.PayloadType != c.PayloadType || len(pkt.Payload) == 0 {
			return
		}
		h(pkt.Payload, c)
	})
	prev := s.handler.Swap(&ph)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.handler.CompareAndSwap(&ph, prev)
			s.tap.Store(tapNone)
		})
	}, nil
}

// FrameSource feeds PlayStream. NextFrame fills dst (FrameSamples linear samples)
// with the next 20 ms of audio and reports true, or reports false when it has
// nothing to play now (a silence frame goes out, so the peer keeps receiving a
// steady stream). It is called once per frame, about one frame before that frame
// is sent, and must not block.
type FrameSource interface {
	NextFrame(dst []int16) bool
}

// PlayStream sends src's frames paced at 20 ms until ctx ends or the session
// closes: one continuous talkspurt (a marker bit on the first packet only), seq
// and timestamp continuing those of earlier prompts, DTMF sent with SendDTMF
// pausing the audio as in Play. It holds the session's playing slot throughout.
// It returns ctx's error, ErrSessionClosed or ErrBridged.
func (s *Session) PlayStream(ctx context.Context, src FrameSource) error {
	if src == nil {
		return fmt.Errorf("media: play stream: nil source")
	}
	release, err := s.acquirePlay(ctx)
	if err != nil {
		return err
	}
	defer release()
	var frame [frameSamples]int16
	marker := true
	for {
		if !src.NextFrame(frame[:]) {
			clear(frame[:])
		}
		// One frame at a time on the writer's schedule: playLocked keeps the
		// 20 ms spacing from the previous frame's slot (no drift, no burst).
		if err := s.playLocked(ctx, frame[:], marker); err != nil {
			return err
		}
		marker = false
	}
}
