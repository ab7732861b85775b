#!/usr/bin/env bash
# The main job of `make run`: this machine's cp2p node, until Ctrl-C.
# The identity is created once in $BUILD/node.key (mode 0600) and reused.
# CP2P_LISTEN overrides the listen address (default /ip4/127.0.0.1/tcp/4001), CP2P_API the HTTP
# API's (default 127.0.0.1:5001, loopback only).
set -euo pipefail
build=${1:-build}
key="$build/node.key"
cli="$build/cp2p"
listen=${CP2P_LISTEN:-/ip4/127.0.0.1/tcp/4001}
api=${CP2P_API:-127.0.0.1:5001}
if [ ! -f "$key" ]; then
    "$cli" keygen --out "$key" >/dev/null
fi
id=$("$cli" id --key "$key")
port=${listen##*/}
host=$(echo "$listen" | cut -d/ -f3)
cat <<TXT
== cp2p $("$cli" version | cut -d' ' -f2): starting a node with the identity in $key
   In another terminal:
     $cli ping /ip4/$host/tcp/$port/p2p/$id
     $cli perf /ip4/$host/tcp/$port/p2p/$id --upload 100M --download 100M
     $cli dht --bootstrap /ip4/$host/tcp/$port/p2p/$id put /cp2p/hello world
     $cli pubsub sub news --peer /ip4/$host/tcp/$port/p2p/$id
     curl -s http://$api/metrics | grep cp2p_host_connections
     curl -s -X POST http://$api/api/v0/peers
   The node runs the DHT and gossipsub, relays topics, and joins the topic "news"
   (it prints what is published there). Ctrl-C stops the node.
TXT
exec "$cli" node --key "$key" --listen "$listen" --perf --topic news --api "$api"
