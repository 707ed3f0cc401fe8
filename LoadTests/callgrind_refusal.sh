#!/usr/bin/env bash
# Instructions per refused request of the gateway (user space, noise-free): what a loop past capacity
# pays for each 503 server_overloaded (issue #19). fleetgate runs under callgrind with one event loop
# admitting one completion at a time (FLEETGATE_LIMITS_MAX_IN_FLIGHT_PER_EVENT_LOOP=1); one slow stream
# (a synthetic car at 2 tokens/s) holds that slot, so every later request is refused. h2load then sends
# N1, then N2 POSTs (stream: true, -c 1 -m 10, h2c) in one gateway run, each batch followed by a
# callgrind dump; (Ir(N2) − Ir(N1)) / (N2 − N1) cancels start-up, warm-up and the idle timers.
#
# CPU=1: no valgrind; the gateway's CPU time per refusal instead (user + kernel, from
# /proc/PID/task/*/schedstat, h2load -c 16 -m 10 at full speed): noisier, but with the syscalls.
#
# Usage: LoadTests/callgrind_refusal.sh BIN_DIR [BIN_DIR ...]   (each a release build's directory with
# fleetgate and fleet-agent). KEEP=DIR keeps each build's N2 profile there (callgrind_annotate
# --inclusive=yes FILE: where a refusal's instructions go). Valgrind work-arounds as in callgrind_h2.sh.
set -euo pipefail
N1=${N1:-1000}; N2=${N2:-4000}
work=$(mktemp -d)
. "$(dirname "$0")/callgrind_shim.sh"
build_callgrind_shim "$work"
printf '%s' '{"model":"fleet-8b","stream":true,"max_tokens":32,"messages":[{"role":"user","content":"hello"}]}' \
  > "$work/body.json"
export FLEETGATE_FLEET_SECRET=bench-secret-0123456789abcdef FLEETGATE_TUNNEL_AUTH=token
# Lag shedding off (under callgrind the loop runs ~50× slower): every refusal is the in-flight limit's.
export FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS=0 FLEETGATE_LIMITS_MAX_IN_FLIGHT_PER_EVENT_LOOP=1
batch() {  # PORT N → h2load's count of 503s (on stdout)
  h2load -n "$2" -c "${CONNS:-1}" -m 10 -d "$work/body.json" -H 'content-type: application/json' \
    "http://127.0.0.1:$1/v1/chat/completions" > "$work/h2load.txt" 2>&1 || true
  awk '/^status codes:/ {print $9}' "$work/h2load.txt"
}
for dir in "$@"; do
  bin=$work/fleetgate-$(echo "$dir" | tr -c 'A-Za-z0-9' _)
  strip --strip-debug -o "$bin" "$dir/fleetgate"
  out=$work/callgrind.out client=$(free_port) tunnel=$(free_port) admin=$(free_port)
  tool=(env LD_PRELOAD="$work/shim.so" valgrind --tool=callgrind --callgrind-out-file="$out")
  [ -n "${CPU:-}" ] && tool=()
  "${tool[@]}" "$bin" serve \
    --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" --threads 1 --log-level info \
    > /dev/null 2>&1 &
  gw=$!
  wait_port "$admin"
  start_synthetic_car "$dir" "$tunnel" "$admin" 4 2
  agent=$car_pid
  # The holder: admitted, then streams for minutes.
  curl -sN --http2-prior-knowledge "http://127.0.0.1:$client/v1/chat/completions" \
    -H 'content-type: application/json' \
    -d '{"model":"fleet-8b","stream":true,"max_tokens":2000,"messages":[{"role":"user","content":"hold"}]}' \
    > "$work/holder.txt" 2>&1 &
  holder=$!
  for _ in $(seq 600); do grep -q 'data:' "$work/holder.txt" 2>/dev/null && break; sleep 0.1; done
  if [ -n "${CPU:-}" ]; then
    cpu() { cat /proc/"$gw"/task/*/schedstat | awk '{s += $1} END {print s}'; }
    batch "$client" 2000 > /dev/null
    c0=$(cpu); r=$(CONNS=16 batch "$client" "$N2"); c1=$(cpu)
    kill -KILL "$gw" "$agent" "$holder"; wait "$gw" "$agent" "$holder" 2>/dev/null || true
    echo "$dir | refused POST (h2c, c16 m10) | $(( (c1 - c0) / N2 )) ns CPU/refusal ($r of $N2 refused)"
    continue
  fi
  warm=$(batch "$client" 200)
  callgrind_control -d "$gw" >/dev/null 2>&1
  r1=$(batch "$client" "$N1"); callgrind_control -d "$gw" >/dev/null 2>&1
  r2=$(batch "$client" "$N2"); callgrind_control -d "$gw" >/dev/null 2>&1
  kill -KILL "$gw" "$agent" "$holder"; wait "$gw" "$agent" "$holder" 2>/dev/null || true
  a=$(callgrind_total "$out".2)
  b=$(callgrind_total "$out".3)
  [ "$warm" = 200 ] && [ "$r1" = "$N1" ] && [ "$r2" = "$N2" ] || echo "$dir: not every request refused (503s: $warm/200, $r1/$N1, $r2/$N2)" >&2
  echo "$dir | refused POST (h2c, c1 m10) | $(( (b - a) / (N2 - N1) )) instructions/refusal (Ir $a for $N1, $b for $N2)"
  # KEEP=DIR keeps the N2 batch's profile for callgrind_annotate.
  if [ -n "${KEEP:-}" ]; then cp "$out".3 "$KEEP/callgrind.refusal.$(basename "$bin")"; fi
  rm -f "$out"*
done
rm -rf "$work"
