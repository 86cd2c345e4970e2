package media

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// The agreed API of package media (the former api_stub.go), checked at compile time:
// package sip is written against these exact signatures.
var (
	_ func(Direction) string                                 = Direction.String
	_ func(Direction) Direction                              = Direction.Answer
	_ func(Direction) bool                                   = Direction.OnHold
	_ func([]byte) (Description, error)                      = ParseSDP
	_ func(Description, []Codec) (Negotiated, error)         = Negotiate
	_ func(LocalSDP) []byte                                  = BuildSDP
	_ func(int, int, time.Duration) (*PortAllocator, error)  = NewPortAllocator
	_ func(*PortAllocator, netip.Addr) (*net.UDPConn, error) = (*PortAllocator).Listen
	_ func(*PortAllocator, int)                              = (*PortAllocator).Release
	_ func(*PortAllocator) int                               = (*PortAllocator).InUse
	_ func(*Prompt) time.Duration                            = (*Prompt).Duration
	_ func(string) (*Prompts, error)                         = LoadPrompts
	_ func(*Prompts, string) *Prompt                         = (*Prompts).Get
	_ func([]byte) (Digit, error)                            = ParseDTMFRelay
	_ func(SessionConfig) (*Session, error)                  = NewSession
	_ func(*Session, context.Context, *Prompt) error         = (*Session).Play
	_ func(*Session) <-chan Digit                            = (*Session).DTMF
	_ func(*Session, Digit)                                  = (*Session).InjectDTMF
	_ func(*Session, netip.AddrPort)                         = (*Session).SetRemote
	_ func(*Session, Direction)                              = (*Session).SetDirection
	_ func(*Session) <-chan struct{}                         = (*Session).Timeout
	_ func(*Session) <-chan struct{}                         = (*Session).Done
	_ func(*Session) int                                     = (*Session).LocalPort
	_ func(*Session) Stats                                   = (*Session).Stats
	_ func(*Session) error                                   = (*Session).Close
	_ error                                                  = ErrBadSDP
	_ error                                                  = ErrNoCommonCodec
	_ error                                                  = ErrNoPorts
	_ []string                                               = []string{PromptGreeting, PromptInvalid, PromptGoodbye, PromptPleaseHold, PromptTransferring, PromptNobody, PromptLeaveMessage, PromptThankYou, PromptOutsideHours}
	_ [5]Direction                                           = [5]Direction{DirUnknown, DirSendRecv, DirSendOnly, DirRecvOnly, DirInactive}
	_ Codec                                                  = Codec{Name: PCMU.Name, PayloadType: PCMA.PayloadType, ClockRate: 8000}
	_                                                        = Description{Addr: netip.AddrPort{}, Codecs: nil, DTMFPayloadType: 0, HasDTMF: false, Direction: 0, PtimeMS: 0, SessionVersion: 0}
	_                                                        = Negotiated{Codec: Codec{}, DTMFPayloadType: 0, HasDTMF: false, Remote: netip.AddrPort{}, Direction: 0}
	_                                                        = LocalSDP{Addr: netip.Addr{}, Port: 0, SessionID: 0, Version: 0, Codecs: nil, DTMFPayloadType: 0, HasDTMF: false, Direction: 0, PtimeMS: 0}
	_                                                        = Prompt{Name: "", Samples: []int16(nil)}
	_                                                        = Digit{Key: '1', Duration: 0, Source: ""}
	_                                                        = SessionConfig{Conn: (*net.UDPConn)(nil), Codec: Codec{}, HasDTMF: false, DTMFPayloadType: 0, Remote: netip.AddrPort{}, InactivityTimeout: 0, OnClose: func() {}, Logger: nil}
	_                                                        = Stats{PacketsIn: 0, PacketsOut: 0, Dropped: 0}
)
