#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export FLEETGATE_PYTHON="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}/venv/bin/python"
export FLEETGATE_MODEL="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
swift build --build-tests
# Each step below has a time limit: past it the step gets SIGINT (swift test passes it to the test runner's
# own process group, and the children the tests started die with the runner), SIGKILL 60 s later, and the
# tests that started and never ended are named, so a hang fails CI by name in minutes instead of running
# into CI's own limit with nothing said (CI of 353c632: 5,400 s, no test named). `swift test` runs
# line-buffered: a killed step's last lines (the hung test's "started") are not lost in a pipe's buffer
# (helper-118). Only `swift test`: stdbuf's LD_PRELOAD reaches every process below it, and a shell
# pipeline ending in `grep -q` then fails under pipefail now and then (the writer, line-buffered, writes
# again after grep has exited: SIGPIPE) — deploy/check.sh's library check failed so, 10 runs in 200.
limited() {
    local limit=$1; shift
    local log; log=$(mktemp)
    local rc=0
    local buffered=()
    [ "$1" = swift ] && buffered=(stdbuf -oL -eL)
    timeout -s INT -k 60 "$limit" "${buffered[@]}" "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "✘ TIME LIMIT (or killed, exit $rc): '$*', limit ${limit} s. Tests started and never ended:"
        sed -n 's/^◇ Test \(.*\) started\.$/\1/p' "$log" | { grep -vx 'run' || true; } | sort -u > "$log.started"
        sed -n -e 's/ with [0-9]* test cases* \(passed\|failed\) after/ \1 after/' \
            -e 's/^\(✔\|✘\) Test \(.*\) \(passed\|failed\) after.*/\2/p' "$log" | sort -u > "$log.ended"
        comm -23 "$log.started" "$log.ended" | sed 's/^/    /'
        rm -f "$log.started" "$log.ended"
    fi
    rm -f "$log"
    return "$rc"
}
# Unit suites run in parallel. The integration suites kill, freeze and drain real processes and
# time tokens and PINGs: on a 2-core machine, run side by side, they starve each other's event
# loops and measure the machine instead of the gateway — so they run one at a time (~2 min).
limited 900 swift test --skip-build --parallel --skip IntegrationTests "$@"
limited 1800 swift test --skip-build --no-parallel --filter IntegrationTests "$@"
# The live harness's smoke scenario (under a minute): its own gateway, 90 cars on real tunnels,
# churn of every kind, open-loop clients from six countries; exits 1 on any invariant breach.
limited 600 .build/debug/fleet-load run smoke --output .build/fleet-load/smoke
.build/debug/fleet-load verify-report .build/fleet-load/smoke/report.html .build/fleet-load/smoke/summary.json
# deploy/: hadolint, the image's libraries, systemd, kustomize + schemas, promtool (after the tests:
# its static-stdlib link replaces the debug executables, which the next `swift build` links again).
limited 2400 ./deploy/check.sh
