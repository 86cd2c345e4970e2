//go:build race

package media

// raceEnabled: the race detector makes sync.Pool drop items at random, so pooled
// buffers (pion/srtp's in-place XOR buffer) allocate under -race only.
const raceEnabled = true
