// Gossipsub interop: cp2p (tests/interop/pubsub_tool.c) against js-libp2p's gossipsub
// (@libp2p/gossipsub, the js-libp2p 3.x package of the ChainSafe implementation).
//  (a) a mixed mesh of N js + N cp2p nodes (N = GS_N, default 10) in a ring with chords,
//      alternating kinds: messages published by several js and several cp2p nodes reach every
//      other node exactly once with the right author. Both sides use StrictSign: js verifies
//      every signature before delivering and cp2p does too, so delivery proves both sign and
//      verify each other's messages.
//  (b) PRUNE with peer exchange (PX), both ways: cp2p (do_px) leaving a topic prunes its js
//      mesh peer with PX and a backoff that js records and acts on (dials the PX peers); js
//      (doPX) leaving a topic prunes cp2p, which dials the PX peers and honours the backoff
//      (no GRAFT back before it expires, a GRAFT after).
import './lib/polyfill.mjs'
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { jsPubsubNode, recordJs, Cp2pPubsub, until, sleep } from './lib/pubsub.mjs'

const N = Number(process.env.GS_N ?? 10)
const all = []
after(async () => {
  // Every node stops; a cp2p tool that exits non-zero (e.g. a sanitizer report) fails the run.
  const res = await Promise.allSettled(all.map(n => n instanceof Cp2pPubsub ? n.stopWithin(5000) : n.stop()))
  const bad = res.filter(r => r.status === 'rejected').map(r => r.reason?.message)
  for (const n of all) {
    if (n instanceof Cp2pPubsub && /runtime error|Sanitizer/.test(n.stderr)) bad.push(n.stderr)
  }
  if (bad.length > 0) throw new Error(bad.join('\n'))
})

async function mkJs (opts) {
  const n = await jsPubsubNode(opts)
  all.push(n)
  const got = recordJs(n)
  return { kind: 'js', node: n, got, id: n.peerId.toString(), addr: n.getMultiaddrs()[0].toString() }
}

async function mkC (opts = {}) {
  const c = new Cp2pPubsub()
  all.push(c)
  const l = await c.listening
  const r = await c.start(opts)
  assert.ok(r.ok, `start: ${JSON.stringify(r)}`)
  return { kind: 'c', node: c, id: l.peer, addr: l.addr }
}

async function dial (from, to) {
  if (from.kind === 'js') {
    await from.node.dial(multiaddr(to.addr))
  } else {
    const r = await from.node.dial(to.addr)
    assert.ok(r.ok, `cp2p dial: ${JSON.stringify(r)}`)
  }
}

async function sub (n, topic) {
  if (n.kind === 'js') n.node.services.pubsub.subscribe(topic)
  else assert.ok((await n.node.sub(topic)).ok)
}

async function mesh (n, topic) {
  if (n.kind === 'js') return n.node.services.pubsub.getMeshPeers(topic).map(String)
  const r = await n.node.mesh(topic)
  assert.ok(r.ok)
  return r.peers
}

async function topicPeers (n, topic) {
  if (n.kind === 'js') return n.node.services.pubsub.getSubscribers(topic).map(String)
  return (await n.node.peers(topic)).peers
}

async function publish (n, topic, text) {
  if (n.kind === 'js') {
    const r = await n.node.services.pubsub.publish(topic, Buffer.from(text))
    assert.ok(r.recipients.length > 0)
  } else {
    const r = await n.node.pub(topic, text)
    assert.ok(r.ok, `cp2p publish: ${JSON.stringify(r)}`)
  }
}

function received (n, topic) {
  const msgs = n.kind === 'js' ? n.got : n.node.msgs
  return msgs.filter(m => m.topic === topic)
}

test(`mixed mesh of ${N} js + ${N} cp2p nodes: signed messages from both kinds reach everyone once`, { timeout: 40_000 }, async (t) => {
  const T = 'cp2p-mix'
  const nodes = []
  for (let i = 0; i < N; i++) {
    nodes.push(await mkJs())
    nodes.push(await mkC())
  }
  const M = nodes.length
  for (const n of nodes) await sub(n, T)
  // Ring (every edge joins a js and a cp2p node) plus chords i -> i+5 for even i (also mixed).
  const edges = new Set()
  const degree = new Array(M).fill(0)
  const addEdge = (a, b) => {
    const k = a < b ? `${a}-${b}` : `${b}-${a}`
    if (a === b || edges.has(k)) return null
    edges.add(k); degree[a]++; degree[b]++
    return [a, b]
  }
  const plan = []
  for (let i = 0; i < M; i++) plan.push(addEdge(i, (i + 1) % M))
  if (M > 6) for (let i = 0; i < M; i += 2) plan.push(addEdge(i, (i + 5) % M))
  await Promise.all(plan.filter(Boolean).map(([a, b]) => dial(nodes[a], nodes[b])))

  // Every node knows all its neighbours' subscriptions and has them all in its mesh (degree
  // is at most 4 < D_lo, so the mesh is the whole connection graph).
  await until(async () => {
    for (let i = 0; i < M; i++) {
      if ((await topicPeers(nodes[i], T)).length < degree[i]) return false
      if ((await mesh(nodes[i], T)).length < degree[i]) return false
    }
    return true
  }, 15_000, 'meshes formed')

  const pubs = [0, 1, 2, 3, 4, 5].map(k => nodes[(k * 7) % M]) // both kinds (ids alternate)
  assert.ok(pubs.some(p => p.kind === 'js') && pubs.some(p => p.kind === 'c'))
  const sent = []
  const tPub = Date.now()
  for (const [k, p] of pubs.entries()) {
    for (let j = 0; j < 2; j++) {
      const text = `m-${p.kind}-${k}-${j}`
      await publish(p, T, text)
      sent.push({ text, from: p.id })
    }
  }
  // Two large messages (above both sides' IDONTWANT thresholds: gossipsub v1.2).
  for (const p of pubs.slice(0, 2)) {
    const text = `L-${p.kind}-` + 'x'.repeat(4000)
    await publish(p, T, text)
    sent.push({ text, from: p.id })
  }
  const missing = () => {
    const out = []
    for (const n of nodes) {
      const got = received(n, T)
      for (const s of sent) {
        if (s.from !== n.id && !got.some(m => m.data === s.text)) out.push(`${n.kind}:${n.id.slice(-6)} lacks ${s.text}`)
      }
    }
    return out
  }
  await until(() => missing().length === 0, 10_000, 'every message delivered').catch(err => {
    throw new Error(`${err.message}: ${missing().slice(0, 10).join('; ')}`)
  })
  t.diagnostic(`${sent.length} messages (2 of 4 KB) from ${pubs.length} publishers reached all ${M - 1} other nodes in ${Date.now() - tPub} ms`)
  await sleep(1000) // late duplicates would show up here
  for (const n of nodes) {
    const got = received(n, T)
    for (const s of sent) {
      const copies = got.filter(m => m.data === s.text)
      if (s.from === n.id) {
        assert.equal(copies.length, 0, `${n.kind} node got its own message back`)
        continue
      }
      assert.equal(copies.length, 1, `${n.kind} node got ${s.text} ${copies.length} times`)
      assert.equal(copies[0].from, s.from, `author of ${s.text} at a ${n.kind} node`)
      assert.equal(copies[0].seqno.length, 16, 'an 8-byte seqno')
      if (n.kind === 'js') assert.ok(copies[0].signed, 'js delivered a signed message')
    }
  }
  let idontwant = 0
  for (const n of nodes.filter(x => x.kind === 'c')) {
    const st = await n.node.stats()
    assert.equal(st.msgs_bad_sig, 0)
    assert.equal(st.msgs_rejected, 0)
    assert.equal(st.rpcs_refused, 0)
    idontwant += st.idontwant_sent
    // Honest neighbours of both kinds keep a non-negative score (scoring is on by default).
    assert.ok(Object.keys(st.scores).length > 0)
    for (const [id, v] of Object.entries(st.scores)) assert.ok(v >= 0, `score of ${id}: ${v}`)
  }
  assert.ok(idontwant > 0, 'cp2p sent IDONTWANT for the large messages')
})

test('cp2p PRUNE with PX and backoff is understood by js', { timeout: 15_000 }, async () => {
  const T = 'cp2p-px1'
  const c1 = await mkC({ do_px: 1 })
  // js takes PX only from peers scoring at least acceptPXThreshold (default 10; 0 here).
  const j1 = await mkJs({ scoreThresholds: { acceptPXThreshold: 0 } })
  const q1 = await mkC()
  const q2 = await mkJs()
  const gs = j1.node.services.pubsub
  // What js makes of the PX list (the peer IDs it would connect to).
  const pxSeen = []
  const origPx = gs.pxConnect.bind(gs)
  gs.pxConnect = async (peers) => {
    pxSeen.push(...peers.map(p => peerIdFromMultihash(Digest.decode(p.peerID)).toString()))
    return origPx(peers)
  }
  const prunes = []
  gs.addEventListener('gossipsub:prune', e => prunes.push({ ...e.detail, peerId: e.detail.peerId.toString(), at: Date.now() }))
  // j1 knows where q1 and q2 are (cp2p's PX carries peer IDs only, no signed records).
  for (const q of [q1, q2]) {
    await j1.node.peerStore.merge(peerIdFromString(q.id), { multiaddrs: [multiaddr(q.addr.replace(/\/p2p\/.*$/, ''))] })
  }
  for (const n of [c1, j1, q1, q2]) await sub(n, T)
  for (const n of [j1, q1, q2]) await dial(c1, n)
  await until(async () => (await mesh(c1, T)).includes(j1.id) && (await mesh(j1, T)).includes(c1.id) &&
    (await topicPeers(c1, T)).length === 3, 8000, 'c1 and j1 in each other\'s mesh')
  assert.equal(j1.node.getConnections(peerIdFromString(q1.id)).length, 0)
  const t0 = Date.now()
  assert.ok((await c1.node.unsub(T)).ok)
  const pr = await until(() => prunes.find(p => p.peerId === c1.id && p.direction === 'inbound'), 4000, 'js saw the PRUNE')
  assert.equal(pr.topic, T)
  assert.ok(!gs.getMeshPeers(T).map(String).includes(c1.id))
  // Backoff: cp2p leaves with CP2P_GS_UNSUB_BACKOFF_MS (10 s), sent in seconds.
  const exp = gs.backoff.get(T)?.get(c1.id)
  assert.ok(exp != null, 'js recorded a backoff for c1')
  assert.ok(exp - t0 > 8000 && exp - t0 < 12_000, `backoff ${exp - t0} ms`)
  // PX: the other subscribers of T that c1 knows, and js dials them.
  await until(() => pxSeen.length >= 2, 3000, 'js processed the PX list')
  assert.deepEqual([...new Set(pxSeen)].sort(), [q1.id, q2.id].sort())
  await until(() => j1.node.getConnections(peerIdFromString(q1.id)).length > 0 &&
    j1.node.getConnections(peerIdFromString(q2.id)).length > 0, 5000, 'js connected to the PX peers')
})

test('js PRUNE with PX and backoff is understood by cp2p', { timeout: 20_000 }, async (t) => {
  const T = 'cp2p-px2'
  const BACKOFF = 3000
  const j2 = await mkJs({ doPX: true, unsubcribeBackoff: BACKOFF })
  // cp2p's scoring takes PX only from peers scoring at least 10: off here, so js's counts.
  const c2 = await mkC({ no_scoring: 1 })
  const r1 = await mkC()
  const r2 = await mkJs()
  const gs = j2.node.services.pubsub
  const grafts = []
  gs.addEventListener('gossipsub:graft', e => grafts.push({ ...e.detail, peerId: e.detail.peerId.toString(), at: Date.now() }))
  const prunesOut = []
  gs.addEventListener('gossipsub:prune', e => {
    if (e.detail.direction === 'outbound') prunesOut.push({ peerId: e.detail.peerId.toString(), at: Date.now() })
  })
  for (const r of [r1, r2]) assert.ok((await c2.node.addAddr(r.addr)).ok)
  for (const n of [j2, c2, r1, r2]) await sub(n, T)
  for (const n of [c2, r1, r2]) await dial(j2, n)
  await until(async () => (await mesh(j2, T)).includes(c2.id) && (await mesh(c2, T)).includes(j2.id) &&
    (await topicPeers(j2, T)).length === 3, 8000, 'j2 and c2 in each other\'s mesh')
  assert.ok(!c2.node.events.some(e => e.event === 'conn' && (e.peer === r1.id || e.peer === r2.id)))
  const t0 = Date.now()
  gs.unsubscribe(T) // PRUNE (PX: r1, r2; backoff 3 s) to the mesh, c2 among them
  // cp2p dials the PX peers (by peer ID, from its peerstore).
  await Promise.race([
    Promise.all([r1, r2].map(r => c2.node.event(e => e.event === 'conn' && e.peer === r.id && e.outbound))),
    sleep(5000).then(() => { throw new Error('cp2p did not dial the PX peers') })
  ])
  const st = await c2.node.stats()
  assert.ok(st.px_dials >= 2, `px_dials ${st.px_dials}`)
  // js puts in the PX the signed peer record it got from r2's identify (cp2p's r1 sends none):
  // cp2p opened and verified it.
  assert.ok(st.px_records_ok >= 1, `px_records_ok ${st.px_records_ok}`)
  assert.equal(st.px_records_bad, 0)
  assert.equal(st.rpcs_refused, 0)
  assert.ok(!(await mesh(c2, T)).includes(j2.id))
  // Rejoin at once: c2 (mesh below D_lo) wants j2 back but must wait out the backoff.
  gs.subscribe(T)
  const g = await until(() => grafts.find(x => x.peerId === c2.id && x.direction === 'inbound' && x.at > t0),
    BACKOFF + 5000, 'c2 grafted j2 again after the backoff')
  t.diagnostic(`c2 grafted j2 again ${g.at - t0} ms after the PRUNE (backoff ${BACKOFF} ms)`)
  assert.ok(g.at - t0 >= BACKOFF - 200, `c2 grafted after ${g.at - t0} ms, within the ${BACKOFF} ms backoff`)
  // js answers a GRAFT within its backoff with another PRUNE: none but the leave's.
  await sleep(300)
  assert.equal(prunesOut.filter(p => p.peerId === c2.id && p.at >= t0 - 50).length, 1)
})

test('cp2p drops a js message whose signature does not verify (and delivers the next good one)', { timeout: 10_000 }, async () => {
  const T = 'cp2p-badsig'
  const e = await mkJs()
  const c = await mkC()
  const gs = e.node.services.pubsub
  // Tamper with outgoing messages whose data starts with "bad": one byte of the data changes
  // after signing, so the signature no longer covers it.
  const origSend = gs.sendRpc.bind(gs)
  gs.sendRpc = (id, rpc) => origSend(id, {
    ...rpc,
    messages: rpc.messages.map(m => {
      if (m.data == null || Buffer.from(m.data).toString().slice(0, 3) !== 'bad') return m
      const data = Uint8Array.from(m.data)
      data[0] = 'B'.charCodeAt(0)
      return { ...m, data }
    })
  })
  for (const n of [e, c]) await sub(n, T)
  await dial(e, c)
  await until(async () => (await topicPeers(e, T)).includes(c.id) && (await topicPeers(c, T)).includes(e.id), 5000, 'subscriptions exchanged')
  await publish(e, T, 'bad-1')
  await until(async () => (await c.node.stats()).msgs_bad_sig >= 1, 3000, 'cp2p counted a bad signature')
  await publish(e, T, 'good-1')
  await until(() => received(c, T).some(m => m.data === 'good-1'), 3000, 'cp2p delivered the good message')
  assert.deepEqual(received(c, T).map(m => m.data), ['good-1'])
  assert.equal(received(c, T)[0].from, e.id)
})
