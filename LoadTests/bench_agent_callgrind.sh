#!/usr/bin/env bash
# Instructions per relayed stream of the agent's openai-local relay (user space, noise-free): fleet-agent
# under callgrind in front of burst_backend.py (32 token chunks a stream), behind a normal `fleetgate serve
# --threads 1`; N1 then N2 sequential streams from fleet-load; (Ir(N2) − Ir(N1)) / (N2 − N1) cancels start-up
# and shutdown. bench_agent.py's companion when the machine is shared (issue #19).
#
# Usage: LoadTests/bench_agent_callgrind.sh GATEWAY_DIR AGENT_DIR [AGENT_DIR ...]   (GATEWAY_DIR: a release
# build's directory with fleetgate and fleet-load; each AGENT_DIR one with fleet-agent). Valgrind work-arounds
# as in callgrind_relay.sh: a copy stripped of debug info, and a shim serving the main queue.
# KEEP=DIR keeps each build's N2 run for callgrind_annotate (callgrind_shim.sh's callgrind_result).
set -euo pipefail
N1=${N1:-40}; N2=${N2:-120}
gateway_dir=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
. "$here/callgrind_shim.sh"
build_callgrind_shim "$work"
export FLEETGATE_FLEET_SECRET=bench-secret-0123456789abcdef FLEETGATE_TUNNEL_AUTH=token
backend=$(free_port)
python3 "$here/burst_backend.py" --port "$backend" > /dev/null 2>&1 &
backend_pid=$!
trap 'kill "$backend_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
instructions() {  # DIR BIN N → total Ir of the agent
  local bin=$2 n=$3 out=$work/callgrind.out client tunnel admin gw agent token
  client=$(free_port); tunnel=$(free_port); admin=$(free_port)
  "$gateway_dir/fleetgate" serve --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" \
    --threads 1 --log-level info > /dev/null 2>&1 &
  gw=$!
  wait_port "$admin"
  token=$("$gateway_dir/fleetgate" token issue --vehicle-id bench-car --region eu-central)
  FLEET_AGENT_TOKEN=$token LD_PRELOAD=$work/shim.so valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" run \
    --gateway "127.0.0.1:$tunnel" --vehicle-id bench-car --region eu-central --hardware ai5 \
    --engine openai-local --upstream "http://127.0.0.1:$backend/v1" --slots 64 --log-level warning \
    > /dev/null 2>&1 &
  agent=$!
  wait_car "$admin"
  sequential_streams "$gateway_dir/fleet-load" "$client" "$n"
  callgrind_control -d "$agent" >/dev/null 2>&1
  kill -KILL "$gw" "$agent"; wait "$gw" "$agent" 2>/dev/null || true
  callgrind_result "$out".1 "$bin" "$n"
}
report() {  # DIR IR_AT_N1 IR_AT_N2
  echo "$1 | burst 32-chunk stream, openai-local | $(( ($3 - $2) / (N2 - N1) )) instructions/stream, $(( ($3 - $2) / (N2 - N1) / 32 ))/chunk (Ir $2 at $N1, $3 at $N2)"
}
each_build fleet-agent "$@"
