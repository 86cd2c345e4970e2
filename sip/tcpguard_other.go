//go:build !unix

package sip

// fdLimit is unknown off Unix; the default global cap applies.
func fdLimit() (uint64, bool) { return 0, false }
