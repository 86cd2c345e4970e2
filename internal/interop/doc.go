// Package interop lets tests drive real third-party SIP peers on loopback: a
// Kamailio proxy (StartKamailio) and baresip user agents (StartBaresip) that
// send a sine tone as their voice and record what they hear, plus Goertzel
// helpers (ToneLevel, ToneShare, HearsTone) to tell which tone was heard. It is
// the top of the test pyramid: interop with independent implementations of
// RFC 3261 (dialogs, loose routing §16.12, Record-Route), RFC 3264 offer/answer
// (hold as a=sendonly) and RFC 4733 telephone-events.
//
// Everything listens on 127.0.0.1 on ports picked at run time, lives in
// t.TempDir() and is stopped by t.Cleanup (SIGTERM to the process group, SIGKILL
// after 3 s, wait). A missing binary skips the test, except with CI=true, where
// it fails it. Start-up waits are bounded (DefaultStartTimeout) and failures
// carry the process's output. Each Start* retries twice with new ports in case
// another test took a port between the check and the bind.
//
// # Kamailio 5.6.3 (Debian bookworm)
//
// Run as `kamailio -f cfg -DD -E -Y rundir -m 32 -M 4`: foreground (-DD still
// forks the workers, hence the process group), log on stderr, private runtime
// dir, small memory, children=1, no database. Ready in about 0.2 s; readiness is
// an OPTIONS to the proxy answered 200 by the script. Modules: kex, corex, tm,
// sl, rr, pv, maxfwd, textops, siputils, xlog (rr logs "outbound module not
// available": harmless). The script logs every request it handles with xlog as
// "INTEROP|routing|method|call-id|r-uri", parsed into ProxiedRequest. In-dialog
// handling is the stock kamailio.cfg's WITHINDLG, strict: relayed only when
// loose_route() finds a Route to the proxy; an ACK without one only when
// t_check_trans() matches; anything else is dropped (404 "Not here", ACK
// discarded). Preloaded Route headers of initial requests (an outbound proxy
// setting) are removed before relaying. With AuthPassword, initial INVITEs are
// challenged (auth module, pv_proxy_authenticate: no database).
//
// # baresip 1.0.0 (Debian bookworm, package baresip-core)
//
// Found by experiment and by reading the v1.0.0 sources:
//   - Control: module ctrl_tcp, netstrings of JSON. Commands are
//     {"command":"dial","params":"sip:...","token":"t1"}; answers are
//     {"response":true,"ok":true,"data":"...","token":"t1"}; events are
//     {"event":true,"type":"CALL_ESTABLISHED","param":...,"id":...}. Events go
//     only to the newest connection: a second connection silently steals them,
//     so keep one.
//   - Command names are the menu module's long names without the slash: dial,
//     accept, hangup, hold, resume, sndcode (sends RFC 4733 telephone-events;
//     the receiver reports CALL_DTMF_START with the digit, then CALL_DTMF_END),
//     listcalls, reinvite, mute, transfer. The call commands (hold, resume,
//     sndcode, transfer, ...) are listed by "help" only while a call exists.
//   - Events seen in a call: CALL_LOCAL_SDP, CALL_RINGING, CALL_REMOTE_SDP,
//     CALL_ESTABLISHED, CALL_RTPESTAB, CALL_RTCP (periodic), CALL_CLOSED
//     (param: the reason, e.g. "Connection reset by user"), CALL_INCOMING for a
//     manual-answer agent.
//   - sip_listen 127.0.0.1:port is not enough: SDP still carries the first
//     non-loopback address. "net_interface 127.0.0.1" fixes it ("net_interface
//     lo" fails: "could not get IPv4 address"). sip_listen opens UDP and TCP.
//   - Account parameters that work: regint=0 (no REGISTER),
//     audio_codecs=pcmu,pcma, answermode=auto|manual,
//     outbound="sip:127.0.0.1:port;lr", auth_user, auth_pass, ptime=20.
//     The Contact user is "<user>-0x<pointer>", so in-dialog Request-URIs look
//     like sip:callee-0x55d0c2a3e970@127.0.0.1:port.
//   - aufile is only an audio source in 1.0.0 (no aufile player). It reads the
//     whole WAV when a call starts ("aufile: loaded N bytes") and plays it once.
//   - The sndfile filter records decoded audio (dump-<time>-dec.wav), but only
//     until the first hold: any SDP direction other than sendrecv makes
//     audio_decoder_set flush the receive filter chain, and aufilt_setup will
//     not rebuild it while the send chain exists, in both user agents. So the
//     loudspeaker is ALSA's "file" PCM (slave "null") writing into a FIFO that
//     this package reads at 8000 samples/s (see tap.go), with HOME pointing at
//     the agent's directory for the .asoundrc. ALSA's null device alone does not
//     pace the player at all; file's "truncate false" opens "name.0001" instead
//     of appending.
//   - Hold sends a re-INVITE with a=sendonly and stops sending audio: the other
//     side hears digital silence. Resume re-INVITEs with sendrecv; audio is back
//     both ways within a few hundred milliseconds.
//   - auth_pass answers a proxy's 407 (any auth_user works with Kamailio's
//     pv_proxy_authenticate); with a wrong password baresip retries once, then
//     the call ends with CALL_CLOSED "407 Proxy Authentication Required".
//   - "statmode_default off" stops the status line printed many times a second.
//     SIGTERM ends baresip within a few hundred milliseconds.
package interop
