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
