// Helpers for the host interop tests: a js-libp2p node configured like a typical deployment
// (TCP + Noise + yamux, identify, identify push, ping, echo), a /perf/1.0.0 implementation for
// js (no perf package is published for js-libp2p 3.x, so the test carries the spec's protocol),
// and a driver for cp2p's host_tool process.
import './polyfill.mjs'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, identifyPush } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { echo } from '@libp2p/echo'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { toolPath } from './tool.mjs'

export const PERF = '/perf/1.0.0'

function drain (stream) {
  return new Promise((resolve, reject) => {
    const onDrain = () => { stream.removeEventListener('close', onClose); resolve() }
    const onClose = () => { stream.removeEventListener('drain', onDrain); reject(new Error('stream closed')) }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}

async function sendBytes (stream, total, first) {
  const chunk = new Uint8Array(64 * 1024)
  if (first != null && !stream.send(first)) await drain(stream)
  let left = total
  while (left > 0) {
    const n = Math.min(left, chunk.length)
    if (!stream.send(n === chunk.length ? chunk : chunk.subarray(0, n))) await drain(stream)
    left -= n
  }
}

// Server side of the perf spec: read the u64 download size, discard the upload until EOF, send.
export async function perfHandler (stream) {
  const header = []
  let have = 0
  for await (const buf of stream) {
    const bytes = buf.subarray ? buf.subarray() : buf
    if (have < 8) {
      header.push(bytes.slice(0, 8 - have))
      have += Math.min(8, have + bytes.byteLength) - have
    }
  }
  if (have < 8) { stream.abort(new Error('short perf header')); return }
  const h = Buffer.concat(header.map(b => Buffer.from(b)))
  await sendBytes(stream, Number(h.readBigUInt64BE(0)))
  await stream.close()
}

// Client side: returns {uploadBytes, downloadBytes, uploadMs, downloadMs, totalMs}.
export async function perfClient (node, peer, upload, download) {
  const stream = await node.dialProtocol(peer, PERF)
  const t0 = performance.now()
  let received = 0
  let tUp = 0
  const reading = (async () => { for await (const buf of stream) received += buf.byteLength })()
  const hdr = Buffer.alloc(8)
  hdr.writeBigUInt64BE(BigInt(download))
  await sendBytes(stream, upload, hdr)
  tUp = performance.now()
  await stream.close()
  await reading
  const t = performance.now()
  return { uploadBytes: upload, downloadBytes: received, uploadMs: tUp - t0, downloadMs: t - tUp, totalMs: t - t0 }
}

// The request-response test protocol both sides speak (host_tool's rr-serve / rr): one stream per
// request; the requester writes the request and closes its write side, the responder reads to
// end of stream and answers "echo:" + the request, then closes.
export const RR = '/cp2p-test/rr/1.0.0'
const RR_PREFIX = Buffer.from('echo:')

async function sendAll (stream, data) {
  for (let off = 0; off < data.length; off += 65536) {
    if (!stream.send(data.subarray(off, off + 65536))) await drain(stream)
  }
}

async function readAll (stream) {
  const chunks = []
  for await (const buf of stream) chunks.push(Buffer.from(buf.subarray ? buf.subarray() : buf))
  return Buffer.concat(chunks)
}

// Responder, on the js-libp2p 3.x stream API.
export async function rrHandler (stream) {
  try {
    const req = await readAll(stream)
    await sendAll(stream, Buffer.concat([RR_PREFIX, req]))
    await stream.close()
  } catch (err) {
    stream.abort(err)
  }
}

// Requester: returns the response bytes (the whole stream after our close); throws when the
// stream is reset or fails.
export async function rrRequest (node, peer, data, protocol = RR) {
  const stream = await node.dialProtocol(peer, protocol)
  const reading = readAll(stream)
  try {
    await sendAll(stream, data)
    await stream.close()
  } catch (err) {
    await reading.catch(() => {})
    throw err
  }
  return reading
}

export function rrExpected (data) {
  return Buffer.concat([RR_PREFIX, data])
}

// ping's maxOutboundStreams: js's connection monitor pings on the same protocol every 10 s, and
// a ping stream stays counted until both FINs passed; during a bulk transfer the peer's FIN
// waits behind the data (yamux keeps a stream's FIN in order with everyone's data), so a test
// ping and the monitor's overlap. The default of 1 then fails the test's ping with
// TooManyOutboundProtocolStreamsError, whatever the peer's implementation.
export async function jsNode (extra = {}) {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping({ maxOutboundStreams: 4 }), echo: echo({ timeout: 120_000, maxInboundStreams: 256, maxOutboundStreams: 256 }) },
    ...extra
  })
  await node.handle(PERF, perfHandler, { maxInboundStreams: 4 })
  return node
}

// A js-libp2p node running @libp2p/kad-dht on /ipfs/kad/1.0.0 (server unless clientMode), with
// identify and ping (kad-dht needs both). js drops loopback and private addresses from DHT
// answers by default: passthroughMapper keeps them. js refuses records of a namespace without a
// validator: `namespace` gets one that accepts anything (selector: the first).
export const KAD = '/ipfs/kad/1.0.0'

export async function jsKadNode ({ clientMode = false, namespace = 'test' } = {}) {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    // Every peer of a loopback network shares 127.0.0.1: js's default of 5 inbound connections
    // per second per host would refuse lookups' dials (as cp2p exempts loopback by default).
    connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100 },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: KAD,
        clientMode,
        peerInfoMapper: passthroughMapper,
        validators: { [namespace]: async () => {} },
        selectors: { [namespace]: () => 0 }
      })
    }
  })
}

// cp2p's host_tool (or another tool of the same protocol): commands in, JSON lines out.
export class Cp2pHost {
  constructor (tool = 'host_tool') {
    this.tool = tool
    this.proc = spawn(toolPath(tool), [], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } })
    this.stderr = ''
    // CP2P_TOOL_STDERR=1 mirrors the tool's log to ours (debugging a failing test).
    this.proc.stderr.setEncoding('utf8').on('data', d => {
      this.stderr += d
      if (process.env.CP2P_TOOL_STDERR) process.stderr.write(d)
    })
    this.events = []
    this.waiters = []
    this.replies = []
    this.replyWaiters = []
    createInterface({ input: this.proc.stdout }).on('line', l => this.#line(l))
    this.exited = new Promise(resolve => this.proc.on('exit', code => resolve(code)))
  }

  #line (l) {
    const msg = JSON.parse(l)
    if (msg.cmd != null) {
      const w = this.replyWaiters.shift()
      if (w != null) w(msg); else this.replies.push(msg)
      return
    }
    this.events.push(msg)
    this.waiters = this.waiters.filter(w => !w(msg))
  }

  // Resolves with the first event (past or future) that satisfies pred.
  event (pred) {
    const seen = this.events.find(pred)
    if (seen != null) return Promise.resolve(seen)
    return new Promise(resolve => this.waiters.push(m => { if (pred(m)) { resolve(m); return true } return false }))
  }

  cmd (line) {
    this.proc.stdin.write(line + '\n')
    const r = this.replies.shift()
    if (r != null) return Promise.resolve(r)
    return new Promise(resolve => this.replyWaiters.push(resolve))
  }

  async stop () {
    this.proc.stdin.end('quit\n')
    const code = await this.exited
    if (code !== 0) throw new Error(`${this.tool} exited with ${code}: ${this.stderr}`)
  }
}

// cp2p's kad_tool (tests/interop/kad_tool.c): a host running cp2p's Kademlia DHT. Each method
// sends one command and resolves with its JSON answer ({ok: false, error} on failure).
export class Cp2pKad extends Cp2pHost {
  constructor () {
    super('kad_tool')
    this.listening = this.event(e => e.event === 'listening')
  }

  // mode: 'server' or 'client'; bootstrap: multiaddrs ending in /p2p/<id>.
  start (namespace, mode, bootstrap = []) { return this.cmd(['start', namespace, mode, ...bootstrap].join(' ')) }
  bootstrap () { return this.cmd('bootstrap') }
  table () { return this.cmd('table') }
  stats () { return this.cmd('stats') }
  findPeer (id) { return this.cmd(`find-peer ${id}`) }
  put (key, value) { return this.cmd(`put ${key} ${value}`) }
  get (key) { return this.cmd(`get ${key}`) }
  provide (cid) { return this.cmd(`provide ${cid}`) }
  findProviders (cid) { return this.cmd(`find-providers ${cid}`) }

  // Ends the process if it does not quit within ms (a hung tool must not hang the test run).
  async stopWithin (ms = 10_000) {
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms)
    try { await this.stop() } finally { clearTimeout(timer) }
  }
}
