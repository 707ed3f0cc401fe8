#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export FLEETGATE_PYTHON="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}/venv/bin/python"
export FLEETGATE_MODEL="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
swift build --build-tests
# Unit suites run in parallel. The integration suites kill, freeze and drain real processes and
# time tokens and PINGs: on a 2-core machine, run side by side, they starve each other's event
# loops and measure the machine instead of the gateway — so they run one at a time (~2 min).
swift test --skip-build --parallel --skip IntegrationTests "$@"
swift test --skip-build --no-parallel --filter IntegrationTests "$@"
# The live harness's smoke scenario (under a minute): its own gateway, 90 cars on real tunnels,
# churn of every kind, open-loop clients from six countries; exits 1 on any invariant breach.
.build/debug/fleet-load run smoke --output .build/fleet-load/smoke
.build/debug/fleet-load verify-report .build/fleet-load/smoke/report.html .build/fleet-load/smoke/summary.json
# deploy/: hadolint, the image's libraries, systemd, kustomize + schemas, promtool (after the tests:
# its static-stdlib link replaces the debug executables, which the next `swift build` links again).
./deploy/check.sh
