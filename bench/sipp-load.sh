#!/usr/bin/env bash
# Load check with sipp: CALLS calls at RATE calls/s, each held HOLD ms, against a
# freshly built matterline on loopback (its own temp database, no Clio). Prints
# sipp's success/failure counts and the server's peak RSS and CPU time. Bounded:
# sipp stops after CALLS calls or 120 s.
#   bench/sipp-load.sh [CALLS=200] [RATE=20] [HOLD=3000]
set -euo pipefail
CALLS=${1:-200} RATE=${2:-20} HOLD=${3:-3000}
cd "$(dirname "$0")/.."
command -v sipp >/dev/null || { echo "needs sipp (Debian sip-tester)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
CGO_ENABLED=0 go build -o "$dir/matterline" ./cmd/matterline
port=$(( 30000 + RANDOM % 20000 ))
cat > "$dir/m.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:$port"]
  max_calls: 1000
  invite_rate: 1000
  invite_burst: 1000
http:
  listen: "127.0.0.1:0"
store:
  path: $dir/m.db
media:
  rtp_ports: "20000-29999"
log:
  level: warn
YAML
"$dir/matterline" serve -config "$dir/m.yaml" 2>"$dir/server.log" &
pid=$!
sleep 1
start=$(date +%s.%N)
timeout 120 sipp -sn uac -r "$RATE" -m "$CALLS" -d "$HOLD" -l 500 -nostdin -timeout 110s \
	-trace_stat -stf "$dir/stat.csv" "127.0.0.1:$port" >/dev/null 2>"$dir/sipp.err" || true
end=$(date +%s.%N)
ok=$(tail -n 1 "$dir/stat.csv" | awk -F';' '{print $16}')
fail=$(tail -n 1 "$dir/stat.csv" | awk -F';' '{print $18}')
read -r utime stime < <(awk '{print $14, $15}' "/proc/$pid/stat")
hz=$(getconf CLK_TCK)
rss=$(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")
printf 'calls %s at %s/s held %sms: successful %s, failed %s, wall %.1fs\n' "$CALLS" "$RATE" "$HOLD" "$ok" "$fail" "$(echo "$end - $start" | bc)"
printf 'server cpu %.2fs, peak rss %s\n' "$(echo "($utime + $stime) / $hz" | bc -l)" "$rss"
