#!/usr/bin/env bash
# A steady-state callgrind profile of central streams through the gateway: fleetgate (one event loop) under
# callgrind with BACKEND=nginx (static_backend.py: the 32-chunk body in one read, as in the capacity runs;
# the default) or BACKEND=burst (burst_backend.py: one chunked part a token) as central capacity for
# eu-central; WARM streams on one h2c connection (h2load -c 1 -m 1), the counters zeroed, N more, dumped.
# Prints the instructions a stream and writes OUT (callgrind_annotate --inclusive=yes OUT | swift demangle).
# STREAM=false sends `stream: false` requests (BACKEND=burst only: nginx answers every POST with its one
# streamed file). Start-up, warm-up and shutdown are left out, unlike callgrind_central.sh's difference of
# two runs.
#
# Usage: LoadTests/callgrind_steady.sh BIN_DIR OUT   (BIN_DIR: a release build's directory with fleetgate)
set -euo pipefail
WARM=${WARM:-40}; N=${N:-100}; BACKEND=${BACKEND:-nginx}; STREAM=${STREAM:-true}
# nginx serves one streamed file to every POST: it cannot answer `stream: false` with JSON.
[ "$STREAM" = true ] || [ "$BACKEND" = burst ] || { echo "STREAM=false needs BACKEND=burst" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
N2=0  # callgrind_shim.sh's KEEP logic is not used here
. "$root/LoadTests/callgrind_shim.sh"
build_callgrind_shim "$work"
export FLEETGATE_FLEET_SECRET=bench-secret-0123456789abcdef FLEETGATE_TUNNEL_AUTH=token FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS=0
echo "{\"model\":\"fleet-8b\",\"max_tokens\":32,\"stream\":$STREAM,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}" > "$work/body.json"
backend_port=$(free_port)
script=$([ "$BACKEND" = burst ] && echo burst_backend.py || echo static_backend.py)
# setsid: the backend's own group (static_backend.py starts nginx), stopped as one at the end.
setsid "${FLEETGATE_PYTHON:-python3}" "$root/LoadTests/$script" --port "$backend_port" > /dev/null 2>&1 &
backend=$!
gw=
# Under `set -e` a failing kill in the trap would end it early and leave nginx running: each step may fail.
cleanup() {
  [ -z "$gw" ] || kill -KILL "$gw" 2>/dev/null || true
  kill -- -"$backend" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_port "$backend_port"
bin=$work/fleetgate
strip --strip-debug -o "$bin" "$1/fleetgate"
client=$(free_port); tunnel=$(free_port); admin=$(free_port)
LD_PRELOAD=$work/shim.so valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" serve \
  --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" --threads 1 --log-level info \
  --central "eu-central=http://127.0.0.1:$backend_port/v1" > /dev/null 2>&1 &
gw=$!
wait_port "$admin"
wait_central "$client" "$work/body.json"  # the central directory's first model refresh
load() { h2load -n "$1" -c 1 -m 1 -d "$work/body.json" -H 'content-type: application/json' \
  "http://127.0.0.1:$client/v1/chat/completions" 2>&1 | awk '/^status codes:/ {print $3}'; }
load "$WARM" > /dev/null
callgrind_control -z "$gw" > /dev/null 2>&1
ok=$(load "$N")
callgrind_control -d "$gw" > /dev/null 2>&1
kill -KILL "$gw"; wait "$gw" 2>/dev/null || true
[ "$ok" = "$N" ] || { echo "only $ok of $N answered 200" >&2; exit 1; }
dump=$(ls -t "$work"/cg.out.* | head -1)
cp "$dump" "$2"
echo "$1 | $BACKEND backend, stream: $STREAM | $(( $(callgrind_total "$2") / N )) instructions/stream (steady state, $N streams)"
