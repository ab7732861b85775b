// The overlay from the command line: three `cp2p node --overlay` in a line (A - B - C, A and C
// not connected); `cp2p overlay send` through A's API reaches C, which prints it as an
// 'overlay_message' event; `cp2p route` shows C two hops away; `cp2p overlay topology` lists
// the links.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start, run } from './proc.mjs'

const common = ['--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--overlay', '--no-dht', '--no-pubsub']

test('overlay send crosses two hops; route and topology show the line', { timeout: 90000 }, async () => {
  const procs = []
  try {
    const c = start(['node', ...common])
    procs.push(c)
    const cl = await c.waitFor(j => j.event === 'listening')
    const b = start(['node', ...common, '--peer', cl.addrs[0]])
    procs.push(b)
    const bl = await b.waitFor(j => j.event === 'listening')
    const a = start(['node', ...common, '--peer', bl.addrs[0], '--api', '127.0.0.1:0'])
    procs.push(a)
    const api = (await a.waitFor(j => j.event === 'api')).addr
    // Wait until A has a route to C (two hops).
    let routes
    for (let i = 0; i < 100; i++) {
      routes = await run('route', '--api', api, '--json')
      assert.equal(routes.code, 0, routes.err)
      const r = JSON.parse(routes.out).Routes.find(x => x.Peer === cl.peer_id)
      if (r) { assert.equal(r.Metric, 2); break }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    assert.ok(JSON.parse(routes.out).Routes.find(x => x.Peer === cl.peer_id), 'no route to C')
    const sent = await run('overlay', 'send', cl.peer_id, 'hello over two hops', '--reliable',
      '--api', api, '--json')
    assert.equal(sent.code, 0, sent.err)
    assert.equal(JSON.parse(sent.out).Acked, true)
    const m = await c.waitFor(j => j.event === 'overlay_message')
    assert.equal(m.data, 'hello over two hops')
    assert.equal(m.from, (await a.waitFor(j => j.event === 'listening')).peer_id)
    assert.equal(m.id, JSON.parse(sent.out).Id)
    assert.equal(m.reliable, true)
    // Source routed too.
    const src = await run('overlay', 'send', cl.peer_id, 'by source route', '--reliable',
      '--source-route', '--api', api)
    assert.equal(src.code, 0, src.err)
    assert.match(src.out, /acknowledged/)
    await c.waitFor(j => j.event === 'overlay_message' && j.data === 'by source route')
    const topo = await run('overlay', 'topology', '--api', api, '--json')
    assert.equal(topo.code, 0, topo.err)
    assert.ok(JSON.parse(topo.out).Links.length >= 4) // A-B and B-C, both ways
    // Unknown destination, best effort: no route, exit 1 with the reason.
    const none = await run('overlay', 'send', '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
      'x', '--api', api)
    assert.equal(none.code, 1)
    assert.match(none.err, /no route/)
    // Usage errors.
    assert.equal((await run('overlay', 'send', cl.peer_id, 'x')).code, 2) // no --api
  } finally {
    for (const p of procs.reverse()) await p.stop()
  }
})
