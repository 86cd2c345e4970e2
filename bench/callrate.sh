#!/usr/bin/env bash
# Call rate, matterline beside a bare sipgo UAS (bench/bareuas) in one run: for
# each RATE, sipp's built-in uac scenario (INVITE, 100, 200, ACK, hold, BYE)
# runs DUR seconds against each target on loopback UDP, and the table shows
# answered calls/s, failures, INVITE->200 time (p50/p99), the server's CPU per
# call, and sipp's own CPU share (the generator shares the cores).
# A benchmark, not a test: it asserts nothing.
#
#   bench/callrate.sh [RATE...]           # default: 1000 2000 3000 calls/s
#   DUR=5 HOLD=200 bench/callrate.sh 100  # quick run
#   OUT=dir bench/callrate.sh             # results dir (default bench/results/<date-time>)
#
# Env: DUR seconds per run (15), HOLD ms each call is held (500), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(1000 2000 3000)
DUR=${DUR:-15}
HOLD=${HOLD:-500}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
for r in "${RATES[@]}" "$DUR" "$HOLD"; do
	[[ $r =~ ^[1-9][0-9]*$ ]] || { echo "callrate: rates, DUR and HOLD must be positive integers, got '$r'" >&2; exit 2; }
done

if ! command -v sipp >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "callrate: installing sipp (Debian package sip-tester)" >&2
		apt-get install -y sip-tester >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 && apt-get install -y sip-tester >/dev/null 2>&1; } ||
			{ echo "callrate: apt-get install sip-tester failed" >&2; exit 1; }
	else
		echo "callrate: needs sipp: install the Debian/Ubuntu package sip-tester (or SIPp >= 3.6)" >&2
		exit 1
	fi
fi
command -v curl >/dev/null || { echo "callrate: needs curl (for the profiles)" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d)
server_pid="" prof_pid=""
cleanup() {
	for p in $prof_pid $server_pid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "callrate: building matterline and bareuas" >&2
CGO_ENABLED=0 go build -o "$tmp/matterline" ./cmd/matterline
CGO_ENABLED=0 go build -o "$tmp/bareuas" ./bench/bareuas

hz=$(getconf CLK_TCK)
token="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# free_port prints a loopback port in 16000-19999 (outside the RTP range below)
# that nothing listens on, by UDP or TCP.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((16000 + RANDOM % 4000))
		if [ -z "$(ss -Hln "( sport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return
		fi
	done
	echo "callrate: no free port found" >&2
	return 1
}

# cpu_ticks PID: utime+stime of the process, in clock ticks; nothing when it is gone.
# (comm, field 2, holds no space for our two servers, so fields count from 1.)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }

# wait_udp PORT: until something listens on udp PORT (10 s at most).
wait_udp() {
	for _ in $(seq 100); do
		[ -n "$(ss -Hlnu "( sport = :$1 )" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	echo "callrate: nothing listens on udp $1 after 10 s" >&2
	return 1
}

# start_server TARGET RATE DIR: starts bareuas or a fresh matterline, sets
# server_pid, sip_port and http_port.
start_server() {
	local target=$1 rate=$2 d=$3
	sip_port=$(free_port)
	http_port=""
	if [ "$target" = bare ]; then
		"$tmp/bareuas" -listen "127.0.0.1:$sip_port" 2>"$d/server.log" &
		server_pid=$!
	else
		http_port=$(free_port)
		local db="$tmp/m-$rate.db"
		rm -f "$db" "$db-wal" "$db-shm"
		# Concurrent calls are about rate x hold; the margin covers set-up and tear-down.
		local maxc=$((rate * (HOLD / 1000 + 3) + 1000))
		(
			umask 077
			cat >"$tmp/matterline.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:$sip_port"]
  trusted_sources: ["127.0.0.1/32"]
  max_calls: $maxc
  invite_rate: $((rate * 4))
  invite_burst: $((rate * 4))
http:
  listen: "127.0.0.1:$http_port"
  token: "$token"
store:
  path: $db
media:
  rtp_ports: "20000-40000"
log:
  level: warn
YAML
		)
		# The results keep the config without the token.
		sed "s/token: .*/token: REDACTED/" "$tmp/matterline.yaml" >"$d/matterline.yaml"
		"$tmp/matterline" serve -config "$tmp/matterline.yaml" 2>"$d/server.log" &
		server_pid=$!
	fi
	wait_udp "$sip_port"
}

stop_server() {
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# stat_col FILE NAME: the last value of column NAME in sipp's ';' statistics file.
stat_col() {
	[ -s "$1" ] || { echo -; return; }
	awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
		c { v = $c } END { print (v == "" ? "-" : v) }' "$1"
}

# run_one TARGET RATE PROFILE [TAG]: one sipp run, its figures in DIR/row.tsv;
# without TAG also a line of $OUT/callrate.tsv (a TAG run is kept out of the table).
run_one() {
	local target=$1 rate=$2 profile=$3 tag=${4:-}
	local d="$OUT/callrate/$target-$rate${tag:+-$tag}" load
	load=$(cut -d" " -f1 /proc/loadavg)
	rm -rf "$d"
	mkdir -p "$d"
	start_server "$target" "$rate" "$d"
	local calls=$((rate * DUR)) limit=$((rate * (HOLD / 1000 + 3) + 1000))
	local c0 c1
	c0=$(cpu_ticks "$server_pid")
	if [ "$profile" = 1 ] && [ "$target" = matterline ]; then
		# 10 s CPU profile from second 2 of the run (shorter runs get a shorter profile).
		local secs=$((DUR - 3))
		[ "$secs" -gt 10 ] && secs=10
		[ "$secs" -lt 1 ] && secs=1
		(sleep 2; curl -s -m $((secs + 15)) -H "Authorization: Bearer $token" \
			"http://127.0.0.1:$http_port/debug/pprof/profile?seconds=$secs" \
			-o "$OUT/matterline-callrate-$rate.cpu.pprof") &
		prof_pid=$!
	fi
	echo "callrate: $target at $rate calls/s for ${DUR}s (hold ${HOLD}ms)" >&2
	local TIMEFORMAT='%R %U %S'
	# sipp's own wall, user and system seconds (bash's time counts waited-for children).
	{ time (cd "$d" && timeout -k 5 $((DUR + HOLD / 1000 + 45)) sipp -sn uac "127.0.0.1:$sip_port" \
		-r "$rate" -m "$calls" -d "$HOLD" -l "$limit" -nostdin \
		-recv_timeout 10000 -timeout $((DUR + HOLD / 1000 + 40))s \
		-trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1 -trace_screen \
		>sipp.out 2>sipp.err || echo "sipp exit $?" >sipp.rc); } 2>"$d/sipp.time"
	c1=$(cpu_ticks "$server_pid")
	if [ -n "$prof_pid" ]; then
		wait "$prof_pid" 2>/dev/null || true
		prof_pid=""
		curl -s -m 20 -H "Authorization: Bearer $token" "http://127.0.0.1:$http_port/debug/pprof/heap" \
			-o "$OUT/matterline-callrate-$rate.heap.pprof" || true
	fi
	local rss
	rss=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true)
	if [ -z "$c1" ]; then
		echo "callrate: the $target server exited during the run; its log: $d/server.log" >&2
		tail -n 5 "$d/server.log" >&2 || true
		c1=$c0 rss=""
	fi
	stop_server

	local stat="$d/stat.csv" rtt
	rtt=$(ls "$d"/*_rtt.csv 2>/dev/null | head -n 1 || true)
	local ok fail created
	ok=$(stat_col "$stat" 'SuccessfulCall(C)')
	fail=$(stat_col "$stat" 'FailedCall(C)')
	created=$(stat_col "$stat" 'TotalCallCreated')
	local p50=- p99=- aps=-
	if [ -n "$rtt" ]; then
		# response_time_ms of rtd 1 (INVITE -> 200), sorted; nearest-rank percentiles.
		awk -F';' 'NR > 1 && $3 == 1 { print $2 }' "$rtt" | sort -n >"$d/rtt.sorted"
		read -r p50 p99 < <(awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "- -"; exit }
			i = int(NR * 0.50); if (i < NR * 0.50) i++; j = int(NR * 0.99); if (j < NR * 0.99) j++
			if (i < 1) i = 1; if (j < 1) j = 1
			printf "%s %s\n", ms(v[i]), ms(v[j]) }
			function ms(x) { return x < 1 ? "<1" : sprintf("%.0f", x) }' "$d/rtt.sorted")
		# answered calls/s: successful calls over the span between the first and
		# the last 200 (Date_ms is sipp's clock when the response came).
		aps=$(awk -F';' -v ok="$ok" 'NR > 1 && $3 == 1 { if (f == "") f = $1; l = $1 }
			END { if (l > f && ok != "-") printf "%.0f", ok / ((l - f) / 1000); else print "-" }' "$rtt")
	fi
	local wall usr sys
	read -r wall usr sys <"$d/sipp.time"
	local cpu_us=- sipp_share srv_share
	if [ -n "$rss" ] && [ "$ok" != - ] && [ "$ok" -gt 0 ]; then
		cpu_us=$(echo "($c1 - $c0) * 1000000 / $hz / $ok" | bc)
	fi
	sipp_share=$(echo "scale=0; ($usr + $sys) * 100 / $wall" | bc)
	srv_share=-
	[ -n "$rss" ] && srv_share=$(echo "scale=0; ($c1 - $c0) * 100 / $hz / $wall" | bc)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$target" "$created" "$ok" "$fail" \
		"$aps" "$p50" "$p99" "$cpu_us" "$srv_share" "$sipp_share" "$rss" "$load" >"$d/row.tsv"
	[ -n "$tag" ] || cat "$d/row.tsv" >>"$OUT/callrate.tsv"
}

printf 'rate\ttarget\tattempted\tsuccessful\tfailed\tanswered_per_s\tp50_ms\tp99_ms\tcpu_us_per_call\tserver_cpu_pct\tsipp_cpu_pct\tpeak_rss_kb\tload1_before\n' >"$OUT/callrate.tsv"
top=0
for r in "${RATES[@]}"; do [ "$r" -gt "$top" ] && top=$r; done
for r in "${RATES[@]}"; do
	run_one bare "$r" 0
	prof=0
	[ "$r" = "$top" ] && prof=1
	run_one matterline "$r" "$prof"
done

# The profile belongs to the highest rate matterline carried: if more than 1 %
# of its calls failed there, profile again at the highest rate that did better.
best=$(awk -F'\t' 'NR > 1 && $2 == "matterline" && $4 != "-" && $3 > 0 && $5 * 100 <= $3 && $1 > b { b = $1 } END { print b + 0 }' "$OUT/callrate.tsv")
if [ "$best" -gt 0 ] && [ "$best" != "$top" ]; then
	echo "callrate: matterline failed over 1% of calls at $top/s; profiling again at $best/s (not in the table)" >&2
	run_one matterline "$best" 1 profiled
fi

# The markdown table.
{
	echo "### Call rate: sipp uac, ${DUR} s per rate, hold ${HOLD} ms, UDP loopback"
	echo
	echo "| rate/s | target | answered/s | attempted | failed | INVITE→200 p50 ms | p99 ms | server CPU µs/call | matterline/bare CPU | server CPU % | sipp CPU % | peak RSS MB | load |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' 'NR > 1 {
		key = $1 SUBSEP $2; cpu[key] = $9
		row[NR] = $0; n = NR
	} END {
		for (i = 2; i <= n; i++) {
			split(row[i], f, "\t")
			ratio = "-"
			if (f[2] == "matterline" && cpu[f[1], "bare"] + 0 > 0 && f[9] != "-")
				ratio = sprintf("%.1f×", f[9] / cpu[f[1], "bare"])
			rss = (f[12] == "" ? "-" : sprintf("%.0f", f[12] / 1024))
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				f[1], f[2], f[6], f[3], f[5], f[7], f[8], f[9], ratio, f[10], f[11], rss, f[13]
		}
	}' "$OUT/callrate.tsv"
	echo
	echo "CPU % is of one core over sipp's run (100 = one core of $(nproc)); sipp is single-threaded, so sipp near 100 % means the generator, not the server, set the pace."
	echo "load is the 1-minute load average just before the run: anything else running on the machine shows there."
	echo "Response times come from sipp's -trace_rtt at 1 ms resolution. Raw figures: $OUT/callrate.tsv; sipp files under $OUT/callrate/."
	for f in "$OUT"/matterline-callrate-*.cpu.pprof; do
		[ -s "$f" ] && echo "Profile: $f (go tool pprof -top $f)"
	done
} | tee "$OUT/callrate.md"
