#!/usr/bin/env bash
# Instructions per request of fleet-h2bench (FleetHTTP2 on one event loop) under callgrind: a noise-free
# companion to bench_h2.py's CPU figures when the machine is shared. Each workload runs twice, with N1
# and N2 requests on the same connections; (Ir(N2) − Ir(N1)) / (N2 − N1) cancels start-up and shutdown.
#
# Usage: LoadTests/callgrind_h2.sh BIN_DIR [BIN_DIR ...]   (each holding a release fleet-h2bench)
#
# Two work-arounds for valgrind 3.19: it cannot read Swift's DWARF 5, so it runs a copy stripped of
# debug info (symbols stay); and it crashes when libdispatch's dispatch_main() ends the main thread
# (Swift's async main calls it on Linux), so a preloaded shim serves the main queue from the main
# thread instead. The profile is dumped with callgrind_control, then the server is killed.
set -euo pipefail
work=$(mktemp -d)
body=$work/body; head -c 16384 /dev/zero > "$body"
. "$(dirname "$0")/callgrind_shim.sh"
build_callgrind_shim "$work"
workloads=(
  "GET / (c10 m10)|-c 10 -m 10|/|1000|3000"
  "SSE 100 events (c10 m10)|-c 10 -m 10|/sse?n=100|100|300"
  "POST /echo 16 KiB (c10 m10)|-c 10 -m 10 -d $body|/echo|200|600"
)
instructions() {  # BIN PATH N ARGS → total Ir of the server process
  local bin=$1 path=$2 n=$3 args=$4 out port pid
  out=$work/callgrind.out
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  LD_PRELOAD=$work/shim.so valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$port" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  # shellcheck disable=SC2086
  h2load $args -n "$n" "http://127.0.0.1:$port$path" > "$work/h2load.txt" || true
  grep -q " $n succeeded" "$work/h2load.txt" || { grep "^requests:" "$work/h2load.txt" >&2; touch "$work/failed"; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  callgrind_total "$out".1; rm -f "$out" "$out".1
}
for dir in "$@"; do
  bin=$work/fleet-h2bench-$(echo "$dir" | tr -c 'A-Za-z0-9' _)
  strip --strip-debug -o "$bin" "$dir/fleet-h2bench"
  for w in "${workloads[@]}"; do
    IFS='|' read -r name args path n1 n2 <<< "$w"
    for attempt in 1 2 3; do  # a run where h2load did not complete every request is repeated
      rm -f "$work/failed"; a=$(instructions "$bin" "$path" "$n1" "$args"); [ -e "$work/failed" ] && continue
      b=$(instructions "$bin" "$path" "$n2" "$args"); [ -e "$work/failed" ] || break
    done
    echo "$dir | $name | $(( (b - a) / (n2 - n1) )) instructions/request (Ir $a at $n1, $b at $n2)"
  done
done
rm -rf "$work"
