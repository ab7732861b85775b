// The cp2p command-line program, run as a user would: exit codes, output formats, key files.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, statSync, chmodSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')
const run = (...args) => spawnSync(cli, args, { encoding: 'utf8' })
// RFC 8032 test 1 seed; its peer ID as js-libp2p computes it.
const SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'
const PEER = '12D3KooWQK1wnefoLrcVHbbnf5tLzbopUd3K3bFAoJpA7YJgL5pV'
const CID = 'bafzaajaiaejcbv22taayfmikw7kux7wtzfsaooqo4fzphwvgems26aq2nd3qoui2'
const PUB = '08011220d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'

test('id --seed prints the known peer ID, as text and as JSON', () => {
  const t = run('id', '--seed', SEED)
  assert.equal(t.status, 0, t.stderr)
  assert.equal(t.stdout, PEER + '\n')
  const j = run('id', '--seed', SEED, '--json')
  assert.equal(j.status, 0, j.stderr)
  assert.deepEqual(JSON.parse(j.stdout), { peer_id: PEER, peer_id_cid: CID, public_key: PUB, type: 'ed25519' })
})

test('id without a key makes a new identity each time; secp256k1 IDs start with 16Uiu2', () => {
  const a = run('id').stdout.trim()
  const b = run('id').stdout.trim()
  assert.match(a, /^12D3KooW/)
  assert.notEqual(a, b)
  const s = JSON.parse(run('id', '--type', 'secp256k1', '--json').stdout)
  assert.equal(s.type, 'secp256k1')
  assert.match(s.peer_id, /^16Uiu2/)
  assert.match(s.public_key, /^08021221/)
})

test('keygen writes a 0600 key file that id --key reads back; it never overwrites silently', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cp2p-cli-'))
  try {
    const file = path.join(dir, 'node.key')
    const k = run('keygen', '--out', file, '--seed', SEED)
    assert.equal(k.status, 0, k.stderr)
    assert.equal(k.stdout.trim(), PEER)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(run('id', '--key', file).stdout.trim(), PEER)
    const again = run('keygen', '--out', file)
    assert.equal(again.status, 1)
    assert.match(again.stderr, /exists/)
    assert.equal(run('keygen', '--out', file, '--force').status, 0)
    assert.notEqual(run('id', '--key', file).stdout.trim(), PEER)
    // a key readable by others is refused, with the fix in the message
    chmodSync(file, 0o644)
    const bad = run('id', '--key', file)
    assert.equal(bad.status, 1)
    assert.match(bad.stderr, /chmod 600/)
    // a file that is not a key
    const junk = path.join(dir, 'junk.key')
    writeFileSync(junk, 'not a key', { mode: 0o600 })
    const j = run('id', '--key', junk)
    assert.equal(j.status, 1)
    assert.match(j.stderr, /cannot load key/)
    assert.equal(run('id', '--key', path.join(dir, 'missing')).status, 1)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('usage errors exit 2 with a message; --help exits 0', () => {
  for (const args of [['id', '--seed', 'abc'], ['id', '--type', 'rsa'], ['id', 'extra'],
    ['nonsense'], [], ['keygen'], ['id', '--key', 'x', '--seed', SEED]]) {
    const r = run(...args)
    assert.equal(r.status, 2, `cp2p ${args.join(' ')}: ${r.stderr}`)
    assert.notEqual(r.stderr, '')
  }
  for (const args of [['--help'], ['id', '--help'], ['keygen', '--help']]) {
    const r = run(...args)
    assert.equal(r.status, 0)
    assert.match(r.stdout, /usage: cp2p/)
  }
  // a secp256k1 seed that is not a valid scalar (the group order n) is a usage error
  const n = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'
  assert.equal(run('id', '--type', 'secp256k1', '--seed', n).status, 2)
})

test('node + ping + perf: a node answers pings and perf, and exits 0 on SIGTERM', async () => {
  const { spawn } = await import('node:child_process')
  const { createInterface } = await import('node:readline')
  const node = spawn(cli, ['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--perf', '--json', '--seed', SEED])
  const lines = createInterface({ input: node.stdout })
  const first = await new Promise(resolve => lines.once('line', l => resolve(JSON.parse(l))))
  assert.equal(first.event, 'listening')
  assert.equal(first.peer_id, PEER)
  assert.equal(first.addrs.length, 1)
  const addr = first.addrs[0]
  assert.match(addr, new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${PEER}$`))
  const run = (...args) => new Promise(resolve => {
    const p = spawn(cli, args)
    let out = ''
    p.stdout.on('data', d => { out += d })
    p.on('exit', code => resolve({ code, out }))
  })
  const ping = await run('ping', addr, '-c', '3', '-i', '10', '--json')
  assert.equal(ping.code, 0, ping.out)
  const pl = ping.out.trim().split('\n').map(l => JSON.parse(l))
  assert.equal(pl.length, 4)
  assert.ok(pl.slice(0, 3).every(p => p.rtt_ms > 0 && p.peer === PEER))
  assert.equal(pl[3].received, 3)
  const text = await run('ping', addr, '-c', '1')
  assert.match(text.out, /1 transmitted, 1 received, 0% packet loss/)
  const perf = await run('perf', addr, '--upload', '3Mi', '--download', '5M', '--json')
  assert.equal(perf.code, 0, perf.out)
  const pr = JSON.parse(perf.out)
  assert.equal(pr.upload_bytes, 3 * 1024 * 1024)
  assert.equal(pr.download_bytes, 5000000)
  // A wrong /p2p/ ID is refused, and a closed port fails fast; both exit 1.
  const wrong = addr.replace(PEER, '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA')
  assert.equal((await run('ping', wrong, '-c', '1')).code, 1)
  assert.equal((await run('ping', '/ip4/127.0.0.1/tcp/1', '-c', '1')).code, 1)
  assert.equal((await run('ping', 'not-an-addr')).code, 2)
  node.kill('SIGTERM')
  const code = await new Promise(resolve => node.on('exit', c => resolve(c)))
  assert.equal(code, 0)
})

test('req: one request-response exchange with a node serving --echo; chat: a line crosses', async () => {
  const { spawn } = await import('node:child_process')
  const { createInterface } = await import('node:readline')
  const node = spawn(cli, ['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--echo', '/test/echo/1', '--json'])
  const first = await new Promise(resolve => createInterface({ input: node.stdout }).once('line', l => resolve(JSON.parse(l))))
  const addr = first.addrs[0]
  const run = (...args) => new Promise(resolve => {
    const p = spawn(cli, args)
    let out = ''
    let err = ''
    p.stdout.on('data', d => { out += d })
    p.stderr.on('data', d => { err += d })
    p.on('exit', code => resolve({ code, out, err }))
  })
  const r = await run('req', addr, '/test/echo/1', 'hello cp2p')
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out, 'hello cp2p\n')
  const j = JSON.parse((await run('req', addr, '/test/echo/1', 'x', '--json')).out)
  assert.equal(j.response, 'x')
  assert.equal(j.bytes, 1)
  const nope = await run('req', addr, '/nope/1', 'x')
  assert.equal(nope.code, 1)
  assert.match(nope.err, /not supported/)
  assert.equal((await run('req', 'nonsense', '/p/1', 'x')).code, 2)
  node.kill('SIGTERM')
  assert.equal(await new Promise(resolve => node.on('exit', resolve)), 0)

  // chat: A waits, B connects and says hello, A prints it and answers, B prints the answer.
  const a = spawn(cli, ['chat'])
  const aLines = createInterface({ input: a.stdout })
  const aSeen = []
  const aWait = (re) => new Promise(resolve => {
    const hit = aSeen.find(l => re.test(l)); if (hit) return resolve(hit)
    aLines.on('line', function f (l) { if (re.test(l)) { aLines.off('line', f); resolve(l) } })
  })
  aLines.on('line', l => aSeen.push(l))
  const listening = await aWait(/^chat: listening on /)
  const aAddr = listening.replace('chat: listening on ', '')
  const b = spawn(cli, ['chat', aAddr])
  const bLines = createInterface({ input: b.stdout })
  const bSeen = []
  bLines.on('line', l => bSeen.push(l))
  const bWait = (re) => new Promise(resolve => {
    const hit = bSeen.find(l => re.test(l)); if (hit) return resolve(hit)
    bLines.on('line', function f (l) { if (re.test(l)) { bLines.off('line', f); resolve(l) } })
  })
  await bWait(/^chat: connected$/)
  b.stdin.write('hello from b\n')
  assert.match(await aWait(/: hello from b$/), /: hello from b$/)
  a.stdin.write('hi b\n')
  assert.match(await bWait(/: hi b$/), /: hi b$/)
  const aExit = new Promise(resolve => a.on('exit', resolve))
  const bExit = new Promise(resolve => b.on('exit', resolve))
  a.stdin.end()
  b.stdin.end()
  assert.equal(await aExit, 0)
  assert.equal(await bExit, 0)
})

test('init writes a key and a config that node --config runs; flags override; bad configs are refused', async () => {
  const { spawn } = await import('node:child_process')
  const { createInterface } = await import('node:readline')
  const { readFileSync, writeFileSync } = await import('node:fs')
  const dir = mkdtempSync(path.join(tmpdir(), 'cp2p-init-'))
  try {
    const home = path.join(dir, 'home')
    const init = run('init', '--home', home)
    assert.equal(init.status, 0, init.stderr)
    const peer = init.stdout.trim()
    assert.match(peer, /^12D3KooW/)
    assert.equal(statSync(path.join(home, 'node.key')).mode & 0o777, 0o600)
    assert.equal(run('id', '--key', path.join(home, 'node.key')).stdout.trim(), peer)
    assert.equal(run('init', '--home', home).status, 1) // never overwrites silently
    const cfgFile = path.join(home, 'config.toml')
    const cfg = readFileSync(cfgFile, 'utf8').replace('/ip4/0.0.0.0/tcp/4001', '/ip4/127.0.0.1/tcp/0')
    writeFileSync(cfgFile, cfg)
    const node = spawn(cli, ['node', '--config', cfgFile, '--json'])
    const first = await new Promise(resolve => createInterface({ input: node.stdout }).once('line', l => resolve(JSON.parse(l))))
    assert.equal(first.peer_id, peer) // the key came from the config
    node.kill('SIGTERM')
    assert.equal(await new Promise(resolve => node.on('exit', resolve)), 0)
    writeFileSync(path.join(dir, 'bad.toml'), 'listen /ip4/1.2.3.4/tcp/1\n')
    const bad = run('node', '--config', path.join(dir, 'bad.toml'))
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /expected 'name = value'/)
    writeFileSync(path.join(dir, 'unknown.toml'), 'no-such-option = 1\n')
    assert.equal(run('node', '--config', path.join(dir, 'unknown.toml')).status, 2)
    assert.equal(run('node', '--config', path.join(dir, 'missing.toml')).status, 2)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a node restarted with its peerstore (cp2p init config) reconnects to its previous peer by itself', { timeout: 60000 }, async () => {
  const { spawn } = await import('node:child_process')
  const { createInterface } = await import('node:readline')
  const { readFileSync, writeFileSync } = await import('node:fs')
  const dir = mkdtempSync(path.join(tmpdir(), 'cp2p-reconnect-'))
  const started = []
  // Start `cp2p node ARGS --json`; waitFor(pred) resolves with the first JSON line matching pred.
  const startNode = (...args) => {
    const p = spawn(cli, ['node', ...args, '--json'])
    started.push(p)
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
  try {
    const home = path.join(dir, 'home')
    const init = run('init', '--home', home)
    assert.equal(init.status, 0, init.stderr)
    const cfgFile = path.join(home, 'config.toml')
    const cfg = readFileSync(cfgFile, 'utf8')
    assert.ok(cfg.includes(`peerstore = "${path.join(home, 'peerstore.db')}"`), cfg)
    writeFileSync(cfgFile, cfg.replace('/ip4/0.0.0.0/tcp/4001', '/ip4/127.0.0.1/tcp/0'))

    const b = startNode('--listen', '/ip4/127.0.0.1/tcp/0')
    const bl = await b.waitFor(j => j.event === 'listening')
    const bAddr = bl.addrs[0].replace(/\/p2p\/.*$/, '') // no /p2p/: dialed once, not persistent

    const a1 = startNode('--config', cfgFile, '--peer', bAddr)
    await a1.waitFor(j => j.event === 'connected' && j.peer === bl.peer_id)
    assert.equal(await a1.stop(), 0) // writes the peerstore
    assert.ok(statSync(path.join(home, 'peerstore.db')).size > 0)

    const a2 = startNode('--config', cfgFile) // told nothing about B
    const c = await a2.waitFor(j => j.event === 'connected' && j.peer === bl.peer_id)
    assert.equal(c.direction, 'outbound')
    assert.equal(await a2.stop(), 0)
    assert.equal(await b.stop(), 0)
  } finally {
    for (const p of started) { if (p.exitCode === null) p.kill('SIGKILL') }
    rmSync(dir, { recursive: true, force: true })
  }
})
