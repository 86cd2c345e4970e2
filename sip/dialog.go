package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// dialog is one leg's RFC 3261 §12 dialog state, the same for both roles: the
// caller's leg (matterline is the UAS) and an outbound leg (matterline is the
// UAC). It knows the route set, the remote target, both CSeq spaces and the tags,
// builds every request we send inside the dialog (§12.2.1.1) and the ACK for a
// 2xx (§13.2.2.4), and checks the requests we receive (§12.2.2). Only the call's
// own goroutine uses it, so it needs no lock.
type dialog struct {
	callID    string
	localTag  string
	remoteTag string // "" until an outbound leg's 2xx (or a forked answer) names it
	local     gosip.Uri
	remote    gosip.Uri
	// routeSet is the Record-Route of the dialog-creating exchange: in request
	// order for the UAS (§12.1.1), reversed for the UAC (§12.1.2).
	routeSet     []gosip.Uri
	remoteTarget gosip.Uri
	localCSeq    uint32
	remoteCSeq   uint32

	transport string         // "UDP", "TCP" or "TLS"
	secure    bool           // TLS leg started by a sips: request: our Contact is sips:
	laddr     netip.AddrPort // the listener our requests leave from (UDP)
	advertise netip.Addr     // our address in Via and Contact
	// connDest is where requests go when the route set is empty and the remote
	// target is not to be used directly: the caller's TCP connection (its Contact
	// may be unreachable).
	connDest  string
	userAgent string
	// peer is the address the dialog started with: the INVITE's source (caller's
	// leg) or where our INVITE went (outbound leg).
	peer netip.Addr
	// ended: a 481 or 408 (or a transaction timeout) to one of our requests ended
	// the dialog (§12.2.1.2), or a BYE went either way.
	ended bool
}

// uasDialog is the caller leg's dialog from its INVITE: the route set is the
// Record-Route in order, the remote target the Contact (§12.1.1).
func uasDialog(req *gosip.Request, localTag string) *dialog {
	d := &dialog{
		callID:     req.CallID().Value(),
		localTag:   localTag,
		local:      *req.To().Address.Clone(),
		remote:     *req.From().Address.Clone(),
		remoteCSeq: req.CSeq().SeqNo,
		localCSeq:  0,
		transport:  strings.ToUpper(req.Transport()),
	}
	d.remoteTag, _ = req.From().Params.Get("tag")
	d.peer = sourceAddr(req)
	d.routeSet = recordRoutes(req.GetHeaders("Record-Route"))
	if ct := req.Contact(); ct != nil {
		d.remoteTarget = *ct.Address.Clone()
	}
	if d.transport != "UDP" && len(d.routeSet) == 0 {
		d.connDest = req.Source()
	}
	// RFC 3261 §8.1.1.8, §12.1.1: a sips: Request-URI over TLS gets a sips: Contact.
	d.secure = d.transport == "TLS" && strings.EqualFold(req.Recipient.Scheme, "sips")
	return d
}

// recordRoutes reads Record-Route (or Route) values in header order; a header may
// carry several comma-separated entries.
func recordRoutes(hs []gosip.Header) []gosip.Uri {
	var out []gosip.Uri
	for _, h := range hs {
		for _, v := range splitHeaderList(h.Value()) {
			var u gosip.Uri
			params := gosip.NewParams()
			if _, err := gosip.ParseAddressValue(v, &u, &params); err != nil {
				continue
			}
			out = append(out, u)
		}
	}
	return out
}

// splitHeaderList splits a header value on the commas that separate entries,
// not those inside <...> or quotes.
func splitHeaderList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// confirmUAC completes an outbound leg's dialog from a 2xx (or a reliable 18x):
// the remote tag, the route set (Record-Route reversed, §12.1.2) and the remote
// target.
func (d *dialog) confirmUAC(res *gosip.Response) {
	d.remoteTag = toTag(res)
	rr := recordRoutes(res.GetHeaders("Record-Route"))
	for i, j := 0, len(rr)-1; i < j; i, j = i+1, j-1 {
		rr[i], rr[j] = rr[j], rr[i]
	}
	d.routeSet = rr
	if ct := res.Contact(); ct != nil {
		d.remoteTarget = *ct.Address.Clone()
	}
}

// fork returns a copy of an outbound leg's dialog for another 2xx to the same
// INVITE (a forking proxy): its own tag, route set and target (§13.2.2.4).
func (d *dialog) fork(res *gosip.Response) *dialog {
	f := *d
	f.routeSet = nil
	f.confirmUAC(res)
	return &f
}

func toTag(m gosip.Message) string {
	var to *gosip.ToHeader
	switch m := m.(type) {
	case *gosip.Response:
		to = m.To()
	case *gosip.Request:
		to = m.To()
	}
	if to == nil || to.Params == nil {
		return ""
	}
	tag, _ := to.Params.Get("tag")
	return tag
}

func fromTag(req *gosip.Request) string {
	f := req.From()
	if f == nil || f.Params == nil {
		return ""
	}
	tag, _ := f.Params.Get("tag")
	return tag
}

// matches reports whether req belongs to this dialog: Call-ID and both tags
// (the request's To tag is ours, its From tag theirs).
func (d *dialog) matches(req *gosip.Request) bool {
	id := req.CallID()
	return id != nil && id.Value() == d.callID && toTag(req) == d.localTag && fromTag(req) == d.remoteTag
}

// checkRemoteCSeq applies §12.2.2 to a request from the peer: a CSeq lower than
// or equal to the last one is out of order (500), except ACK and CANCEL. It
// records the new CSeq.
func (d *dialog) checkRemoteCSeq(req *gosip.Request) bool {
	if req.IsAck() || req.IsCancel() || req.CSeq() == nil {
		return true
	}
	seq := req.CSeq().SeqNo
	if d.remoteCSeq != 0 && seq <= d.remoteCSeq {
		return false
	}
	d.remoteCSeq = seq
	return true
}

// refreshTarget takes a target refresh request's Contact as the new remote target
// (§12.2.2: re-INVITE and UPDATE).
func (d *dialog) refreshTarget(req *gosip.Request) {
	if ct := req.Contact(); ct != nil {
		d.remoteTarget = *ct.Address.Clone()
	}
}

// request builds a request inside the dialog (§12.2.1.1): the next local CSeq
// (ACK and CANCEL reuse the INVITE's, so they go through ack), From with our tag,
// To with theirs, the Request-URI and Route from the route set, our Via and
// Contact.
func (d *dialog) request(method gosip.RequestMethod) *gosip.Request {
	d.localCSeq++
	return d.build(method, d.localCSeq)
}

// ack builds the ACK for a 2xx to the INVITE with CSeq seq (§13.2.2.4): same
// CSeq number, the dialog's route set, a new branch.
func (d *dialog) ack(seq uint32) *gosip.Request {
	req := d.build(gosip.ACK, seq)
	req.SetBody(nil)
	return req
}

func (d *dialog) build(method gosip.RequestMethod, seq uint32) *gosip.Request {
	ruri, routes := d.remoteTarget, d.routeSet
	var routeHdrs []gosip.Uri
	switch {
	case len(routes) == 0:
	case isLooseRoute(routes[0]):
		routeHdrs = routes
	default:
		// Strict routing (RFC 2543 proxies, §12.2.1.1): the first route becomes
		// the Request-URI, the remote target the last Route.
		ruri = routes[0]
		ruri.UriParams = nil
		routeHdrs = append(append([]gosip.Uri(nil), routes[1:]...), d.remoteTarget)
	}
	req := gosip.NewRequest(method, *ruri.Clone())
	req.SetTransport(d.transport)
	if d.transport == "UDP" && d.laddr.IsValid() {
		req.Laddr = gosip.Addr{IP: net.IP(d.laddr.Addr().AsSlice()), Port: int(d.laddr.Port())}
	}
	via := &gosip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: d.transport,
		Host: d.advertise.String(), Port: int(d.laddr.Port()), Params: gosip.NewParams()}
	via.Params.Add("branch", gosip.GenerateBranch())
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	maxf := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	for _, r := range routeHdrs {
		req.AppendHeader(&gosip.RouteHeader{Address: *r.Clone()})
	}
	from := &gosip.FromHeader{Address: *d.local.Clone(), Params: gosip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &gosip.ToHeader{Address: *d.remote.Clone(), Params: gosip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	callID := gosip.CallIDHeader(d.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: seq, MethodName: method})
	if method != gosip.ACK && method != gosip.CANCEL {
		req.AppendHeader(d.contact())
	}
	if d.userAgent != "" && method != gosip.ACK {
		req.AppendHeader(gosip.NewHeader("User-Agent", d.userAgent))
	}
	switch {
	case len(routeHdrs) > 0:
		req.SetDestination(uriHostPort(routeHdrs[0], d.transport))
	case d.connDest != "":
		req.SetDestination(d.connDest)
	}
	return req
}

func isLooseRoute(u gosip.Uri) bool {
	if u.UriParams == nil {
		return false
	}
	_, ok := u.UriParams.Get("lr")
	return ok
}

// uriHostPort is where a URI's requests go: its host and port (the transport's
// default port when absent).
func uriHostPort(u gosip.Uri, transport string) string {
	port := u.Port
	if port == 0 {
		port = gosip.DefaultPort(strings.ToLower(transport))
	}
	host := strings.Trim(u.Host, "[]")
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// contact is our Contact for the dialog's requests and responses.
func (d *dialog) contact() *gosip.ContactHeader {
	h := &gosip.ContactHeader{Address: gosip.Uri{Scheme: "sip", User: "matterline",
		Host: d.advertise.String(), Port: int(d.laddr.Port())}}
	switch {
	case d.secure:
		h.Address.Scheme = "sips" // TLS implied (RFC 5630 §3.2: no transport=tls with sips)
	case d.transport == "TCP" || d.transport == "TLS":
		h.Address.UriParams = gosip.NewParams()
		h.Address.UriParams.Add("transport", strings.ToLower(d.transport))
	}
	return h
}

// fromPeer reports whether an in-dialog request came from the dialog's peer: the
// address the dialog started with (the INVITE's source for the caller's leg,
// the address our INVITE went to for an outbound leg), the first hop of the
// route set, or the remote target's host. A request with the right Call-ID and
// tags from anywhere else is a stranger's (a hijack attempt).
func (d *dialog) fromPeer(src netip.Addr) bool {
	if !src.IsValid() {
		return false
	}
	if d.peer.IsValid() && d.peer == src {
		return true
	}
	for _, u := range []*gosip.Uri{d.firstHop(), &d.remoteTarget} {
		if u == nil {
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err == nil && a.Unmap() == src {
			return true
		}
	}
	return false
}

func (d *dialog) firstHop() *gosip.Uri {
	if len(d.routeSet) == 0 {
		return nil
	}
	return &d.routeSet[0]
}

// endsDialog reports whether a response to one of our in-dialog requests ends the
// dialog: 481 and 408 (§12.2.1.2). A transaction timeout counts as 408.
func endsDialog(code int) bool { return code == 481 || code == 408 }
