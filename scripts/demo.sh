#!/usr/bin/env bash
# The README's first command: installs what is needed, then runs `fleetgate demo` (Ctrl-C stops it).
#   ./scripts/demo.sh                 # simulated cars in five regions
#   ./scripts/demo.sh --real-model    # plus one car in eu-central backed by a real model (SmolLM2-135M)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build --product fleetgate
args=()
runtime=""
for arg in "$@"; do
    if [ "$arg" = "--real-model" ]; then runtime=1; else args+=("$arg"); fi
done
if [ -n "$runtime" ]; then
    PORT="${PORT:-8081}" ./scripts/real-model.sh >/tmp/fleetgate-real-model.log 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:${PORT:-8081}/v1/models" >/dev/null && break
        kill -0 $pid 2>/dev/null || { echo "the model server failed; see /tmp/fleetgate-real-model.log" >&2; exit 1; }
        sleep 0.5
    done
    args+=(--real-model "http://127.0.0.1:${PORT:-8081}/v1")
    .build/debug/fleetgate demo ${args[@]+"${args[@]}"}
else
    exec .build/debug/fleetgate demo ${args[@]+"${args[@]}"}
fi
