// The DHT from the command line: `cp2p node --bootstrap` nodes form a network, `cp2p dht`
// commands put/get, find a peer, provide and find providers; bad usage exits 2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'

const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')
const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

function startNode (...args) {
  const p = spawn(cli, ['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', ...args])
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
  const stop = () => new Promise(resolve => { p.on('exit', resolve); p.kill('SIGTERM') })
  return { waitFor, stop }
}

const dht = (...args) => new Promise(resolve => {
  const p = spawn(cli, ['dht', ...args])
  let out = ''
  let err = ''
  p.stdout.on('data', d => { out += d })
  p.stderr.on('data', d => { err += d })
  p.on('close', code => resolve({ code, out, err }))
})

test('cp2p node --bootstrap + cp2p dht: put/get, find-peer, provide/find-providers', { timeout: 90000 }, async () => {
  const nodes = []
  try {
    const first = startNode('--status-interval', '1')
    nodes.push(first)
    const l0 = await first.waitFor(j => j.event === 'listening')
    const boot = l0.addrs[0]
    const others = []
    for (let i = 0; i < 4; i++) {
      const n = startNode('--bootstrap', boot)
      nodes.push(n)
      others.push(await n.waitFor(j => j.event === 'listening'))
    }
    // A node serving the HTTP API: `cp2p dht --api` runs the commands on its DHT.
    const apiNode = startNode('--bootstrap', boot, '--api', '127.0.0.1:0')
    nodes.push(apiNode)
    const api = (await apiNode.waitFor(j => j.event === 'api')).addr
    // The bootstrap node's status line shows its routing table filling.
    await first.waitFor(j => j.event === 'status' && j.dht === true && j.dht_table >= 4)

    const put = await dht('--bootstrap', boot, '--json', 'put', '/cp2p/greeting', 'hello dht')
    assert.equal(put.code, 0, put.err)
    assert.ok(JSON.parse(put.out).stored >= 3, put.out)
    const get = await dht('--bootstrap', boot, '--json', 'get', '/cp2p/greeting')
    assert.equal(get.code, 0, get.err)
    assert.equal(JSON.parse(get.out).value, 'hello dht')
    const missing = await dht('--bootstrap', boot, 'get', '/cp2p/nothing-here')
    assert.equal(missing.code, 1)
    assert.match(missing.err, /not found/)

    const target = others[3]
    const fp = await dht('--bootstrap', boot, '--json', 'find-peer', target.peer_id)
    assert.equal(fp.code, 0, fp.err)
    const want = target.addrs[0].replace(/\/p2p\/.*$/, '')
    assert.ok(JSON.parse(fp.out).addrs.includes(want), fp.out)

    // A provider that listens can be found with its address.
    const prov = await dht('--bootstrap', boot, '--listen', '/ip4/127.0.0.1/tcp/0', '--seed',
      '11'.repeat(32), '--json', 'provide', CID)
    assert.equal(prov.code, 0, prov.err)
    assert.ok(JSON.parse(prov.out).told >= 3, prov.out)
    const pid = spawnSync(cli, ['id', '--seed', '11'.repeat(32)], { encoding: 'utf8' }).stdout.trim()
    const fpv = await dht('--bootstrap', boot, '--json', '--timeout', '5000', 'find-providers', CID)
    assert.equal(fpv.code, 0, fpv.err)
    const provs = JSON.parse(fpv.out).providers
    const p = provs.find(x => x.peer === pid)
    assert.ok(p, fpv.out)
    assert.ok(p.addrs.some(a => a.startsWith('/ip4/127.0.0.1/tcp/')), fpv.out)

    // The same commands through the running node's API print the same shapes.
    const aput = await dht('--api', api, '--json', 'put', '/cp2p/via-api', 'through the API')
    assert.equal(aput.code, 0, aput.err)
    assert.ok(JSON.parse(aput.out).stored >= 3, aput.out)
    const aget = await dht('--api', api, '--json', 'get', '/cp2p/greeting')
    assert.equal(aget.code, 0, aget.err)
    assert.deepEqual(JSON.parse(aget.out), { key: '/cp2p/greeting', value: 'hello dht', bytes: 9 })
    const agetText = await dht('--api', api, 'get', '/cp2p/via-api')
    assert.equal(agetText.out, 'through the API\n')
    const amissing = await dht('--api', api, 'get', '/cp2p/nothing-here')
    assert.equal(amissing.code, 1)
    assert.match(amissing.err, /answered 500: dht\/get: not found/)
    const afp = await dht('--api', api, '--json', 'find-peer', target.peer_id)
    assert.equal(afp.code, 0, afp.err)
    assert.equal(JSON.parse(afp.out).peer, target.peer_id)
    assert.ok(JSON.parse(afp.out).addrs.includes(want), afp.out)
    const afpv = await dht('--api', api, '--json', '--timeout', '5000', 'find-providers', CID)
    assert.equal(afpv.code, 0, afpv.err)
    assert.ok(JSON.parse(afpv.out).providers.some(x => x.peer === pid), afpv.out)
    const aprov = await dht('--api', api, 'provide', CID)
    assert.equal(aprov.code, 0, aprov.err)
    assert.match(aprov.out, /^announced to \d+ peers$/m)
    assert.equal((await dht('--api', api, '--bootstrap', boot, 'get', '/cp2p/x')).code, 2)
    const ahelp = await dht('--help')
    assert.match(ahelp.out, /--api HOST:PORT/)
  } finally {
    for (const n of nodes) assert.equal(await n.stop(), 0)
  }
})

test('cp2p dht: usage errors exit 2', async () => {
  assert.equal((await dht('get', '/cp2p/x')).code, 2) // no --bootstrap
  const noId = await dht('--bootstrap', '/ip4/127.0.0.1/tcp/1', 'get', '/cp2p/x')
  assert.equal(noId.code, 2)
  assert.match(noId.err, /p2p/)
  assert.equal((await dht('--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV', 'frobnicate')).code, 2)
  assert.equal((await dht('--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV', 'provide', 'not-a-cid')).code, 2)
  // a bootstrap peer that is not there: exit 1 with a reason
  const dead = await dht('--bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV', '--timeout', '3000', 'get', '/cp2p/x')
  assert.equal(dead.code, 1)
  assert.match(dead.err, /bootstrap failed/)
})
