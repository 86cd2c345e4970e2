// Package agentstream connects a call's audio to a self-hosted voice agent over a
// WebSocket that speaks the Twilio Media Streams message set (bidirectional
// streams: the agent may send audio, marks and clear back).
//
// Per call: Dialer.Open dials agent.stream_url, sends connected and start (the
// call id as callSid, the caller lookup as customParameters), then
//
//   - the caller's audio, tapped from the RTP session without ever blocking its
//     read goroutine, goes to the agent as media messages paced at 20 ms (160
//     bytes of 8 kHz μ-law each, silence while the caller sends nothing); a slow
//     agent makes frames drop (counted), never the caller's RTP wait;
//   - the agent's media (base64 μ-law in any chunking) is queued and played to
//     the caller one 20 ms frame per RTP packet; mark is echoed once the audio
//     queued before it has been sent, clear drops the queue at once (barge-in)
//     and echoes the pending marks;
//   - the caller's DTMF goes to the agent as dtmf messages;
//   - Stop sends stop and closes the WebSocket. A close by the agent, a read or
//     write failure or a missed pong ends the stream too (Done, Reason).
//
// Transfers are not part of the message set: the agent asks matterline's HTTP
// API (POST /v1/calls/{callSid}/transfer), see docs/operations.md.
//
// Subpackage refagent is a scripted reference agent for tests and the demo.
package agentstream
