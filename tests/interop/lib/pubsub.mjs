// Helpers for the gossipsub interop test: a js-libp2p node running @libp2p/gossipsub (the
// js-libp2p 3.x successor of @chainsafe/libp2p-gossipsub) and a driver for cp2p's pubsub_tool.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { Cp2pHost } from './host.mjs'

// A js node with gossipsub as services.pubsub (StrictSign, the default: every message it
// accepts has a verified signature). opts go to gossipsub() (D, Dlo, Dhi, doPX, ...).
export async function jsPubsubNode (opts = {}) {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: 200 },
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: false, ...opts })
    }
  })
}

// Records every message a js node delivers: {topic, from, data (utf8), seqno (hex)}.
export function recordJs (node) {
  const got = []
  node.services.pubsub.addEventListener('message', evt => {
    const m = evt.detail
    got.push({
      topic: m.topic,
      from: m.type === 'signed' ? m.from.toString() : null,
      data: Buffer.from(m.data).toString('utf8'),
      seqno: m.type === 'signed' ? m.sequenceNumber.toString(16).padStart(16, '0') : null,
      signed: m.type === 'signed' && m.signature != null && m.signature.length > 0
    })
  })
  return got
}

// cp2p's pubsub_tool (tests/interop/pubsub_tool.c). Each method sends one command and
// resolves with its JSON answer ({ok: false, error} on failure); `msgs` are the delivered
// messages ({topic, from, via, seqno, id, data, data_hex}).
export class Cp2pPubsub extends Cp2pHost {
  constructor () {
    super('pubsub_tool')
    this.listening = this.event(e => e.event === 'listening')
  }

  get msgs () { return this.events.filter(e => e.event === 'msg') }
  // opts: {d, d_lo, d_hi, d_lazy, d_score, d_out, heartbeat_ms, do_px, no_scoring, ...}
  start (opts = {}) {
    const args = Object.entries(opts).map(([k, v]) => `${k}=${typeof v === 'boolean' ? Number(v) : v}`)
    return this.cmd(['start', ...args].join(' '))
  }

  dial (addr) { return this.cmd(`dial ${addr}`) }
  addAddr (addr) { return this.cmd(`addr ${addr}`) }
  sub (topic) { return this.cmd(`sub ${topic}`) }
  unsub (topic) { return this.cmd(`unsub ${topic}`) }
  pub (topic, text) { return this.cmd(`pub ${topic} ${text}`) }
  peers (topic) { return this.cmd(`peers ${topic}`) }
  mesh (topic) { return this.cmd(`mesh ${topic}`) }
  stats () { return this.cmd('stats') }

  async stopWithin (ms = 10_000) {
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms)
    try { await this.stop() } finally { clearTimeout(timer) }
  }
}

// Polls fn until it returns a truthy value; throws `what` after ms.
export async function until (fn, ms, what, every = 100) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise(resolve => setTimeout(resolve, every))
  }
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
