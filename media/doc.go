// Package media is matterline's audio plane: one RTP session per call leg.
//
// It covers
//   - SDP offer/answer for audio (RFC 4566 / RFC 8866 syntax, RFC 3264 offer/answer
//     rules, including the RFC 2543 c=0.0.0.0 hold and the RFC 3264 §6.1 direction
//     reversal),
//   - RTP (RFC 3550) on even UDP ports from a range with a quarantine after release,
//     strict source handling (media and RFC 4733 events only from the SDP address or
//     a source learned under bounded rules: symmetric RTP, RFC 4961, for peers behind
//     NAT, and failover after silence; see rtp_source.go), random port choice,
//     inactivity timeouts, and prompt playback paced at 20 ms with continuous
//     sequence numbers and timestamps,
//   - G.711 μ-law and A-law (ITU-T G.711, RFC 3551 §4.5.14 PCMU/PCMA) with lookup tables
//     and byte-to-byte PCMU↔PCMA transcoding,
//   - DTMF as RFC 4733 telephone-events (each key press delivered once) and as SIP INFO
//     application/dtmf-relay bodies,
//   - prompts: 8 kHz mono 16-bit audio loaded from WAV files (embedded defaults from
//     package configs, overridable from a directory), converted from other rates and
//     stereo when needed; generated ringback and hold audio looped with PlayLoop;
//     spoken text rendered with espeak-ng when installed and cached (TTS),
//   - transfers: a bridge relaying RTP between two legs as back-to-back RTP sessions
//     (RFC 7667 §3.2.2), re-stamping SSRC, sequence numbers and timestamps onto each
//     leg's own stream (RFC 3550 §5.1), transcoding PCMU↔PCMA and passing RFC 4733
//     events, without allocating per packet; sending DTMF as RFC 4733 events; and
//     recording a leg's audio to a SampleSink with end-on-silence.
//
// Nothing in this package keeps mutable package-level state: port ranges, loggers and
// prompt sets are values owned by the caller. The G.711 tables are computed once at
// start-up and only read afterwards.
package media
