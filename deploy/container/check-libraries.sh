#!/usr/bin/env bash
# Checks that the Dockerfile's runtime stage installs every shared library the binaries need.
#   deploy/container/check-libraries.sh BINARY...
# For each library `ldd` reports, the Debian package that owns it on this (Debian 12) machine must be
# named on the runtime stage's "runtime-packages:" line (the list its apt-get install uses). A library
# no package owns (the Swift runtime) fails: the image links the Swift stdlib statically.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dockerfile="$here/Dockerfile"
read -r -a wanted <<<"$(sed -n 's/^# runtime-packages: //p' "$dockerfile")"
[ ${#wanted[@]} -gt 0 ] || { echo "check-libraries: no '# runtime-packages:' line in $dockerfile" >&2; exit 1; }
# The comment and the apt-get line must agree. (Not `… | grep -q` under pipefail: grep -q exits at its
# first match, and a writer that writes again then dies of SIGPIPE and fails the pipeline — always so
# under a line-buffering stdbuf.)
stage="$(sed -n '/^FROM .* AS runtime$/,/^FROM /p' "$dockerfile" | grep -v '^#')"
for p in "${wanted[@]}"; do
    grep -qwF -- "$p" <<<"$stage" \
        || { echo "check-libraries: $p is on the runtime-packages line but not installed by the runtime stage" >&2; exit 1; }
done
failed=0
for binary in "$@"; do
    while read -r lib path; do
        [ -n "$path" ] || continue
        real="$(readlink -f "$path")"
        owner="$(dpkg -S "$real" 2>/dev/null | head -1 | cut -d: -f1 || true)"
        [ -n "$owner" ] || owner="$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1 || true)"
        if [ -z "$owner" ]; then
            echo "check-libraries: $(basename "$binary") needs $lib ($path), which no Debian package provides" >&2
            failed=1
        elif [[ ! " ${wanted[*]} libc6 " == *" ${owner} "* ]]; then
            echo "check-libraries: $(basename "$binary") needs $lib from $owner, not installed by the runtime stage" >&2
            failed=1
        else
            echo "  $(basename "$binary"): $lib <- $owner"
        fi
    done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
done
exit $failed
