package sip

import (
	"bufio"
	"bytes"
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
	referGone                  // 481/408 to the REFER: the caller's dialog is gone
)

// referSub is the implicit subscription a REFER creates (RFC 3515 §2.4.4),
// identified by the REFER's CSeq number (the NOTIFY's Event id, §2.4.6); the
// last sipfrag status the NOTIFYs carried.
type referSub struct {
	id   uint32
	code int
}

// maxSipfrag bounds the NOTIFY bodies we read.
const maxSipfrag = 4096

// onNotify serves a NOTIFY in the caller's dialog: with a pending REFER it
// carries the transfer's progress (RFC 3515 §2.4.5, Event: refer with the
// REFER's id, also the compact "o"; message/sipfrag per RFC 3420), answered 200.
// Other events get 489, a NOTIFY without a matching subscription 481 (RFC 6665).
func (c *call) onNotify(ev *reqEvent) {
	req := ev.req
	event := strings.ToLower(strings.TrimSpace(firstValue(headerValues(req, "Event", "o"))))
	name, params, _ := strings.Cut(event, ";")
	if strings.TrimSpace(name) != "refer" {
		ev.reply(c.srv, 489, "Bad Event") // RFC 6665 §8.2.1
		return
	}
	sub := c.refer
	if sub == nil || !eventIDMatches(params, sub.id) {
		ev.reply(c.srv, 481, "Subscription Does Not Exist") // RFC 6665 §4.1.3
		return
	}
	code, err := sipfragStatus(contentType(req), req.Body())
	if err != nil {
		c.log.Info("notify rejected", "error", err)
		ev.replyErr(c.srv, err)
		return
	}
	ev.reply(c.srv, 200, "OK")
	c.log.Info("refer progress", "sipfrag", code,
		"subscription_state", firstValue(headerValues(req, "Subscription-State")))
	sub.code = code
}

// eventIDMatches reads the id parameter of an Event header's parameters: absent
// (the first REFER of the dialog, RFC 3515 §2.4.6 allows it) or equal to id.
func eventIDMatches(params string, id uint32) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.TrimSpace(k) == "id" {
			return strings.TrimSpace(v) == strconv.FormatUint(uint64(id), 10)
		}
	}
	return true
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
// failure for the fallback; 481 or 408 to the REFER means the caller's dialog is
// gone (RFC 3261 §12.2.1.2): the call ends, nothing is dialled.
func (c *call) cold(dec routing.Decision) referResult {
	referTo, err := c.srv.referTo(dec.Destination)
	if err != nil {
		c.log.Warn("refer not possible", "rule", dec.Rule, "error", err)
		return referFailed
	}
	d := c.in.dlg
	req := d.request(gosip.REFER)
	req.AppendHeader(gosip.NewHeader("Refer-To", "<"+referTo+">"))
	req.AppendHeader(gosip.NewHeader("Referred-By", "<"+c.srv.serviceURI(c)+">"))
	// The subscription exists before the REFER leaves: a NOTIFY may overtake the 202.
	sub := &referSub{id: req.CSeq().SeqNo}
	c.refer = sub
	defer func() { c.refer = nil }()
	ct, err := c.startTx(txRefer, nil, req, c.srv.cfg.ReferTimeout)
	if err != nil {
		c.log.Warn("refer not sent", "error", err)
		return referFailed
	}
	c.log.Info("refer sent", "rule", dec.Rule, "refer_to", referTo)
	timeout := time.NewTimer(c.srv.cfg.ReferTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev := <-c.events:
			switch e := ev.(type) {
			case responseEvent:
				if e.tx != ct {
					break
				}
				res := e.res
				if res.IsProvisional() {
					continue
				}
				ct.final = true
				switch {
				case endsDialog(res.StatusCode):
					c.log.Info("refer answered: the caller's dialog is gone", "status", res.StatusCode)
					c.dialogGone(&c.in.side)
					return referGone
				case !res.IsSuccess():
					c.log.Info("refer rejected", "status", res.StatusCode, "reason", res.Reason)
					return referRejected
				}
				c.log.Info("refer accepted", "status", res.StatusCode)
				continue
			case txDoneEvent:
				if e.tx != ct || ct.final {
					break
				}
				c.log.Info("refer got no answer: the caller's dialog is gone", "error", e.err)
				c.dialogGone(&c.in.side) // a timeout counts as 408
				return referGone
			}
			c.handle(ev)
			switch code := sub.code; {
			case code < 200:
			case code < 300:
				c.log.Info("refer succeeded", "sipfrag", code)
				c.setOutcome(records.OutcomeReferred)
				c.finish(EndTransferred)
				return referDone
			default:
				c.log.Info("refer failed", "sipfrag", code)
				return referFailed
			}
		case <-timeout.C:
			c.log.Info("refer timed out", "after", c.srv.cfg.ReferTimeout)
			return referFailed
		case <-c.ctx.Done():
			return referAbandoned
		}
	}
}
