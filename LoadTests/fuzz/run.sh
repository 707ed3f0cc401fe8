#!/usr/bin/env bash
# Builds one libFuzzer target (release, -sanitize=fuzzer,address, into .build-fuzz) and runs it.
#
#   LoadTests/fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#
# TARGET: request | sse | status | regions | proxy | origin (LoadTests/fuzz/README.md).
# SECONDS: how long to fuzz (default 600). New inputs go to LoadTests/fuzz/work/TARGET (not committed);
# the committed corpus LoadTests/fuzz/corpus/TARGET is read as seeds. Crashes land in
# LoadTests/fuzz/artifacts/TARGET/. The log is LoadTests/fuzz/work/TARGET.log.
# FUZZ_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${1:?usage: LoadTests/fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}"
seconds="${2:-600}"
shift $(( $# >= 2 ? 2 : 1 ))
case "$target" in
    request|sse|status|regions|proxy|origin) ;;
    *) echo "unknown target '$target' (request, sse, status, regions, proxy, origin)" >&2; exit 2 ;;
esac
# Flags: libFuzzer and ASan for Swift code; -parse-as-library for the @main targets (lld for the link
# is a linker setting of the fuzz targets in Package.swift).
flags=(-c release --scratch-path .build-fuzz
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
    FLEETGATE_FUZZ=1 nice -n 10 swift build "${flags[@]}" --product "fuzz-$target"
fi
binary="$(FLEETGATE_FUZZ=1 swift build "${flags[@]}" --show-bin-path)/fuzz-$target"
work="LoadTests/fuzz/work/$target"
artifacts="LoadTests/fuzz/artifacts/$target"
mkdir -p "$work" "$artifacts"
# -max_len: the largest seed is the status stream's 17 KB over-long line; inputs up to 32 KiB.
# The Swift runtime's backtracer and ASan fight over a crashing process; libFuzzer reports the crash.
SWIFT_BACKTRACE=enable=no nice -n 10 "$binary" "$work" "LoadTests/fuzz/corpus/$target" \
    -max_total_time="$seconds" -max_len=32768 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" 2>&1 | tee "LoadTests/fuzz/work/$target.log"
