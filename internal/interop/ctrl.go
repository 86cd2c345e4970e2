package interop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// EventType is the type of a baresip event as ctrl_tcp reports it.
type EventType string

// Events of baresip 1.0.0 that tests wait for (there are more: CALL_RTCP,
// CALL_LOCAL_SDP, CALL_REMOTE_SDP, CALL_RTPESTAB, CALL_DTMF_START ...).
const (
	EventCallIncoming    EventType = "CALL_INCOMING"
	EventCallRinging     EventType = "CALL_RINGING"
	EventCallProgress    EventType = "CALL_PROGRESS"
	EventCallEstablished EventType = "CALL_ESTABLISHED"
	EventCallClosed      EventType = "CALL_CLOSED"
	EventCallRTPEstab    EventType = "CALL_RTPESTAB"
	EventCallDTMFStart   EventType = "CALL_DTMF_START"
	EventCallDTMFEnd     EventType = "CALL_DTMF_END"
)

// Event is one event baresip sent on the control socket.
type Event struct {
	Type       EventType `json:"type"`
	Class      string    `json:"class"`
	AccountAOR string    `json:"accountaor"`
	Direction  string    `json:"direction"`
	PeerURI    string    `json:"peeruri"`
	ID         string    `json:"id"`    // baresip's call id
	Param      string    `json:"param"` // e.g. the reason of CALL_CLOSED
	At         time.Time `json:"-"`
}

func (e Event) String() string {
	s := string(e.Type)
	if e.Param != "" {
		s += "(" + e.Param + ")"
	}
	return s
}

// ErrNoSuchEvent is returned (wrapped) by WaitEvent on timeout.
var ErrNoSuchEvent = errors.New("interop: baresip sent no such event")

// ctrlMessage is any JSON message on the ctrl_tcp socket: a command response
// ("response": true) or an event ("event": true).
type ctrlMessage struct {
	Response bool   `json:"response"`
	Event    bool   `json:"event"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
}

// ctrlConn is the one connection to baresip's ctrl_tcp module (it sends events
// only to its newest connection). A reader goroutine, stopped by close, reads
// every netstring: responses go to the command waiting for their token, events
// are kept in order.
type ctrlConn struct {
	conn net.Conn
	done chan struct{} // closed when the reader has returned

	mu       sync.Mutex
	nextTok  int
	pending  map[string]chan ctrlMessage
	events   []Event
	returned []bool // events[i] was returned by waitEvent
	changed  chan struct{}
	readErr  error
}

// dialCtrl connects to addr, retrying until baresip listens, timeout passes or
// the process exits.
func dialCtrl(addr string, timeout time.Duration, p *process) (*ctrlConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c := &ctrlConn{conn: conn, done: make(chan struct{}), pending: map[string]chan ctrlMessage{}, changed: make(chan struct{})}
			go c.read()
			return c, nil
		}
		if p.exited() {
			return nil, errors.New("baresip exited")
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("control socket %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *ctrlConn) close() {
	c.conn.Close()
	<-c.done
}

// read owns the connection's read side until it is closed.
func (c *ctrlConn) read() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	for {
		payload, err := readNetstring(r)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			for tok, ch := range c.pending {
				close(ch)
				delete(c.pending, tok)
			}
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
		var m ctrlMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			continue
		}
		c.mu.Lock()
		switch {
		case m.Response:
			if ch, ok := c.pending[m.Token]; ok {
				ch <- m
				delete(c.pending, m.Token)
			}
		case m.Event:
			var e Event
			_ = json.Unmarshal(payload, &e)
			e.At = time.Now()
			c.events = append(c.events, e)
			c.returned = append(c.returned, false)
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
	}
}

// command sends {"command","params","token"} and waits for the response with
// that token.
func (c *ctrlConn) command(command, params string, timeout time.Duration) (string, error) {
	c.mu.Lock()
	c.nextTok++
	tok := "t" + strconv.Itoa(c.nextTok)
	ch := make(chan ctrlMessage, 1)
	c.pending[tok] = ch
	readErr := c.readErr
	c.mu.Unlock()
	if readErr != nil {
		return "", fmt.Errorf("interop: baresip control socket: %w", readErr)
	}
	msg, _ := json.Marshal(map[string]string{"command": command, "params": params, "token": tok})
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.conn.Write(netstring(msg)); err != nil {
		return "", fmt.Errorf("interop: baresip %s: %w", command, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("interop: baresip %s: control socket closed", command)
		}
		if !m.OK {
			return m.Data, fmt.Errorf("%w: %s %q: %s", ErrCommand, command, params, m.Data)
		}
		return m.Data, nil
	case <-t.C:
		c.mu.Lock()
		delete(c.pending, tok)
		c.mu.Unlock()
		return "", fmt.Errorf("interop: baresip %s: no response within %v", command, timeout)
	}
}

func (c *ctrlConn) waitEvent(typ EventType, timeout time.Duration, p *process) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, e := range c.events {
			if e.Type == typ && !c.returned[i] {
				c.returned[i] = true
				c.mu.Unlock()
				return e, nil
			}
		}
		changed, readErr := c.changed, c.readErr
		c.mu.Unlock()
		if readErr != nil {
			return Event{}, fmt.Errorf("interop: waiting for %s: control socket: %w\n%s", typ, readErr, p.output())
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("%w: %s within %v; events: %v\n--- %s output ---\n%s",
				ErrNoSuchEvent, typ, timeout, c.allEvents(), p.name, p.output())
		}
	}
}

func (c *ctrlConn) allEvents() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// maxNetstring bounds one ctrl_tcp message.
const maxNetstring = 1 << 20

// netstring frames b as len ":" b "," (https://cr.yp.to/proto/netstrings.txt).
func netstring(b []byte) []byte {
	out := strconv.AppendInt(nil, int64(len(b)), 10)
	out = append(out, ':')
	out = append(out, b...)
	return append(out, ',')
}

func readNetstring(r *bufio.Reader) ([]byte, error) {
	head, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(head[:len(head)-1])
	if err != nil || n < 0 || n > maxNetstring {
		return nil, fmt.Errorf("interop: bad netstring length %q", head)
	}
	b := make([]byte, n+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if b[n] != ',' {
		return nil, fmt.Errorf("interop: netstring without trailing comma")
	}
	return b[:n], nil
}
