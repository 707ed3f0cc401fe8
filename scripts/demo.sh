#!/usr/bin/env bash
# The README's first command: installs what is needed, then runs `fleetgate demo` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build --product fleetgate
exec .build/debug/fleetgate demo "$@"
