// Request-response interop: cp2p and js-libp2p 3.3 speak the test protocol /cp2p-test/rr/1.0.0
// (one stream per request, request then write-side close, "echo:" + request read to end of
// stream), in both directions on one connection each way the connection is opened. cp2p's side
// is host_tool's rr-serve / rr / rr-stats (its cp2p_reqresp API); js's is lib/host.mjs's
// rrHandler / rrRequest on the js-libp2p 3.x stream API.
import './lib/polyfill.mjs'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { jsNode, Cp2pHost, RR, rrHandler, rrRequest, rrExpected } from './lib/host.mjs'

const SMALL = { n: 50, size: 1024 }
const LARGE = { n: 4, size: 200 * 1024 }
const CP2P_MAX_REQUEST = 1 << 20 // cp2p_reqresp_config_default's max_request_bytes

async function jsRequests (js, peer, { n, size }) {
  const results = await Promise.all(Array.from({ length: n }, async () => {
    const data = randomBytes(size)
    const resp = await rrRequest(js, peer, data)
    return resp.equals(rrExpected(data))
  }))
  return results.filter(ok => ok).length
}

for (const direction of ['cp2p dials js', 'js dials cp2p']) {
  describe(`request-response, ${direction}`, () => {
    let js, cp, cpPeerId
    before(async () => {
      js = await jsNode()
      await js.handle(RR, rrHandler, { maxInboundStreams: 256, maxOutboundStreams: 256 })
      cp = new Cp2pHost()
      const listening = await cp.event(e => e.event === 'listening')
      assert.equal((await cp.cmd('rr-serve')).ok, true)
      const cpAddr = multiaddr(listening.addr)
      cpPeerId = peerIdFromString(cpAddr.getComponents().find(c => c.name === 'p2p').value)
      if (direction === 'cp2p dials js') {
        const r = await cp.cmd(`dial ${js.getMultiaddrs()[0].toString()}`)
        assert.equal(r.ok, true, JSON.stringify(r))
      } else {
        await js.dial(cpAddr)
      }
      const jsPeer = js.peerId.toString()
      await cp.event(e => e.event === 'conn' && e.peer === jsPeer)
      await cp.event(e => e.event === 'identified' && e.peer === jsPeer)
    })
    after(async () => {
      await cp.stop()
      await js.stop()
    })

    for (const load of [SMALL, LARGE]) {
      it(`cp2p requests, js answers: ${load.n} concurrent requests of ${load.size} bytes`, async () => {
        const r = await cp.cmd(`rr ${load.n} ${load.size}`)
        assert.deepEqual(r, { cmd: 'rr', ok: true, requests: load.n, failed: 0 })
      })

      it(`js requests, cp2p answers: ${load.n} concurrent requests of ${load.size} bytes`, async () => {
        const before = await cp.cmd('rr-stats')
        assert.equal(await jsRequests(js, cpPeerId, load), load.n)
        const after = await cp.cmd('rr-stats')
        assert.equal(after.requests_served - before.requests_served, load.n)
      })
    }

    it('an empty request gets "echo:" both ways', async () => {
      assert.deepEqual(await cp.cmd('rr 1 0'), { cmd: 'rr', ok: true, requests: 1, failed: 0 })
      assert.deepEqual(await rrRequest(js, cpPeerId, Buffer.alloc(0)), rrExpected(Buffer.alloc(0)))
    })

    it('a js request over cp2p\'s max_request_bytes is refused (stream reset) and counted', async () => {
      const before = await cp.cmd('rr-stats')
      const data = randomBytes(2 * CP2P_MAX_REQUEST)
      await assert.rejects(rrRequest(js, cpPeerId, data))
      const after = await cp.cmd('rr-stats')
      assert.equal(after.request_too_large - before.request_too_large, 1)
      assert.equal(after.requests_served, before.requests_served)
      // The connection survives: the next request is answered.
      assert.equal(await jsRequests(js, cpPeerId, { n: 1, size: 1024 }), 1)
    })
  })
}
