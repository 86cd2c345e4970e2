package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// ngTries and ngTimeout bound one ng request: rtpengine caches replies by
// cookie, so a retransmission with the same cookie is safe.
const (
	ngTries   = 3
	ngTimeout = time.Second
)

// ngClient speaks rtpengine's ng control protocol: one UDP datagram
// "COOKIE <bencoded dictionary>" per request, the reply "COOKIE <dictionary>".
type ngClient struct {
	conn *net.UDPConn
	next uint64
	buf  []byte
}

func dialNG(addr string) (*ngClient, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relaygen: ng address %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("relaygen: ng address %q: loopback only", addr)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("relaygen: ng: %w", err)
	}
	return &ngClient{conn: conn, buf: make([]byte, 65536)}, nil
}

func (c *ngClient) Close() error { return c.conn.Close() }

// do sends one command and returns the reply dictionary; a reply whose result
// is not "ok" is an error carrying rtpengine's error-reason.
func (c *ngClient) do(ctx context.Context, req map[string]any) (map[string]any, error) {
	c.next++
	cookie := "rg" + strconv.FormatUint(c.next, 10)
	msg := append([]byte(cookie), ' ')
	msg, err := bencode(msg, req)
	if err != nil {
		return nil, err
	}
	for try := 0; try < ngTries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := c.conn.Write(msg); err != nil {
			return nil, fmt.Errorf("relaygen: ng send: %w", err)
		}
		deadline := time.Now().Add(ngTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.conn.SetReadDeadline(deadline)
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return nil, fmt.Errorf("relaygen: ng read: %w", err)
			}
			b := c.buf[:n]
			sp := bytes.IndexByte(b, ' ')
			if sp < 0 || string(b[:sp]) != cookie {
				continue // a late reply to an earlier try
			}
			v, err := bdecode(b[sp+1:])
			if err != nil {
				return nil, err
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: reply is not a dictionary", errBencode)
			}
			if r, _ := d["result"].(string); r != "ok" {
				why, _ := d["error-reason"].(string)
				return nil, fmt.Errorf("relaygen: ng %v: result %q: %s", req["command"], r, why)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("relaygen: ng %v: no reply after %d tries", req["command"], ngTries)
}

// ngCall is one call relayed by rtpengine.
type ngCall struct {
	callID, fromTag, toTag string
}

// setupNG allocates call k on rtpengine: offer with the caller's SDP (the
// rewritten SDP's port is where the callee sends), answer with the callee's SDP
// (its port is where the caller sends).
func setupNG(ctx context.Context, ng *ngClient, k int, caller, callee *endpoint, tag string) (*ngCall, error) {
	c := &ngCall{
		callID:  fmt.Sprintf("relaygen-%s-%d", tag, k),
		fromTag: fmt.Sprintf("caller-%d", k),
		toTag:   fmt.Sprintf("callee-%d", k),
	}
	offer := buildSDP(sdpOptions{port: caller.port(), sessionID: uint64(2*k + 1)})
	rep, err := ng.do(ctx, map[string]any{"command": "offer", "call-id": c.callID, "from-tag": c.fromTag,
		"sdp": offer})
	if err != nil {
		return nil, err
	}
	sdp, _ := rep["sdp"].(string)
	if callee.remote, err = sdpAudioAddr([]byte(sdp)); err != nil {
		return nil, fmt.Errorf("relaygen: offer reply: %w", err)
	}
	answer := buildSDP(sdpOptions{port: callee.port(), sessionID: uint64(2*k + 2)})
	rep, err = ng.do(ctx, map[string]any{"command": "answer", "call-id": c.callID, "from-tag": c.fromTag,
		"to-tag": c.toTag, "sdp": answer})
	if err != nil {
		return c, err
	}
	sdp, _ = rep["sdp"].(string)
	if caller.remote, err = sdpAudioAddr([]byte(sdp)); err != nil {
		return c, fmt.Errorf("relaygen: answer reply: %w", err)
	}
	return c, nil
}

// deleteNG releases a call on rtpengine.
func deleteNG(ctx context.Context, ng *ngClient, c *ngCall) error {
	_, err := ng.do(ctx, map[string]any{"command": "delete", "call-id": c.callID, "from-tag": c.fromTag})
	return err
}
