#!/bin/sh
# Benchmarks of the local phone index (docs/clio.md "Index"): a lookup answered
# from a 5,000-contact index (ns/op, p50 and p99, allocations) and the
# throughput of a full sync against the fake Clio on loopback (contacts/s).
#
#   bench/index.sh            # 3 runs each
#   COUNT=1 bench/index.sh
set -eu
cd "$(dirname "$0")/.."
go test ./clio -run '^$' -bench 'BenchmarkIndexLookup|BenchmarkLookupIndexed|BenchmarkIndexSync' \
	-benchmem -count "${COUNT:-3}" -benchtime "${BENCHTIME:-1s}"
