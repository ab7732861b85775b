// js-libp2p -> js-libp2p request-response round trips per second, two processes, for
// `make bench`: the same protocol as cp2p's (one stream per request, request then write-side
// close, the response read to end of stream; the server answers with the request's bytes).
//   node tests/interop/bench_rr.mjs server PROTO                      prints {"addr": ...}
//   node tests/interop/bench_rr.mjs client ADDR PROTO INFLIGHT SECONDS SIZE
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { jsNode, rrRequest } from './lib/host.mjs'

const [mode, ...args] = process.argv.slice(2)
const node = await jsNode()
const limits = { maxInboundStreams: 256, maxOutboundStreams: 256 }

async function echoHandler (stream) {
  try {
    const chunks = []
    for await (const buf of stream) chunks.push(buf.subarray ? buf.subarray() : buf)
    for (const c of chunks) {
      if (!stream.send(c)) await new Promise(resolve => stream.addEventListener('drain', resolve, { once: true }))
    }
    await stream.close()
  } catch (err) {
    stream.abort(err)
  }
}

if (mode === 'server') {
  await node.handle(args[0], echoHandler, limits)
  console.log(JSON.stringify({ addr: node.getMultiaddrs()[0].toString() }))
} else {
  const [addr, proto, inflightS, secondsS, sizeS] = args
  const inflight = Number(inflightS)
  const seconds = Number(secondsS)
  const req = randomBytes(Number(sizeS))
  // Registered so that the outbound stream limit of the protocol is ours, not the default 64.
  await node.handle(proto, echoHandler, limits)
  const ma = multiaddr(addr)
  const peer = peerIdFromString(ma.getComponents().find(c => c.name === 'p2p').value)
  await node.dial(ma)
  let done = 0
  let failed = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (performance.now() < end) {
      try {
        const resp = await rrRequest(node, peer, req, proto)
        if (resp.equals(req)) done++; else failed++
      } catch {
        failed++
      }
    }
  }))
  const t = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ bench: 'js_rr', inflight, size: req.length, requests: done, failed, seconds: Number(t.toFixed(3)), per_s: Math.round(done / t) }))
  await node.stop()
}
