#!/usr/bin/env bash
# Instructions per relayed stream of the gateway (user space, noise-free): fleetgate under callgrind
# with one agent (synthetic engine, 1,000 tok/s, 32 tokens — bench_relay.py's paced workload), N1 then
# N2 sequential streams from fleet-load; (Ir(N2) − Ir(N1)) / (N2 − N1) cancels start-up and shutdown.
# A companion to bench_relay.py's CPU figures when the machine is shared (issue #11 item 6).
#
# Usage: LoadTests/callgrind_relay.sh BIN_DIR [BIN_DIR ...]   (each a release build's directory with
# fleetgate and fleet-agent; fleet-load is taken from .build/release). Valgrind work-arounds as in
# callgrind_h2.sh: a copy stripped of debug info, and a shim serving the main queue.
# KEEP=DIR keeps each build's N2 run for callgrind_annotate (callgrind_shim.sh's callgrind_result).
# AGENT_DIR=DIR runs every build's gateway with DIR's fleet-agent (default: each build's own; an older agent paces
# tokens differently, see bench_relay.py --baseline-own-agent).
set -euo pipefail
N1=${N1:-40}; N2=${N2:-120}
load=$(cd "$(dirname "$0")/.." && pwd)/.build/release/fleet-load
work=$(mktemp -d)
. "$(dirname "$0")/callgrind_shim.sh"
build_callgrind_shim "$work"
# Under callgrind the loop runs ~50× slower: shedding on its lag is turned off (0), or it would refuse.
export FLEETGATE_FLEET_SECRET=bench-secret-0123456789abcdef FLEETGATE_TUNNEL_AUTH=token FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS=0
instructions() {  # DIR BIN N → total Ir of the gateway
  local dir=$1 bin=$2 n=$3 out=$work/callgrind.out client tunnel admin gw agent
  client=$(free_port); tunnel=$(free_port); admin=$(free_port)
  LD_PRELOAD=$work/shim.so valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" --threads 1 --log-level info \
    > /dev/null 2>&1 &
  gw=$!
  wait_port "$admin"
  start_synthetic_car "${AGENT_DIR:-$dir}" "$tunnel" "$admin" 512 "${DECODE_TPS:-1000}"
  agent=$car_pid
  sequential_streams "$load" "$client" "$n"
  callgrind_control -d "$gw" >/dev/null 2>&1
  kill -KILL "$gw" "$agent"; wait "$gw" "$agent" 2>/dev/null || true
  callgrind_result "$out".1 "$bin" "$n"
}
report() {  # DIR IR_AT_N1 IR_AT_N2
  echo "$1 | paced 32-token stream | $(( ($3 - $2) / (N2 - N1) )) instructions/stream (Ir $2 at $N1, $3 at $N2)"
}
each_build fleetgate "$@"
rm -rf "$work"
