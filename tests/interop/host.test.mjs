// Host interop: cp2p and js-libp2p on one loopback connection, in both directions (cp2p dials
// js, js dials cp2p): ping, identify, identify push, 100 concurrent echo streams of 1 MiB, pings
// and an identify push during a bulk download, and perf in both directions. cp2p's side is
// tests/interop/host_tool.c.
import './lib/polyfill.mjs'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { jsNode, Cp2pHost, perfClient, PERF } from './lib/host.mjs'

const STREAMS = 100
const STREAM_BYTES = 1 << 20
const PERF_BYTES = Number(process.env.CP2P_INTEROP_PERF_BYTES ?? 1 << 30)

async function waitFor (fn, what, ms = 30_000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function jsEchoStreams (node, peer) {
  const results = await Promise.all(Array.from({ length: STREAMS }, async () => {
    const data = randomBytes(STREAM_BYTES)
    const stream = await node.dialProtocol(peer, '/echo/1.0.0')
    const chunks = []
    const reading = (async () => { for await (const buf of stream) chunks.push(Buffer.from(buf.subarray ? buf.subarray() : buf)) })()
    for (let off = 0; off < data.length; off += 65536) {
      if (!stream.send(data.subarray(off, off + 65536))) {
        await new Promise(resolve => stream.addEventListener('drain', resolve, { once: true }))
      }
    }
    await stream.close()
    await reading
    return Buffer.concat(chunks).equals(data)
  }))
  return results.filter(ok => ok).length
}

for (const direction of ['cp2p dials js', 'js dials cp2p']) {
  describe(direction, () => {
    let js, cp, jsPeerOfCp, cpPeerId, identifiedByJs
    before(async () => {
      js = await jsNode()
      identifiedByJs = new Promise(resolve => js.addEventListener('peer:identify', evt => resolve(evt.detail)))
      cp = new Cp2pHost()
      const listening = await cp.event(e => e.event === 'listening')
      const cpAddr = multiaddr(listening.addr)
      cpPeerId = peerIdFromString(cpAddr.getComponents().find(c => c.name === 'p2p').value)
      if (direction === 'cp2p dials js') {
        const jsAddr = js.getMultiaddrs()[0].toString()
        const r = await cp.cmd(`dial ${jsAddr}`)
        assert.equal(r.ok, true, JSON.stringify(r))
        assert.equal(r.peer, js.peerId.toString())
      } else {
        const conn = await js.dial(cpAddr)
        assert.equal(conn.remotePeer.toString(), cpPeerId.toString())
      }
      jsPeerOfCp = js.peerId.toString()
      await cp.event(e => e.event === 'conn' && e.peer === jsPeerOfCp)
    })
    after(async () => {
      await cp.stop()
      await js.stop()
    })

    it('identify: each side sees the other\'s agent, protocols and listen addresses', async () => {
      const seen = await cp.event(e => e.event === 'identified' && e.peer === jsPeerOfCp)
      assert.match(seen.agent, /js-libp2p/)
      for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/echo/1.0.0', PERF]) {
        assert.ok(seen.protocols.includes(p), `cp2p sees js protocol ${p}`)
      }
      assert.ok(seen.listen_addrs.includes(js.getMultiaddrs()[0].decapsulateCode(421).toString()))
      assert.ok(seen.observed_addr.startsWith('/ip4/127.0.0.1/tcp/'))
      const d = await identifiedByJs
      assert.equal(d.peerId.toString(), cpPeerId.toString())
      assert.match(d.agentVersion, /^cp2p\//)
      for (const p of ['/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0', '/ipfs/ping/1.0.0', '/echo/1.0.0', PERF]) {
        assert.ok(d.protocols.includes(p), `js sees cp2p protocol ${p}`)
      }
      assert.equal(d.listenAddrs.length, 1)
      assert.match(d.listenAddrs[0].toString(), /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    })

    it('ping: 10 round trips each way', async () => {
      const r = await cp.cmd('ping 10')
      assert.equal(r.ok, true, JSON.stringify(r))
      assert.equal(r.rtts_us.length, 10)
      for (const rtt of r.rtts_us) assert.ok(rtt > 0)
      for (let i = 0; i < 10; i++) {
        const ms = await js.services.ping.ping(cpPeerId)
        assert.ok(ms >= 0)
      }
    })

    it('identify push: a new protocol on either side reaches the other', async () => {
      const h = await cp.cmd('handle /cp2p/new/1.0.0')
      assert.equal(h.ok, true)
      await waitFor(async () => (await js.peerStore.get(cpPeerId)).protocols.includes('/cp2p/new/1.0.0'),
        'the push from cp2p')
      await js.handle('/js/new/1.0.0', async (stream) => { await stream.close() })
      const w = await cp.cmd('wait-protocol /js/new/1.0.0')
      assert.equal(w.ok, true)
    })

    it(`streams: ${STREAMS} concurrent echo streams of 1 MiB each way, content verified`, async () => {
      const r = await cp.cmd(`echo ${STREAMS} ${STREAM_BYTES}`)
      assert.equal(r.ok, true, JSON.stringify(r))
      assert.equal(r.streams, STREAMS)
      assert.equal(await jsEchoStreams(js, cpPeerId), STREAMS)
    })

    // A stream js opens while cp2p's output is full of bulk data gets its multistream-select
    // answer (it was dropped under back-pressure, and js's connection monitor, whose pings then
    // timed out, closed the connection).
    it('ping and identify push while cp2p sends a bulk download', async () => {
      const download = Math.min(PERF_BYTES, 256 << 20)
      let done = false
      const transfer = perfClient(js, cpPeerId, 0, download).finally(() => { done = true })
      const rtts = []
      // js allows one outbound ping stream per connection: the next ping waits until the
      // previous stream has closed both ways (cp2p's FIN queues behind the bulk data).
      const pingStreams = () => js.getConnections(cpPeerId)
        .flatMap(c => c.streams).filter(s => s.protocol === '/ipfs/ping/1.0.0').length
      while (!done || rtts.length < 3) {
        await waitFor(() => pingStreams() === 0, 'the previous ping stream to close', 5000)
        rtts.push(await js.services.ping.ping(cpPeerId, { signal: AbortSignal.timeout(5000) }))
        if (rtts.length === 3) {
          const h = await cp.cmd('handle /cp2p/during-bulk/1.0.0')
          assert.equal(h.ok, true)
        }
        await new Promise(resolve => setTimeout(resolve, 20))
      }
      const j = await transfer
      assert.equal(j.downloadBytes, download)
      await waitFor(async () => (await js.peerStore.get(cpPeerId)).protocols.includes('/cp2p/during-bulk/1.0.0'),
        'the push from cp2p during the download')
      rtts.sort((x, y) => x - y)
      console.log(`# ${direction}: ${rtts.length} pings during a ${download}-byte download, ` +
        `median ${rtts[rtts.length >> 1]} ms, max ${rtts[rtts.length - 1]} ms`)
    })

    it(`perf: ${PERF_BYTES} bytes each way through /perf/1.0.0`, async () => {
      const r = await cp.cmd(`perf ${PERF_BYTES} ${PERF_BYTES}`)
      assert.equal(r.ok, true, JSON.stringify(r))
      assert.equal(r.upload_bytes, PERF_BYTES)
      assert.equal(r.download_bytes, PERF_BYTES)
      const j = await perfClient(js, cpPeerId, PERF_BYTES, PERF_BYTES)
      assert.equal(j.downloadBytes, PERF_BYTES)
      const mbs = (b, ns) => (b / 1e6 / (ns / 1e9)).toFixed(0)
      console.log(`# ${direction}: cp2p->js upload ${mbs(r.upload_bytes, r.upload_ns)} MB/s, ` +
        `js->cp2p download ${mbs(r.download_bytes, r.download_ns)} MB/s; js client: ` +
        `upload ${mbs(PERF_BYTES, j.uploadMs * 1e6)} MB/s, download ${mbs(PERF_BYTES, j.downloadMs * 1e6)} MB/s`)
    })
  })
}
