#!/usr/bin/env bash
# Builds release binaries linked as production links them (deploy/container/Dockerfile): the Swift
# standard library and Foundation static (`--static-swift-stdlib` with deploy/container/static-link-flags),
# in their own scratch path (.build-static/), so they do not relink the dynamic builds of .build/. Install
# these for the systemd units; the benchmarks measure them (bench_common.release_build). A dynamically
# linked build of the same code ran the central path at ~0.7x the rate (LoadTests/README.md, session 49).
# Prints the directory the binaries are in (OUT_DIR when given: they are copied there).
#
# Usage: scripts/build-release.sh [OUT_DIR] [PRODUCT ...]   (default: fleetgate fleet-agent fleet-load)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
shift || true
# `build-release.sh fleetgate` would copy into a new directory named fleetgate: refuse a first argument that
# names one of the package's executables and is not a directory already.
if [ -n "$out" ] && [ ! -d "$out" ] && grep -q "executableTarget(\s*name: \"$out\"" <(tr -d '\n' < "$root/Package.swift"); then
    echo "build-release.sh: '$out' is a product; the first argument is the directory to copy into (usage: scripts/build-release.sh [OUT_DIR] [PRODUCT ...], e.g. scripts/build-release.sh /tmp/out $out)" >&2
    exit 64
fi
# Absolute before the cd below: a relative OUT_DIR is the caller's.
[ -z "$out" ] || { mkdir -p "$out" && out=$(cd "$out" && pwd); }
products=("$@")
[ ${#products[@]} -gt 0 ] || products=(fleetgate fleet-agent fleet-load)
read -r -a link < "$root/deploy/container/static-link-flags"
cd "$root"
for product in "${products[@]}"; do
    swift build -c release --static-swift-stdlib --scratch-path .build-static --product "$product" "${link[@]}" >&2
done
bin=$(swift build -c release --scratch-path .build-static --show-bin-path)
if [ -n "$out" ]; then
    # install replaces the file (a new inode): copying into a running binary fails ("Text file busy").
    for product in "${products[@]}"; do install -m 0755 "$bin/$product" "$out/$product"; done
    echo "$out"
else
    echo "$bin"
fi
