#!/usr/bin/env bash
# Installs everything FleetGate needs on Debian 12 beside the Swift toolchain. Idempotent: a
# second run installs nothing. Caches that must survive a fresh clone live in ~/.cache/fleetgate.
set -euo pipefail

CACHE="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}"
mkdir -p "$CACHE"

# System packages: libnghttp2 (the HTTP/2 codec) and its reference tools, libmaxminddb, curl.
PACKAGES=(pkg-config openssl libnghttp2-dev nghttp2-client nghttp2-server nghttp2-proxy libmaxminddb-dev mmdb-bin curl python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python clients used by the interop tests (h2, httpx), kept in a venv in the cache.
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import h2, httpx, mmdb_writer, netaddr' 2>/dev/null; then
    echo "setup: installing Python test clients and the GeoIP writer into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'h2>=4' 'httpx[http2]>=0.27' 'mmdb-writer>=0.2' 'netaddr>=1'
fi

# The default country database, built once from Debian's tor-geoipdb (about 40 s).
GEOIP="$CACHE/geoip/fleet-country.mmdb"
if [ ! -s "$GEOIP" ]; then
    echo "setup: building the default GeoIP database $GEOIP"
    mkdir -p "$CACHE/geoip"
    "$VENV/bin/python" "$(dirname "$0")/build-geoip.py" "$GEOIP" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
    [ -s "$GEOIP" ] || { echo "setup: building $GEOIP failed" >&2; exit 1; }
fi
