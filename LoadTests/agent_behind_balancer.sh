#!/usr/bin/env bash
# A car behind a TCP load balancer while its gateway restarts: the balancer (lying_proxy.py) accepts every
# connection and closes it when the gateway behind it is down. One synthetic car dials through it; the
# gateway is SIGTERMed (it tells the car to reconnect), stays down DOWN seconds (default 20), and starts again.
# Prints the car's dials while the gateway was down and how long after the restart the car was registered
# (helper-104: ~250 dials in 20 s before the agent backed off there).
#
# Usage: LoadTests/agent_behind_balancer.sh BIN_DIR   (a build's directory with fleetgate and fleet-agent)
set -euo pipefail
bin=$1; down=${DOWN:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
balancer=$(free_port); tunnel=$(free_port); control=$(free_port); client=$(free_port); admin=$(free_port)
export FLEETGATE_FLEET_SECRET=balancer-secret-0123456789abcdef
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
gateway() {
  "$bin/fleetgate" serve --tunnel-auth token --client-port "$client" --tunnel-port "$tunnel" --admin-port "$admin" \
    > "$work/$1" 2>&1 &
  gw=$!; pids+=("$gw")
}
python3 -u "$root/LoadTests/lying_proxy.py" "$balancer" "$tunnel" "$control" > "$work/balancer.log" 2>&1 &
pids+=($!)
gateway gateway-1.log
sleep 2
token=$("$bin/fleetgate" token issue --vehicle-id v-balanced --region eu-central 2>/dev/null | tail -1)
FLEET_AGENT_TOKEN=$token "$bin/fleet-agent" run --engine synthetic --vehicle-id v-balanced --region eu-central \
  --gateway "127.0.0.1:$balancer" --log-level debug > "$work/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "Car registered" "$work/gateway-1.log" && break; sleep 0.1; done
before=$(grep -c "Tunnel dialled\|Tunnel connected$\|Tunnel connected\"" "$work/agent.log" || true)
kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
sleep "$down"
during=$(( $(grep -c "Tunnel dialled\|Tunnel connected$\|Tunnel connected\"" "$work/agent.log" || true) - before ))
start=$(date +%s.%N)
gateway gateway-2.log
for _ in $(seq 600); do grep -q "Car registered" "$work/gateway-2.log" && break; sleep 0.1; done
grep -q "Car registered" "$work/gateway-2.log" || { echo "the car did not rejoin within 60 s" >&2; exit 1; }
echo "$bin: $during dials in the ${down} s the gateway was down; rejoined $(python3 -c "import time; print(round(time.time() - $start, 2))") s after its restart"
