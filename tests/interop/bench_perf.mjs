// js-libp2p -> js-libp2p throughput over /perf/1.0.0, two processes, for `make bench`.
//   node tests/interop/bench_perf.mjs server          prints {"addr": ...} and serves until killed
//   node tests/interop/bench_perf.mjs client ADDR N   uploads N bytes then downloads N bytes
import { multiaddr } from '@multiformats/multiaddr'
import { jsNode, perfClient } from './lib/host.mjs'

const [mode, addr, bytes] = process.argv.slice(2)
const node = await jsNode()
if (mode === 'server') {
  console.log(JSON.stringify({ addr: node.getMultiaddrs()[0].toString() }))
} else {
  const ma = multiaddr(addr)
  await node.dial(ma)
  const peer = ma.getComponents().find(c => c.name === 'p2p').value
  const { peerIdFromString } = await import('@libp2p/peer-id')
  const n = Number(bytes)
  const up = await perfClient(node, peerIdFromString(peer), n, 0)
  const down = await perfClient(node, peerIdFromString(peer), 0, n)
  console.log(JSON.stringify({
    bench: 'js_perf',
    upload_mb_per_s: n / 1e6 / (up.uploadMs / 1e3),
    download_mb_per_s: n / 1e6 / (down.downloadMs / 1e3)
  }))
  await node.stop()
}
