#!/usr/bin/env bash
# The main job of `make run`. For now: create (once) and show this machine's cp2p identity.
# Later issues grow this into a running node and a local network demo.
set -euo pipefail
build=${1:-build}
key="$build/node.key"
cli="$build/cp2p"
if [ ! -f "$key" ]; then
    echo "== creating an identity in $key"
    "$cli" keygen --out "$key" >/dev/null
fi
echo "== cp2p $("$cli" version | cut -d' ' -f2): the identity of this node ($key)"
"$cli" id --key "$key" --json
echo "== the same peer ID as text: $("$cli" id --key "$key")"
