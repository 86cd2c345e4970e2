//go:build unix

package sip

import "syscall"

// fdLimit is the soft RLIMIT_NOFILE (Go raises it to the hard limit at start).
func fdLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
