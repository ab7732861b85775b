// Gossipsub from the command line: `cp2p node --topic` prints messages as JSON lines,
// `cp2p pubsub sub` receives, `cp2p pubsub pub` publishes through a relay node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'

const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')

function start (args) {
  const p = spawn(cli, args)
  const seen = []
  const waiters = []
  createInterface({ input: p.stdout }).on('line', l => {
    const j = JSON.parse(l)
    seen.push(j)
    for (const w of waiters.splice(0)) { if (w.pred(j)) w.resolve(j); else waiters.push(w) }
  })
  const waitFor = pred => new Promise(resolve => {
    const hit = seen.find(pred)
    if (hit) resolve(hit); else waiters.push({ pred, resolve })
  })
  const exited = new Promise(resolve => p.on('exit', resolve))
  const stop = () => { p.kill('SIGTERM'); return exited }
  return { waitFor, stop, exited, seen }
}

const pub = (...args) => new Promise(resolve => {
  const p = spawn(cli, ['pubsub', 'pub', ...args])
  let err = ''
  p.stderr.on('data', d => { err += d })
  p.on('close', code => resolve({ code, err }))
})

test('node --topic relays; pubsub sub receives what pubsub pub sends, signed by its author', { timeout: 60000 }, async () => {
  const relay = start(['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--topic', 'news'])
  const procs = [relay]
  try {
    const addr = (await relay.waitFor(j => j.event === 'listening')).addrs[0]
    const sub = start(['pubsub', 'sub', 'news', '--peer', addr, '--json', '--count', '2'])
    procs.push(sub)
    await sub.waitFor(j => j.event === 'subscribed')
    // Publish once the relay is in the subscriber's mesh (meshes form at a heartbeat).
    await sub.waitFor(j => j.event === 'mesh' && j.peers >= 1)
    const one = await pub('news', 'first', '--peer', addr, '--seed', '22'.repeat(32))
    assert.equal(one.code, 0, one.err)
    const two = await pub('news', 'second', '--peer', addr)
    assert.equal(two.code, 0, two.err)
    const m1 = await sub.waitFor(j => j.event === 'message' && j.data === 'first')
    await sub.waitFor(j => j.event === 'message' && j.data === 'second')
    assert.equal(await sub.exited, 0) // --count 2
    await relay.waitFor(j => j.event === 'message' && j.data === 'first' && j.from === m1.from)
    assert.match(m1.from, /^12D3KooW/)
    // Nobody on the topic: publish fails with a reason, exit 1.
    const none = await pub('nobody-here', 'x', '--peer', addr, '--timeout', '500')
    assert.equal(none.code, 1)
    assert.match(none.err, /no peer subscribed/)
  } finally {
    for (const p of procs) { if (p !== procs[1]) await p.stop() }
  }
})

test('pubsub: usage errors exit 2', async () => {
  const bad = await new Promise(resolve => {
    const p = spawn(cli, ['pubsub', 'frob'])
    p.on('exit', resolve)
  })
  assert.equal(bad, 2)
  const node = await new Promise(resolve => {
    const p = spawn(cli, ['node', '--no-pubsub', '--topic', 't', '--listen', '/ip4/127.0.0.1/tcp/0'])
    p.on('exit', resolve)
  })
  assert.equal(node, 2)
})
