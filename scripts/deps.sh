#!/usr/bin/env bash
# Install what cp2p needs to build and test, and nothing when it is all present.
# Idempotent: safe to run before every build. Needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libsodium-dev libsecp256k1-dev libprotobuf-c-dev protobuf-c-compiler
      libcmocka-dev libsqlite3-dev
      libmicrohttpd-dev libjansson-dev  # the node's HTTP API: server and JSON
      prometheus  # promtool: the metrics_promtool test checks our /metrics text with it
      iproute2 nftables)  # tests/netns: network namespaces, veth links, loss rules

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Node.js and npm run the js-libp2p interop peers. A machine may have them from another source
# than Debian (whose npm package conflicts with such a nodejs), so test the commands, not packages.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The interop peers: js-libp2p packages pinned by tests/interop/package-lock.json.
lock=tests/interop/package-lock.json
stamp=tests/interop/node_modules/.cp2p-lock.sha256
if [ -f "$lock" ]; then
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "deps: npm ci in tests/interop"
        (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > "$stamp"
    fi
fi
