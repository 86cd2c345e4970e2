// Command bareuas is the reference for bench/callrate.sh: the least a SIP UAS
// built on sipgo v1.7.2 can do for a call, so that matterline's cost per call
// can be read against the cost of the stack underneath it.
//
// It listens on UDP, answers every INVITE with 100 Trying and then 200 OK
// carrying a minimal PCMU offer answer (RFC 3264; no RTP socket is opened),
// takes the ACK, and answers every BYE with 200 OK (RFC 3261 §15.1.2). It keeps
// no call state and logs nothing per call.
//
//	go run ./bench/bareuas -listen 127.0.0.1:5070
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5070", "UDP host:port to listen on")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "bareuas:", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("listen port: %w", err)
	}
	// Process-wide sipgo setting, set once here: only warnings and errors.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bareuas"), sipgo.WithUserAgentHostname(host))
	if err != nil {
		return fmt.Errorf("user agent: %w", err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	u := uas{
		contact: sip.ContactHeader{Address: sip.Uri{Host: host, Port: port}},
		sdp:     answerSDP(host),
	}
	srv.OnInvite(u.invite)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(u.bye)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = srv.ListenAndServe(ctx, "udp", listen)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// uas holds what every answer shares; it is read-only after start-up.
type uas struct {
	contact sip.ContactHeader
	sdp     []byte
}

// invite sends 100 and then 200 with the SDP before returning, so the server
// transaction lives until the final response is out.
func (u uas) invite(req *sip.Request, tx sip.ServerTransaction) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusTrying, "Trying", nil)); err != nil {
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", u.sdp)
	if to := res.To(); to != nil {
		// RFC 3261 §8.2.6.2: the UAS adds a tag to To in a dialog-creating response.
		to.Params.Add("tag", sip.GenerateTagN(16))
	}
	contact := u.contact
	res.AppendHeader(&contact)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	_ = tx.Respond(res)
}

func (u uas) bye(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
}

// answerSDP is a PCMU answer on a port nothing listens on: the reference
// measures signalling only.
func answerSDP(host string) []byte {
	return []byte("v=0\r\n" +
		"o=bareuas 1 1 IN IP4 " + host + "\r\n" +
		"s=bareuas\r\n" +
		"c=IN IP4 " + host + "\r\n" +
		"t=0 0\r\n" +
		"m=audio 9 RTP/AVP 0\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=sendrecv\r\n")
}
