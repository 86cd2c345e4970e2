package media

import (
	"context"
	"time"
)

// The media API for transfers (issue 5), checked at compile time: package sip calls
// these exact signatures to bridge legs, play ringback, record messages, send DTMF
// and render whispers.
var (
	_ func(context.Context, *Session, *Session, BridgeOptions) (*Bridge, error)     = NewBridge
	_ func(*Bridge)                                                                 = (*Bridge).Stop
	_ func(*Bridge) <-chan struct{}                                                 = (*Bridge).Done
	_ func(*Bridge) BridgeStats                                                     = (*Bridge).Stats
	_ func(*Session, context.Context, *Prompt) error                                = (*Session).PlayLoop
	_ func(*Session, context.Context, rune, time.Duration) error                    = (*Session).SendDTMF
	_ func(*Session, context.Context, SampleSink, RecordOptions) (Recording, error) = (*Session).Record
	_ func(*Session) uint32                                                         = (*Session).SSRC
	_ func(time.Duration) *Prompt                                                   = Ringback
	_ func(time.Duration) *Prompt                                                   = HoldMusic
	_ func(TTSConfig) (*TTS, error)                                                 = NewTTS
	_ func(*TTS, context.Context, string) (*Prompt, error)                          = (*TTS).Render
	_ func(*TTS) bool                                                               = (*TTS).Available
	_ SampleSink                                                                    = (*memSink)(nil)
	_ error                                                                         = ErrBridged
	_ error                                                                         = ErrBusy
	_ error                                                                         = ErrNoTTS
	_ error                                                                         = ErrNoTelephoneEvent
	_                                                                               = BridgeOptions{ResyncThreshold: 0, Logger: nil}
	_                                                                               = BridgeStats{AtoB: RelayStats{Relayed: 0, Transcoded: 0, DTMF: 0, Dropped: 0, Held: 0, Resyncs: 0}, BtoA: RelayStats{}}
	_                                                                               = RecordOptions{MaxLength: 0, Silence: 0, MinLength: 0, SilenceLevel: 0, EndKey: '#', MaxGap: 0}
	_                                                                               = Recording{Duration: 0, Reason: StopUnknown, Speech: false, Dropped: 0}
	_                                                                               = [7]StopReason{StopUnknown, StopMaxLength, StopSilence, StopHangup, StopCancelled, StopKey, StopError}
	_                                                                               = TTSConfig{CacheDir: "", Command: "", Voice: "", Speed: 0, Timeout: 0, MaxChars: 0, MemoryEntries: 0, Logger: nil}
)
