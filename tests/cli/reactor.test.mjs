// The reactor switch from the command line: `cp2p node --channel --network --moniker`. Two nodes
// on network "alpha" add each other ('reactor_peer' events carry the peer's moniker and
// network from its node info); a node on "beta" is connected but never added, and the API's
// channels view shows the node info and counts the refusal. Usage errors exit 2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start, run } from './proc.mjs'

const common = ['--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--no-dht', '--no-pubsub']

test('node info: same network added, another network refused and counted', { timeout: 90000 }, async () => {
  const procs = []
  try {
    const b = start(['node', ...common, '--channel', '0x30', '--network', 'alpha', '--moniker', 'bee'])
    procs.push(b)
    const bl = await b.waitFor(j => j.event === 'listening')
    const c = start(['node', ...common, '--channel', '0x30', '--network', 'beta', '--moniker', 'sea'])
    procs.push(c)
    const cl = await c.waitFor(j => j.event === 'listening')
    const a = start(['node', ...common, '--channel', '0x30', '--channel', '0x22', '--network', 'alpha',
      '--moniker', 'ay', '--peer', bl.addrs[0], '--peer', cl.addrs[0], '--api', '127.0.0.1:0'])
    procs.push(a)
    const api = (await a.waitFor(j => j.event === 'api')).addr
    const added = await a.waitFor(j => j.event === 'reactor_peer' && j.state === 'added')
    assert.equal(added.peer, bl.peer_id)
    assert.equal(added.moniker, 'bee')
    assert.equal(added.network, 'alpha')
    const back = await b.waitFor(j => j.event === 'reactor_peer' && j.state === 'added')
    assert.equal(back.moniker, 'ay')
    let view
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`http://${api}/api/v0/channels`, { method: 'POST' })
      assert.equal(r.status, 200)
      view = await r.json()
      if (view.Rejected.Network >= 1) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.equal(view.Rejected.Network, 1)
    assert.equal(view.NodeInfo.Network, 'alpha')
    assert.equal(view.NodeInfo.Moniker, 'ay')
    assert.equal(view.NodeInfo.Channels, '3022')
    assert.equal(view.PeersTotal, 1)
    assert.equal(view.Peers[0].NodeInfo.Moniker, 'bee')
    assert.equal(c.seen.filter(j => j.event === 'reactor_peer').length, 0)
  } finally {
    for (const p of procs.reverse()) await p.stop()
  }
})

test('reactor options: usage errors', { timeout: 30000 }, async () => {
  assert.equal((await run('node', '--network', 'x', '--no-dht')).code, 2) // needs --channel
  assert.equal((await run('node', '--channel', '0x100')).code, 2)
  assert.equal((await run('node', '--channel', '0x30', '--moniker', ' ', '--listen',
    '/ip4/127.0.0.1/tcp/0', '--no-dht', '--no-pubsub')).code, 2)
  assert.equal((await run('node', '--channel', '0x30', '--channel', '48', '--listen',
    '/ip4/127.0.0.1/tcp/0', '--no-dht', '--no-pubsub')).code, 2)
  const help = await run('node', '--help')
  assert.match(help.out, /--moniker NAME/)
})
