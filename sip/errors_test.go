package sip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

func TestMapError(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", err)) }
	tests := []struct {
		name string
		err  error
		code int
		end  EndReason
	}{
		{"nil", nil, 200, EndUnknown},
		{"untrusted", ErrUntrusted, 403, EndRejected},
		{"over capacity", ErrOverCapacity, 503, EndRejected},
		{"draining wrapped", wrap(ErrDraining), 503, EndRejected},
		{"closed", ErrClosed, 503, EndRejected},
		{"no ports", wrap(media.ErrNoPorts), 503, EndError},
		{"no sdp", ErrNoSDP, 488, EndRejected},
		{"no common codec wrapped", wrap(media.ErrNoCommonCodec), 488, EndRejected},
		{"bad sdp wrapped", wrap(media.ErrBadSDP), 488, EndRejected},
		{"interval too small", wrap(&IntervalTooSmallError{Requested: time.Minute, MinSE: MinSE}), 422, EndRejected},
		{"bad request", wrap(ErrBadRequest), 400, EndRejected},
		{"bad extension", wrap(&BadExtensionError{Options: []string{"100rel"}}), 420, EndRejected},
		{"call not found", ErrCallNotFound, 481, EndRejected},
		{"method", ErrMethodNotAllowed, 405, EndRejected},
		{"pending", ErrRequestPending, 491, EndRejected},
		{"body", wrap(ErrUnsupportedBody), 415, EndRejected},
		{"cancelled transaction", wrap(gosip.ErrTransactionCanceled), 487, EndCallerCancel},
		{"no ack", ErrNoAck, 408, EndNoAck},
		{"deadline", wrap(context.DeadlineExceeded), 408, EndError},
		{"transaction timeout", gosip.ErrTransactionTimeout, 408, EndError},
		{"context cancelled", context.Canceled, 487, EndShutdown},
		{"anything else", errors.New("boom"), 500, EndError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapError(tt.err)
			if got.Code != tt.code || got.End != tt.end {
				t.Fatalf("mapError(%v) = %d/%v, want %d/%v", tt.err, got.Code, got.End, tt.code, tt.end)
			}
			if got.Phrase == "" {
				t.Error("empty reason phrase")
			}
			if got.Code == 488 && got.Warning == "" {
				t.Error("488 without warning text")
			}
		})
	}
}

func TestEnumStrings(t *testing.T) {
	if StateUnknown.String() != "unknown" || StateInMenu.String() != "in_menu" || StateEnded.String() != "ended" || CallState(200).String() != "unknown" {
		t.Error("call state names")
	}
	if EndUnknown.String() != "unknown" || EndCallerBye.String() != "caller_bye" || EndReason(200).String() != "unknown" {
		t.Error("end reason names")
	}
	if int(StateAgent)+1 != len(callStateNames) || int(EndOurBye)+1 != len(endReasonNames) {
		t.Error("name tables out of step with the enums")
	}
}
