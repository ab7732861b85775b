// js-libp2p gossipsub (@libp2p/gossipsub) for `make bench`, the counterpart of
// `bench_tools gs-net`: N js-libp2p nodes in this one process (one event loop, as cp2p's nodes
// share one libuv loop), a random sparse topology (each node dials 4 random others: the same
// xorshift32 sequence as bench_tools, so the same graph and the same publishers), one topic,
// MSGS messages of SIZE bytes from random publishers, one every INTERVAL_US on a fixed schedule.
//   node tests/interop/bench_gossipsub.mjs N MSGS SIZE INTERVAL_US
// Prints one JSON line: delivery latency p50/p99 (publish call to the subscriber's 'message'
// event) and the duplicate factor: copies received (every call of gossipsub's
// handleReceivedMessage, duplicates included) per delivered message ('message' events).
import './lib/polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'

const [N, MSGS, SIZE, INTERVAL_US] = process.argv.slice(2).map(Number)
const TOPIC = 'bench'
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

let rng = 12345
function rand () { // xorshift32, as gs_rand() in bench/bench_tools.c
  rng = (rng ^ (rng << 13)) >>> 0
  rng = (rng ^ (rng >>> 17)) >>> 0
  rng = (rng ^ (rng << 5)) >>> 0
  return rng
}

const sentAt = new Float64Array(MSGS)
const copies = new Uint32Array(MSGS) // nodes that have message i (the publisher included)
const lat = []
let published = 0
let complete = 0
let received = 0 // every copy that reached a node's gossipsub, duplicates included
let delivered = 0

const nodes = []
for (let i = 0; i < N; i++) {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // All nodes dial from 127.0.0.1: lift the per-host inbound rate limit (5/s by default).
    connectionManager: { maxConnections: 200, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100 },
    // IP colocation (P6) off: every peer is on 127.0.0.1, so a node with more than 10 peers
    // would score them all negative and graft none (cp2p exempts loopback from P6).
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: false, scoreParams: { IPColocationFactorWeight: 0 } })
    }
  })
  const gs = node.services.pubsub
  const seen = new Uint8Array(MSGS)
  const orig = gs.handleReceivedMessage.bind(gs)
  gs.handleReceivedMessage = (from, msg) => { received++; return orig(from, msg) }
  gs.addEventListener('message', evt => {
    const m = evt.detail
    if (m.topic !== TOPIC || m.data.length < 4) return
    delivered++
    const idx = Buffer.from(m.data.buffer, m.data.byteOffset, 4).readUInt32LE(0)
    if (idx >= published || seen[idx]) return
    seen[idx] = 1
    lat.push(performance.now() - sentAt[idx])
    if (++copies[idx] === N) complete++
  })
  gs.subscribe(TOPIC)
  nodes.push({ node, gs, seen })
}

const t0setup = performance.now()
const adj = new Uint8Array(N * N)
const dials = []
for (let i = 0; i < N; i++) {
  for (let k = 0; k < 4; k++) {
    let j
    do { j = rand() % N } while (j === i || adj[i * N + j])
    adj[i * N + j] = adj[j * N + i] = 1
    dials.push([i, j])
  }
}
// 16 dials at a time: 400 Noise handshakes at once on one event loop time out.
for (let k = 0; k < dials.length; k += 16) {
  await Promise.all(dials.slice(k, k + 16).map(([i, j]) => nodes[i].node.dial(nodes[j].node.getMultiaddrs()[0])))
}
for (const end = Date.now() + 30_000; ;) {
  if (nodes.every(n => n.gs.getSubscribers(TOPIC).length >= 1 && n.gs.getMeshPeers(TOPIC).length >= 1)) break
  if (Date.now() > end) {
    const bad = nodes.filter(n => !(n.gs.getSubscribers(TOPIC).length >= 1 && n.gs.getMeshPeers(TOPIC).length >= 1))
    throw new Error(`meshes did not form: ${bad.map(n => `${n.node.getConnections().length}/${n.gs.getSubscribers(TOPIC).length}/${n.gs.getMeshPeers(TOPIC).length}/out${n.gs.streamsOutbound.size}/in${n.gs.streamsInbound.size}/p${n.gs.peers.size}/b${n.gs.backoff.get(TOPIC)?.size}`).join(' ')}`)
  }
  await sleep(50)
}
await sleep(2500) // a couple of heartbeats: meshes settle
const setupS = (performance.now() - t0setup) / 1e3

const data = new Uint8Array(Math.max(SIZE, 4)).fill(0xab)
const t0 = performance.now()
let failed = 0
await new Promise(resolve => {
  const tick = setInterval(() => {
    const now = performance.now()
    while (published < MSGS && now >= t0 + published * INTERVAL_US / 1000) {
      const pub = rand() % N
      const idx = published++
      const msg = data.slice()
      Buffer.from(msg.buffer).writeUInt32LE(idx, 0)
      nodes[pub].seen[idx] = 1
      copies[idx] = 1
      sentAt[idx] = performance.now()
      nodes[pub].gs.publish(TOPIC, msg).catch(() => { failed++ })
    }
    if (published === MSGS) { clearInterval(tick); resolve() }
  }, 1)
})
for (const end = Date.now() + 60_000; complete < MSGS && Date.now() < end;) await sleep(10)
const seconds = (performance.now() - t0) / 1e3
await sleep(1000) // late duplicates count too
let missing = 0
for (const n of nodes) for (let i = 0; i < MSGS; i++) if (!n.seen[i]) missing++
lat.sort((a, b) => a - b)
const pct = p => lat.length ? lat[Math.floor((lat.length - 1) * p)] : 0
console.log(JSON.stringify({
  bench: 'js_gossipsub_net',
  nodes: N,
  msgs: MSGS,
  size: SIZE,
  interval_us: INTERVAL_US,
  missing,
  publish_failed: failed,
  p50_ms: +pct(0.5).toFixed(2),
  p99_ms: +pct(0.99).toFixed(2),
  max_ms: +pct(1).toFixed(2),
  dup_factor: +(delivered ? received / delivered : 0).toFixed(2),
  rss_mb: Math.round(process.memoryUsage().rss / 1e6),
  setup_s: +setupS.toFixed(1),
  seconds: +seconds.toFixed(2)
}))
await Promise.race([Promise.all(nodes.map(n => n.node.stop())), sleep(10_000)])
process.exit(0)
