// Artifact gossip from the command line (`cp2p node --artifacts DIR --api`, `cp2p artifact`,
// docs/CLI.md): two nodes, a small and a large artifact put on one and got from the other
// byte-identical through the HTTP API and the CLI; the pool directory survives a restart.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'

const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')

function start (args) {
  const p = spawn(cli, ['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--no-dht',
    '--api', '127.0.0.1:0', ...args])
  const seen = []
  const waiters = []
  let stderr = ''
  p.stderr.on('data', d => { stderr += d })
  createInterface({ input: p.stdout }).on('line', l => {
    const j = JSON.parse(l)
    seen.push(j)
    for (const w of waiters.splice(0)) { if (w.pred(j)) w.resolve(j); else waiters.push(w) }
  })
  const exited = new Promise(resolve => p.on('exit', code => resolve(code)))
  const waitFor = (pred, ms = 10000) => new Promise((resolve, reject) => {
    const hit = seen.find(pred)
    if (hit) return resolve(hit)
    const timer = setTimeout(() => reject(new Error(`timed out waiting; stderr: ${stderr}`)), ms)
    waiters.push({ pred, resolve: j => { clearTimeout(timer); resolve(j) } })
  })
  return { p, waitFor, exited, stop: () => { p.kill('SIGTERM'); return exited } }
}

async function node (args) {
  const n = start(args)
  const l = await n.waitFor(j => j.event === 'listening')
  const a = await n.waitFor(j => j.event === 'api')
  return { ...n, addr: l.addrs[0], api: a.addr, base: a.url }
}

function run (args, input) {
  return spawnSync(cli, args, { input, maxBuffer: 64 << 20 })
}

async function until (f, ms = 20000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v) return v
    if (Date.now() > end) throw new Error('condition not reached')
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

test('put on one node, get the same bytes from another; the pool survives a restart', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'cp2p-art-'))
  const dirA = path.join(tmp, 'a')
  const dirB = path.join(tmp, 'b')
  const a = await node(['--artifacts', dirA])
  const b = await node(['--artifacts', dirB, '--peer', a.addr])
  try {
    const small = Buffer.from('a small artifact, pushed whole\n')
    const large = randomBytes(700 * 1024)
    writeFileSync(path.join(tmp, 'small'), small)
    writeFileSync(path.join(tmp, 'large'), large)
    const ids = []
    for (const f of ['small', 'large']) {
      const r = run(['artifact', 'put', path.join(tmp, f), '--api', a.api])
      assert.equal(r.status, 0, r.stderr.toString())
      const id = r.stdout.toString().trim()
      assert.match(id, /^Qm[1-9A-HJ-NP-Za-km-z]{44}$/)
      ids.push(id)
    }
    // B gets both through the gossip, then serves them.
    await until(() => {
      const r = run(['artifact', 'ls', '--api', b.api])
      return r.status === 0 && JSON.parse(r.stdout).Artifacts.length === 2
    })
    const gs = run(['artifact', 'get', ids[0], '--api', b.api])
    assert.equal(gs.status, 0, gs.stderr.toString())
    assert.deepEqual(gs.stdout, small)
    const gl = run(['artifact', 'get', ids[1], '--api', b.api])
    assert.equal(gl.status, 0, gl.stderr.toString())
    assert.ok(gl.stdout.equals(large))
    const st = run(['artifact', 'stat', ids[1], '--api', b.api])
    assert.equal(st.status, 0)
    assert.deepEqual(JSON.parse(st.stdout), {
      Id: ids[1], Held: true, Bytes: large.length, Fetching: false, ChunksDone: 0, ChunksTotal: 0, Peers: 0
    })
    // Over HTTP directly: an id not held, a malformed id.
    let r = await fetch(b.base + '/api/v0/artifact/get?arg=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG', { method: 'POST' })
    assert.equal(r.status, 404)
    r = await fetch(b.base + '/api/v0/artifact/stat?arg=nope', { method: 'POST' })
    assert.equal(r.status, 400)
    assert.deepEqual(readdirSync(dirB).sort(), [...ids].sort())
    // Per-flow metrics on /metrics.
    const m = await (await fetch(b.base + '/metrics')).text()
    assert.match(m, /^cp2p_artifact_flow_processed_total\{flow="chunk"\} [1-9]/m)
    assert.match(m, /^cp2p_artifact_held 2$/m)
    if (spawnSync('promtool', ['--version']).status === 0) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' })
      assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`)
    }
    assert.match(m, /^cp2p_http_requests_total\{endpoint="artifact_get",code="200"\} 2$/m)
    // B restarts on its directory and holds them again.
    await b.stop()
    const b2 = await node(['--artifacts', dirB])
    try {
      const l = run(['artifact', 'ls', '--api', b2.api])
      assert.deepEqual(JSON.parse(l.stdout).Artifacts.map(x => x.Id).sort(), [...ids].sort())
    } finally {
      await b2.stop()
    }
  } finally {
    await a.stop()
    await b.stop()
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('without --artifacts the endpoints answer 501', async () => {
  const n = await node([])
  try {
    const r = await fetch(n.base + '/api/v0/artifact/ls', { method: 'POST' })
    assert.equal(r.status, 501)
  } finally {
    await n.stop()
  }
})
