#!/usr/bin/env bash
# Instructions per central request of the gateway (user space, noise-free): fleetgate under callgrind
# with burst_backend.py as central capacity for eu-central (bench_gateway.py's central path), N1 then
# N2 sequential requests on one h2c connection (h2load -c 1 -m 1); (Ir(N2) − Ir(N1)) / (N2 − N1)
# cancels start-up and shutdown. MODE=stream: 32-chunk streams; MODE=plain: `stream: false` requests.
#
# Usage: LoadTests/callgrind_central.sh BIN_DIR [BIN_DIR ...]   (each a release build's directory with
# fleetgate). Valgrind work-arounds as in callgrind_h2.sh: a copy stripped of debug info, and a shim
# serving the main queue.
# KEEP=DIR keeps each build's N2 run for callgrind_annotate (callgrind_shim.sh's callgrind_result).
set -euo pipefail
N1=${N1:-40}; N2=${N2:-120}; MODE=${MODE:-stream}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
. "$(dirname "$0")/callgrind_shim.sh"
build_callgrind_shim "$work"
export FLEETGATE_FLEET_SECRET=bench-secret-0123456789abcdef FLEETGATE_TUNNEL_AUTH=token FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS=0
stream=$([ "$MODE" = plain ] && echo false || echo true)
echo "{\"model\":\"fleet-8b\",\"max_tokens\":32,\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}" > "$work/body.json"
backend_port=$(free_port)
"${FLEETGATE_PYTHON:-python3}" "$root/LoadTests/burst_backend.py" --port "$backend_port" > /dev/null 2>&1 &
backend=$!
trap 'kill "$backend" 2>/dev/null || true; rm -rf "$work"' EXIT
wait_port "$backend_port"
instructions() {  # DIR BIN N → total Ir of the gateway
  local bin=$2 n=$3 out=$work/callgrind.out client tunnel admin gw ok
  client=$(free_port); tunnel=$(free_port); admin=$(free_port)
  LD_PRELOAD=$work/shim.so valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" --threads 1 --log-level info \
    --central "eu-central=http://127.0.0.1:$backend_port/v1" > /dev/null 2>&1 &
  gw=$!
  wait_port "$admin"
  # Until the central directory's first model refresh (one request answered 200, in both runs, so it cancels).
  wait_central "$client" "$work/body.json"
  ok=$(h2load -n "$n" -c 1 -m 1 -d "$work/body.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$client/v1/chat/completions" 2>&1 | awk '/^status codes:/ {print $3}')
  [ "$ok" = "$n" ] || { echo "only $ok of $n answered 200" >&2; touch "$work/failed"; }
  callgrind_control -d "$gw" >/dev/null 2>&1
  kill -KILL "$gw"; wait "$gw" 2>/dev/null || true
  callgrind_result "$out".1 "$bin" "$n"
}
report() {  # DIR IR_AT_N1 IR_AT_N2
  echo "$1 | central $MODE | $(( ($3 - $2) / (N2 - N1) )) instructions/request (Ir $2 at $N1, $3 at $N2)"
}
each_build fleetgate "$@"
