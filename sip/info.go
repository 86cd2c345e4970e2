package sip

import (
	"errors"
	"fmt"

	"github.com/matterline/matterline/media"
)

// errEmptyInfo is an INFO without a body (a keep-alive): answered 200.
var errEmptyInfo = errors.New("sip: info without body")

// maxInfoBody bounds INFO bodies we look at.
const maxInfoBody = 4096

// infoDigit reads a DTMF digit from a legacy (RFC 6086 §1 "legacy INFO usage")
// application/dtmf-relay INFO body. Other content types wrap ErrUnsupportedBody
// (415); an unreadable dtmf-relay body wraps ErrBadRequest (400).
func infoDigit(contentType string, body []byte) (media.Digit, error) {
	if len(body) == 0 {
		return media.Digit{}, errEmptyInfo
	}
	if !isContentType(contentType, "application/dtmf-relay") {
		return media.Digit{}, fmt.Errorf("%w: %q", ErrUnsupportedBody, contentType)
	}
	if len(body) > maxInfoBody {
		return media.Digit{}, fmt.Errorf("%w: dtmf-relay body of %d bytes", ErrBadRequest, len(body))
	}
	d, err := media.ParseDTMFRelay(body)
	if err != nil {
		return media.Digit{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	d.Source = "info"
	return d, nil
}
