package phone

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// Header is the value of the first header name of the INVITE that started an
// answered call ("" when absent or when the phone placed the call), e.g. the
// X-Matterline-* headers a B2BUA sends to a voice agent.
func (c *Call) Header(name string) string {
	if c.uas == nil || c.uas.InviteRequest == nil {
		return ""
	}
	if h := c.uas.InviteRequest.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Refer sends REFER inside the call (RFC 3515) with Refer-To: <target> and
// waits for its final response (202 accepted, 403 refused ...). The NOTIFYs
// that follow are answered 200 and reported as EventNotify.
func (c *Call) Refer(ctx context.Context, target string) (*sip.Response, error) {
	return c.request(ctx, sip.REFER, "", nil, sip.NewHeader("Refer-To", "<"+target+">"))
}

// Source is the address ("ip:port") the INVITE that started an answered call
// came from ("" when the phone placed the call): for a voice agent, the B2BUA
// to send REFER targets to.
func (c *Call) Source() string {
	if c.uas == nil || c.uas.InviteRequest == nil {
		return ""
	}
	return c.uas.InviteRequest.Source()
}
