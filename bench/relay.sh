#!/usr/bin/env bash
# RTP relay cost of matterline beside rtpengine, on this machine, in one run.
# For each N (default 200 1000): N calls relayed by rtpengine (userspace,
# --table=-1, set up over its ng protocol), then N calls bridged by a freshly
# started matterline (agent.mode first, the agent played by relaygen), each with
# 20 ms PCMU both ways (100 pkt/s per call through the relay), 2 s warm-up and a
# measured window. Each relay is restarted for every N so its RSS baseline is
# clean. Prints a markdown table; raw results, logs and matterline CPU profiles
# go to OUT (default bench/results/<date>).
#   bench/relay.sh [N...]
#   env: OUT=dir WINDOW=10s PROFILE=1 (0: no matterline CPU profile)
# Needs rtpengine (Debian rtpengine-daemon; installed with apt-get when missing
# and run as root). Loopback only; every step bounded; processes and the temp
# dir are cleaned up on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ $# -gt 0 ]; then NS=("$@"); else NS=(200 1000); fi
for n in "${NS[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 4000 ] || { echo "N must be 1..4000: $n" >&2; exit 2; }
done
WINDOW=${WINDOW:-10s}
PROFILE=${PROFILE:-1}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

if ! command -v rtpengine >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		timeout 600 apt-get install -y --no-install-recommends rtpengine-daemon >"$OUT/apt.log" 2>&1 ||
			{ echo "installing rtpengine-daemon failed, see $OUT/apt.log" >&2; exit 1; }
	else
		echo "needs rtpengine (Debian: apt-get install rtpengine-daemon)" >&2
		exit 1
	fi
fi

dir=$(mktemp -d)
relay_pid=""
stop_relay() {
	if [ -n "$relay_pid" ]; then
		kill -TERM "$relay_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$relay_pid" 2>/dev/null || true
		wait "$relay_pid" 2>/dev/null || true
		relay_pid=""
	fi
}
trap 'stop_relay; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# 2 RTP sockets per call in relaygen and in each relay, plus SIP and HTTP.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

CGO_ENABLED=0 go build -o "$dir/matterline" ./cmd/matterline
go build -o "$dir/relaygen" ./bench/relaygen

# free_port: a UDP+TCP port below the ephemeral range that nothing listens on.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$(( 30000 + RANDOM % 2500 ))
		if ! ss -Hlnu "sport = :$p" | grep -q . && ! ss -Hlnt "sport = :$p" | grep -q .; then
			echo "$p"; return 0
		fi
	done
	echo "no free port" >&2; return 1
}

# wait_listen PROTO:PORT...: until the relay process itself listens on every
# port (u: UDP, t: TCP) (10 s); false when it exits first or another process
# holds a port.
wait_listen() {
	local p ok
	for _ in $(seq 1 100); do
		kill -0 "$relay_pid" 2>/dev/null || return 1
		ok=1
		for p in "$@"; do
			ss "-Hln${p%%:*}p" "sport = :${p#*:}" | grep -q "pid=$relay_pid," || ok=0
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# Relay port ranges: both below the ephemeral range (32768-) where relaygen's
# own sockets live, and apart from each other.
RTPE_PORTS=(10000 19999)
ML_PORTS="20000-29999"
RG_TIMEOUT=300

run_relaygen() { # NAME N ARGS...
	local name=$1 n=$2; shift 2
	timeout $((RG_TIMEOUT + 45)) "$dir/relaygen" -n "$n" -window "$WINDOW" -pid "$relay_pid" \
		-timeout "${RG_TIMEOUT}s" "$@" >"$OUT/$name-$n.txt" 2>"$OUT/$name-$n.err" || {
		echo "relaygen against $name at N=$n failed (exit $?): $(tail -n 3 "$OUT/$name-$n.err")" >&2
		return 0
	}
	grep '^rtpengine:\|^matterline:' "$OUT/$name-$n.txt" >&2 || true
}

for n in "${NS[@]}"; do
	started=0
	for attempt in 1 2 3; do # a port taken meanwhile by another process: retry
		ng=$(free_port)
		rtpengine --config-file=none --table=-1 --foreground --log-stderr -L 4 \
			--listen-ng="127.0.0.1:$ng" --interface=127.0.0.1 \
			--port-min="${RTPE_PORTS[0]}" --port-max="${RTPE_PORTS[1]}" \
			--pidfile="$dir/rtpengine.pid" >"$OUT/rtpengine-$n.log" 2>&1 &
		relay_pid=$!
		if wait_listen "u:$ng"; then started=1; break; fi
		stop_relay
	done
	[ "$started" = 1 ] || { echo "rtpengine did not start, see $OUT/rtpengine-$n.log" >&2; exit 1; }
	run_relaygen rtpengine "$n" -target rtpengine -ng "127.0.0.1:$ng"
	stop_relay
done

token="relaybench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
for n in "${NS[@]}"; do
	started=0
	for attempt in 1 2 3; do # a port taken meanwhile by another process: retry
		sp=$(free_port); ap=$(free_port); hp=$(free_port)
		while [ "$ap" = "$sp" ] || [ "$hp" = "$sp" ] || [ "$hp" = "$ap" ]; do ap=$(free_port); hp=$(free_port); done
		rm -rf "$dir/ml" && mkdir -m 700 "$dir/ml"
		cat >"$dir/ml/m.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:$sp"]
  trusted_sources: ["127.0.0.1/32"]
  max_calls: $((n + 100))
  invite_rate: $((n + 100))
  invite_burst: $((n + 100))
http:
  listen: "127.0.0.1:$hp"
store:
  path: $dir/ml/m.db
media:
  rtp_ports: "$ML_PORTS"
  rtp_timeout: 120s
transfer:
  messages_dir: $dir/ml/messages
log:
  level: warn
agent:
  mode: first
  uri: "sip:agent@127.0.0.1:$ap"
YAML
		MATTERLINE_HTTP_TOKEN=$token "$dir/matterline" serve -config "$dir/ml/m.yaml" >"$OUT/matterline-$n.log" 2>&1 &
		relay_pid=$!
		if wait_listen "u:$sp" "t:$hp" && ! ss -Hlnu "sport = :$ap" | grep -q .; then started=1; break; fi
		stop_relay
	done
	[ "$started" = 1 ] || { echo "matterline did not start, see $OUT/matterline-$n.log" >&2; exit 1; }
	prof=()
	if [ "$PROFILE" = 1 ]; then
		prof=(-pprof-url "http://127.0.0.1:$hp/debug/pprof/profile" -pprof-out "$OUT/matterline-relay-$n.cpu.pprof")
	fi
	RELAYGEN_PPROF_TOKEN=$token run_relaygen matterline "$n" -target matterline \
		-sip "127.0.0.1:$sp" -agent "127.0.0.1:$ap" "${prof[@]}"
	stop_relay
	if [ -s "$OUT/matterline-relay-$n.cpu.pprof" ]; then
		timeout 60 go tool pprof -top -nodecount=25 "$OUT/matterline-relay-$n.cpu.pprof" \
			>"$OUT/matterline-relay-$n.top.txt" 2>/dev/null || true
	fi
done

# kv FILE KEY: a value of relaygen's RESULT line ("-" when missing).
kv() {
	local v
	v=$(grep -s '^RESULT ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}')
	echo "${v:--}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b != "-") printf "%.2f", b / a; else print "-" }'; }

{
	echo "relay cost, $(nproc) CPUs, $(uname -r), $(rtpengine --version 2>&1 | head -n 1), matterline $(git -C "$root" rev-parse --short HEAD), window $WINDOW, load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
	echo
	echo "| N | rtpengine µs/pkt | matterline µs/pkt | ratio | rtpengine latency p50/p99 µs | matterline latency p50/p99 µs | rtpengine lost (calls) | matterline lost (calls) | rtpengine KiB/call | matterline KiB/call | generator CPU % (rtpe/ml) |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for n in "${NS[@]}"; do
		r="$OUT/rtpengine-$n.txt" m="$OUT/matterline-$n.txt"
		echo "| $n | $(kv "$r" cpu_us_per_pkt) | $(kv "$m" cpu_us_per_pkt) | $(ratio "$(kv "$r" cpu_us_per_pkt)" "$(kv "$m" cpu_us_per_pkt)") |" \
			"$(kv "$r" lat_p50_us)/$(kv "$r" lat_p99_us) | $(kv "$m" lat_p50_us)/$(kv "$m" lat_p99_us) |" \
			"$(kv "$r" lost) ($(kv "$r" loss_calls)) of $(kv "$r" sent) | $(kv "$m" lost) ($(kv "$m" loss_calls)) of $(kv "$m" sent) |" \
			"$(kv "$r" kib_per_call) | $(kv "$m" kib_per_call) | $(kv "$r" gen_cpu_pct)/$(kv "$m" gen_cpu_pct) |"
	done
	echo
	echo "ratio = matterline / rtpengine; \"of\" = packets sent in the window (N x 100 x window when the generator kept up: fewer means it was starved by other load, see skipped_ticks in OUT)."
	echo "Calls up: $(for n in "${NS[@]}"; do printf 'N=%s rtpengine %s matterline %s; ' "$n" "$(kv "$OUT/rtpengine-$n.txt" up)" "$(kv "$OUT/matterline-$n.txt" up)"; done)"
} | tee "$OUT/table.md"
echo "results in $OUT"
