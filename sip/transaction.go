package sip

import (
	"context"
	"fmt"
	"time"

	gosip "github.com/emiago/sipgo/sip"
)

// txKind is what one of our client transactions is for. The zero value means
// unknown.
type txKind uint8

const (
	txUnknown  txKind = iota
	txInvite          // the outbound leg's INVITE
	txReinvite        // our re-INVITE (hold reflection) in a dialog
	txRefer           // a cold transfer's REFER
)

// clientTx is one of our client transactions as the call sees it: responses and
// its end arrive as events (responseEvent, txDoneEvent) on the call's goroutine.
type clientTx struct {
	kind  txKind
	leg   *outLeg // nil: the caller's dialog
	tx    gosip.ClientTransaction
	final bool // a final response arrived
}

// startTx sends req in a new client transaction and forwards its responses to
// the dialog's owner until the transaction ends, timeout passes (0: no limit of
// our own, for the INVITE, which its ring timeout bounds) or the owner is gone.
func (c *call) startTx(kind txKind, leg *outLeg, req *gosip.Request, timeout time.Duration) (*clientTx, error) {
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	// The context bounds only connecting (DNS, TCP, the TLS handshake): sipgo
	// keeps none of it in the transaction.
	connCtx, connCancel := context.WithTimeout(ctx, connectTimeout)
	tx, err := c.srv.client.TransactionRequest(connCtx, req)
	connCancel()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	ct := &clientTx{kind: kind, leg: leg, tx: tx}
	// Responses go to whoever owns the dialog: the call, or the outbound leg's
	// inbox (the call reads it while it owns the leg, a reaper afterwards).
	post, stop := c.post, c.done
	if leg != nil {
		post, stop = leg.post, leg.closed
	}
	if kind == txInvite {
		// 2xx retransmissions and other forks' 2xx reach the call too
		// (RFC 3261 §13.2.2.4; RFC 6026 Accepted state).
		tx.OnRetransmission(func(res *gosip.Response) {
			if res.IsSuccess() {
				post(responseEvent{tx: ct, res: res})
			}
		})
	}
	c.srv.goTracked(func() {
		defer cancel()
		deadline := ctx.Done()
		if timeout <= 0 {
			deadline = nil // the INVITE's own timers and the ring timeout bound it
		}
		for {
			select {
			case res := <-tx.Responses():
				if !post(responseEvent{tx: ct, res: res}) {
					tx.Terminate()
					return
				}
			case <-tx.Done():
				post(txDoneEvent{tx: ct, err: tx.Err()})
				return
			case <-deadline:
				tx.Terminate()
				post(txDoneEvent{tx: ct, err: ctx.Err()})
				return
			case <-stop:
				tx.Terminate()
				return
			}
		}
	})
	return ct, nil
}

// roundTrip sends req and waits for its final response (at most timeout),
// outside any call's event loop: teardown's BYE, a forked dialog's BYE.
func (s *Server) roundTrip(req *gosip.Request, timeout time.Duration) (*gosip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tx, err := s.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				return res, fmt.Errorf("%s answered %d %s", req.Method, res.StatusCode, res.Reason)
			}
			return res, nil
		case <-tx.Done():
			return nil, fmt.Errorf("%s: %w", req.Method, tx.Err())
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", req.Method, ctx.Err())
		}
	}
}

// sideOf is the side a transaction runs in.
func (c *call) sideOf(ct *clientTx) *side {
	if ct.leg != nil {
		return &ct.leg.side
	}
	return &c.in.side
}

// handleResponse handles a response the flow did not wait for: our re-INVITEs'
// answers, the outbound INVITE's retransmitted or forked 2xx, late REFER answers.
func (c *call) handleResponse(ev responseEvent) {
	ct, res := ev.tx, ev.res
	switch ct.kind {
	case txReinvite:
		c.reinviteAnswered(c.sideOf(ct), ct, res)
	case txInvite:
		ct.leg.strayInviteResponse(res)
	case txRefer:
		if !res.IsProvisional() && endsDialog(res.StatusCode) {
			c.log.Info("refer answered: dialog gone", "status", res.StatusCode)
			c.dialogGone(&c.in.side)
		}
	}
}

// handleTxDone handles the end of a transaction the flow did not wait for: our
// re-INVITE without a final response counts as 408 (§12.2.1.2).
func (c *call) handleTxDone(ev txDoneEvent) {
	ct := ev.tx
	if ct.final || ct.kind != txReinvite {
		return
	}
	s := c.sideOf(ct)
	if s.reinvite != ct {
		return
	}
	s.reinvite = nil
	s.oa.rollback()
	s.log.Info("re-invite timed out: dialog gone", "side", s.name)
	c.dialogGone(s)
}
