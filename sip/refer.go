package sip

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// referResult is how a cold transfer (REFER) ended.
type referResult uint8

const (
	referUnknown   referResult = iota
	referDone                  // 2xx sipfrag: the caller was transferred and got our BYE
	referRejected              // the REFER got a 4xx-6xx (405, 501, 403 ...)
	referFailed                // a failure sipfrag, or no final NOTIFY in time
	referAbandoned             // the caller hung up meanwhile
)

// referSub is the implicit subscription a REFER creates (RFC 3515 §2.4.4): the
// NOTIFYs' sipfrag status codes are handed to the waiting transfer.
type referSub struct {
	codes chan int // buffered; a full buffer drops provisional updates
}

// maxSipfrag bounds the NOTIFY bodies we read.
const maxSipfrag = 4096

// onNotify handles NOTIFY: on an outbound leg it is routed there; in a caller's
// dialog with a pending REFER it carries the transfer progress (RFC 3515 §2.4.5,
// Event: refer, message/sipfrag per RFC 3420), answered 200. Anything else is
// answered like an unknown method (onOther).
func (s *Server) onNotify(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) {
		return
	}
	c := s.callFor(req)
	if c == nil {
		s.onOther(req, tx)
		return
	}
	c.mu.Lock()
	sub := c.refer
	c.mu.Unlock()
	event := strings.ToLower(strings.TrimSpace(firstValue(headerValues(req, "Event", "o"))))
	if ev, _, _ := strings.Cut(event, ";"); strings.TrimSpace(ev) != "refer" {
		s.reply(tx, req, 489, "Bad Event") // RFC 6665 §8.2.1
		return
	}
	if sub == nil {
		s.reply(tx, req, 481, "Subscription Does Not Exist") // RFC 6665 §4.1.3
		return
	}
	code, err := sipfragStatus(contentType(req), req.Body())
	if err != nil {
		c.log.Info("notify rejected", "error", err)
		s.replyErr(tx, req, err)
		return
	}
	s.reply(tx, req, 200, "OK")
	c.log.Info("refer progress", "sipfrag", code,
		"subscription_state", firstValue(headerValues(req, "Subscription-State")))
	select {
	case sub.codes <- code:
	default:
		if code >= 200 { // never lose a final status
			go func() {
				select {
				case sub.codes <- code:
				case <-c.quit:
				}
			}()
		}
	}
}

func firstValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// sipfragStatus reads the status code of a message/sipfrag body's status line
// ("SIP/2.0 200 OK", RFC 3420 §2; RFC 3515 §2.4.5 requires at least it).
func sipfragStatus(ct string, body []byte) (int, error) {
	if ct != "" && !isContentType(ct, "message/sipfrag") {
		return 0, fmt.Errorf("%w: notify body %q", ErrUnsupportedBody, ct)
	}
	if len(body) == 0 || len(body) > maxSipfrag {
		return 0, fmt.Errorf("%w: sipfrag of %d bytes", ErrBadRequest, len(body))
	}
	line, _, _ := bytes.Cut(body, []byte("\n"))
	sc := bufio.NewScanner(bytes.NewReader(line))
	sc.Split(bufio.ScanWords)
	var words []string
	for sc.Scan() && len(words) < 2 {
		words = append(words, sc.Text())
	}
	if len(words) < 2 || !strings.HasPrefix(strings.ToUpper(words[0]), "SIP/") {
		return 0, fmt.Errorf("%w: sipfrag without a status line", ErrBadRequest)
	}
	code, err := strconv.Atoi(words[1])
	if err != nil || code < 100 || code > 699 {
		return 0, fmt.Errorf("%w: sipfrag status %q", ErrBadRequest, words[1])
	}
	return code, nil
}

// referTo renders the Refer-To URI for a destination: numbers as
// sip:NUMBER@outbound-proxy (or tel:NUMBER with sip.refer_uri: tel), SIP URIs as
// they are.
func (s *Server) referTo(dest string) (string, error) {
	kind, err := routing.DestinationKindOf(dest)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadDestination, err)
	}
	if kind.IsNumber() && s.cfg.ReferURI == ReferURITel {
		return "tel:" + dest, nil // RFC 3966
	}
	t, err := s.targetFor(dest)
	if err != nil {
		return "", err
	}
	if t.number != "" {
		return t.uri.String(), nil
	}
	return stripCRLF(dest), nil
}

// serviceURI is our address as the service: sip:SERVICE_NUMBER@host:port (or
// sip:matterline@... without a service number).
func (s *Server) serviceURI(c *call) string {
	user := s.cfg.ServiceNumber
	if user == "" {
		user = "matterline"
	}
	u := gosip.Uri{Scheme: "sip", User: user, Host: c.advertise.String(), Port: int(c.laddr.Port())}
	return u.String()
}

// cold runs a cold transfer: REFER in the caller's dialog (RFC 3515 §2.4.1) with
// Refer-To (§2.1) and Referred-By (RFC 3892 §3), then the NOTIFY sipfrag stream
// (§2.4.4-§2.4.5): 202 only accepts the request; a 2xx sipfrag means the caller
// is connected elsewhere, and we send BYE (§5.2's transferor). 4xx-6xx to the
// REFER, a failure sipfrag or no final NOTIFY within Config.ReferTimeout is a
// failure for the fallback.
func (c *call) cold(ctx context.Context, dec routing.Decision) referResult {
	referTo, err := c.srv.referTo(dec.Destination)
	if err != nil {
		c.log.Warn("refer not possible", "rule", dec.Rule, "error", err)
		return referFailed
	}
	c.mu.Lock()
	dlg := c.dlg
	target := c.remoteTarget
	c.mu.Unlock()
	if dlg == nil {
		return referFailed
	}
	if target == nil {
		target = dlg.InviteRequest.Contact().Address.Clone()
	}
	sub := &referSub{codes: make(chan int, 8)}
	c.mu.Lock()
	c.refer = sub // before the REFER leaves: a NOTIFY may overtake the 202
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.refer == sub {
			c.refer = nil
		}
		c.mu.Unlock()
	}()

	req := gosip.NewRequest(gosip.REFER, *target)
	req.SetTransport(c.transport)
	c.srv.prepareOutgoing(req, c)
	req.AppendHeader(gosip.NewHeader("Refer-To", "<"+referTo+">"))
	req.AppendHeader(gosip.NewHeader("Referred-By", "<"+c.srv.serviceURI(c)+">"))
	req.AppendHeader(gosip.NewHeader("User-Agent", c.srv.cfg.UserAgent))
	timeout := time.NewTimer(c.srv.cfg.ReferTimeout)
	defer timeout.Stop()
	tctx, cancel := context.WithTimeout(ctx, c.srv.cfg.ReferTimeout)
	defer cancel()
	tx, err := dlg.TransactionRequest(tctx, req) // CSeq: the dialog's next (RFC 3261 §12.2.1.1)
	if err != nil {
		c.log.Warn("refer not sent", "error", err)
		return referFailed
	}
	defer tx.Terminate()
	c.log.Info("refer sent", "rule", dec.Rule, "refer_to", referTo)

	responses := tx.Responses()
	txDone := tx.Done()
	for {
		select {
		case res := <-responses:
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				c.log.Info("refer rejected", "status", res.StatusCode, "reason", res.Reason)
				return referRejected
			}
			c.log.Info("refer accepted", "status", res.StatusCode)
			responses, txDone = nil, nil
		case <-txDone:
			c.log.Info("refer got no answer", "error", tx.Err())
			return referRejected
		case code := <-sub.codes:
			switch {
			case code < 200:
				continue
			case code < 300:
				c.log.Info("refer succeeded", "sipfrag", code)
				c.setOutcome(records.OutcomeReferred)
				c.end(EndTransferred, true)
				return referDone
			default:
				c.log.Info("refer failed", "sipfrag", code)
				return referFailed
			}
		case <-timeout.C:
			c.log.Info("refer timed out", "after", c.srv.cfg.ReferTimeout)
			return referFailed
		case <-ctx.Done():
			return referAbandoned
		}
	}
}
