#!/usr/bin/env bash
# The performance suite in one command, one report: the machine it ran on, then
#   1. bench/callrate.sh   call rate, matterline beside a bare sipgo UAS (sipp)
#   2. bench/relay.sh      media relay, matterline beside rtpengine (ng protocol)
#   3. go test -bench BenchmarkBridgeRelay|BenchmarkSessionHandlePacket -benchmem ./media
#      (allocations per relayed packet must stay 0: the one check this script makes)
#   4. go test -bench BenchmarkDigitToInvite ./sip (key press to the transfer's INVITE)
# Everything lands in one directory, OUT (default bench/results/<date-time>),
# with the report in OUT/report.md. No timing is asserted: figures depend on
# the machine and on what else runs on it.
#
#   bench/perf.sh            # the full suite (a few minutes)
#   bench/perf.sh --smoke    # about ten seconds of each part, for CI
#
# Exit status: 1 when a part failed to run or a relay benchmark allocated.
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=0
for a in "$@"; do
	case $a in
	--smoke) smoke=1 ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "perf: unknown argument $a (only --smoke)" >&2; exit 2 ;;
	esac
done
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
report=$OUT/report.md
status=0

{
	echo "# matterline performance $([ "$smoke" = 1 ] && echo "(smoke run: figures are not meaningful)")"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- commit: $(git describe --always --dirty --tags 2>/dev/null || echo unknown)"
	echo "- cpu: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $(go version)"
	if command -v sipp >/dev/null; then
		echo "- sipp: $({ sipp -v 2>&1 || true; } | awk '/SIPp/ { print $2; exit }')"
	else
		echo "- sipp: not installed yet (bench/callrate.sh installs it as root)"
	fi
	echo
} >"$report"

# failed NAME RC: records a part's failure in the report.
failed() {
	echo "**$1 failed** (exit $2); its output is in $OUT." >>"$report"
	echo >>"$report"
	status=1
}

echo "perf: call rate" >&2
if [ "$smoke" = 1 ]; then
	OUT=$OUT DUR=5 HOLD=200 timeout -k 10 300 bench/callrate.sh 100 >"$OUT/callrate.out" 2>"$OUT/callrate.err"
else
	OUT=$OUT timeout -k 10 1800 bench/callrate.sh >"$OUT/callrate.out" 2>"$OUT/callrate.err"
fi
rc=$?
cat "$OUT/callrate.out" >>"$report"
echo >>"$report"
[ "$rc" = 0 ] || failed "bench/callrate.sh" "$rc"

if [ -f bench/relay.sh ]; then
	echo "perf: media relay" >&2
	args=() window=10s
	if [ "$smoke" = 1 ]; then args=(20) window=3s; fi
	echo "### Media relay (bench/relay.sh ${args[*]})" >>"$report"
	echo >>"$report"
	OUT=$OUT/relay WINDOW=$window timeout -k 10 1800 bash bench/relay.sh "${args[@]}" >"$OUT/relay.out" 2>"$OUT/relay.err"
	rc=$?
	cat "$OUT/relay.out" >>"$report"
	echo >>"$report"
	[ "$rc" = 0 ] || failed "bench/relay.sh" "$rc"
else
	echo "### Media relay: skipped (bench/relay.sh is missing)" >>"$report"
	echo >>"$report"
fi

echo "perf: media benchmarks" >&2
benchtime=1s
[ "$smoke" = 1 ] && benchtime=2000x
timeout -k 10 600 go test -run '^$' -bench 'BenchmarkBridgeRelay|BenchmarkSessionHandlePacket' \
	-benchmem -benchtime "$benchtime" ./media >"$OUT/media-bench.txt" 2>&1
rc=$?
{
	echo "### Media hot path (go test -bench -benchmem ./media, -benchtime $benchtime)"
	echo
	echo '```'
	grep -E '^(Benchmark|goos|goarch|cpu|pkg)' "$OUT/media-bench.txt"
	echo '```'
	echo
} >>"$report"
if [ "$rc" != 0 ]; then
	failed "go test -bench ./media" "$rc"
else
	# Allocations per relayed packet must stay 0.
	allocs=$(awk '/^Benchmark/ { for (i = 2; i <= NF; i++) if ($i == "allocs/op" && $(i-1) + 0 > 0) print $1 ": " $(i-1) " allocs/op" }' "$OUT/media-bench.txt")
	if [ -n "$allocs" ]; then
		{ echo "**The media hot path allocates** (it must not):"; echo '```'; echo "$allocs"; echo '```'; echo; } >>"$report"
		status=1
	elif ! grep -q 'allocs/op' "$OUT/media-bench.txt"; then
		failed "go test -bench ./media (no benchmark ran)" 1
	else
		echo "0 allocations per packet in every media benchmark." >>"$report"
		echo >>"$report"
	fi
fi

echo "perf: transfer start" >&2
n=20
[ "$smoke" = 1 ] && n=3
timeout -k 10 600 go test -run '^$' -bench 'BenchmarkDigitToInvite' -benchtime "${n}x" ./sip >"$OUT/transfer-bench.txt" 2>&1
rc=$?
{
	echo "### Transfer start: key press to the destination's INVITE (go test -bench BenchmarkDigitToInvite ./sip, ${n} calls)"
	echo
	echo "A warm rule with a 2 s message; end-ms counts from the digit's RFC 4733 end packet, press-ms from its first."
	echo
	echo '```'
	grep -E '^Benchmark' "$OUT/transfer-bench.txt"
	echo '```'
	echo
} >>"$report"
[ "$rc" = 0 ] || failed "go test -bench BenchmarkDigitToInvite ./sip" "$rc"

echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Everything is in $OUT." >>"$report"
cat "$report"
exit "$status"
