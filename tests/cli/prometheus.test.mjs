// The real Prometheus server (Debian's `prometheus` package) scraping two connected cp2p nodes
// (`cp2p node --api`): the series exist in Prometheus and move, `promtool check metrics` passes on
// the expositions, and docs/grafana-dashboard.json refers only to metrics a node exports.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import net from 'node:net'
import path from 'node:path'

const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const dashboardFile = path.join(root, 'docs', 'grafana-dashboard.json')
const havePrometheus = spawnSync('prometheus', ['--version']).status === 0
const havePromtool = spawnSync('promtool', ['--version']).status === 0
const skip = !havePrometheus &&
  'prometheus is not on PATH: install Debian\'s prometheus package (scripts/deps.sh)'
// The whole test fails after LIMIT_MS; its waits give up 10 s before, leaving time to clean up.
const LIMIT_MS = 60000

// A child process whose output lines go to onLine; stop() ends it and waits for its exit.
function run (cmd, args, onLine) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  p.stderr.on('data', d => { stderr = (stderr + d).slice(-8192) })
  if (onLine) createInterface({ input: p.stdout }).on('line', onLine)
  else p.stdout.resume()
  let exitCode
  const exited = new Promise(resolve => p.on('exit', (code, sig) => { exitCode = code ?? sig; resolve(exitCode) }))
  const stop = async () => {
    if (exitCode === undefined) p.kill('SIGTERM')
    const t = setTimeout(() => p.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(t)
  }
  return { p, exited, stop, stderr: () => stderr, running: () => exitCode === undefined }
}

// A cp2p node with --api: resolves with its peer ID, dialable address and API base URL.
function apiNode (args = []) {
  return new Promise((resolve, reject) => {
    const info = {}
    const n = run(cli, ['node', '--listen', '/ip4/127.0.0.1/tcp/0', '--json',
      '--api', '127.0.0.1:0', ...args], l => {
      const j = JSON.parse(l)
      if (j.event === 'listening') { info.id = j.peer_id; info.addr = j.addrs[0] }
      if (j.event === 'api') {
        info.base = j.url
        info.target = j.addr
        clearTimeout(timer)
        resolve(Object.assign(n, info))
      }
    })
    const timer = setTimeout(() => { n.stop(); reject(new Error(`node did not start: ${n.stderr()}`)) }, 10000)
    n.exited.then(code => { clearTimeout(timer); reject(new Error(`node exited ${code}: ${n.stderr()}`)) })
  })
}

async function call (url, method = 'POST') {
  const r = await fetch(url, { method, signal: AbortSignal.timeout(10000) })
  const text = await r.text()
  return { status: r.status, text }
}

async function exposition (node) {
  const r = await call(node.base + '/metrics', 'GET')
  assert.equal(r.status, 200, r.text)
  return r.text
}

// Sample names in an exposition (`name` of `name{labels} value`).
const sampleNames = text => new Set(text.split('\n')
  .filter(l => l !== '' && !l.startsWith('#')).map(l => l.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)[0]))

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

// Waits end at the deadline, or as soon as the running test is aborted (timed out).
let testSignal
async function poll (what, fn, deadline) {
  let last
  for (;;) {
    try { last = await fn() } catch (e) { last = e }
    if (last && !(last instanceof Error)) return last
    if (Date.now() > deadline || testSignal?.aborted) throw new Error(`timed out: ${what}` + (last instanceof Error ? `: ${last.message}` : ''))
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

// Prometheus on a free port (retried if another process took it meanwhile), storing in dir.
async function startPrometheus (dir, targets, deadline) {
  writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: cp2p',
    '    static_configs:',
    `      - targets: [${targets.map(t => `'${t}'`).join(', ')}]`,
    ''
  ].join('\n'))
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const prom = run('prometheus', [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn'
    ])
    prom.base = `http://127.0.0.1:${port}`
    try {
      await poll('prometheus ready', async () => prom.running() &&
        (await call(prom.base + '/-/ready', 'GET')).status === 200, Math.min(deadline, Date.now() + 20000))
      return prom
    } catch (e) {
      await prom.stop()
      if (attempt >= 3 || Date.now() > deadline) throw new Error(`${e.message}; prometheus: ${prom.stderr()}`)
    }
  }
}

// An instant query: [{ metric, value }] with numeric values.
async function query (prom, expr) {
  const r = await call(prom.base + '/api/v1/query?query=' + encodeURIComponent(expr), 'GET')
  const j = JSON.parse(r.text)
  assert.equal(j.status, 'success', `${expr}: ${r.text}`)
  return j.data.result.map(s => ({ metric: s.metric, value: Number(s.value[1]) }))
}

// The value of expr for one instance, or undefined.
async function valueAt (prom, expr, instance) {
  return (await query(prom, expr)).find(s => s.metric.instance === instance)?.value
}

// Metric names and variable substitutions in the dashboard's expressions.
function dashboardExprs () {
  const d = JSON.parse(readFileSync(dashboardFile, 'utf8'))
  const exprs = []
  const walk = panels => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr)
      walk(p.panels)
    }
  }
  walk(d.panels)
  for (const v of d.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query
    if (v.type === 'query' && q) exprs.push(q)
  }
  return { d, exprs }
}
const metricNames = expr => [...new Set(expr.match(/\bcp2p_[a-zA-Z0-9_:]*/g) ?? [])]
// A Grafana expression made a plain PromQL one: variables and range intervals filled in.
const promql = expr => expr.replace(/\$\{?__(rate_)?interval\}?/g, '30s')
  .replace(/\$\{?__range\}?/g, '5m').replace(/\$\{?(instance|job)(:[a-z]+)?\}?/g, '.*')

test('the dashboard is well-formed Grafana JSON over a ${DS_PROMETHEUS} input', () => {
  const { d, exprs } = dashboardExprs()
  assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`)
  assert.ok(d.__inputs.some(i => i.name === 'DS_PROMETHEUS' && i.pluginId === 'prometheus'))
  assert.ok(exprs.length >= 10)
  const ids = new Set()
  const check = panels => {
    for (const p of panels ?? []) {
      assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`)
      ids.add(p.id)
      assert.ok(p.gridPos && p.title, `panel ${p.id} has a gridPos and a title`)
      if (p.type !== 'row') assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', p.title)
      for (const t of p.targets ?? []) assert.ok(metricNames(t.expr).length > 0, `${p.title}: ${t.expr}`)
      check(p.panels)
    }
  }
  check(d.panels)
})

test('Prometheus scrapes two connected nodes; the series exist and move', { skip, timeout: LIMIT_MS }, async (t) => {
  const deadline = Date.now() + LIMIT_MS - 10000
  testSignal = t.signal
  const dir = mkdtempSync(path.join(tmpdir(), 'cp2p-prometheus-'))
  const procs = []
  const cleanup = async () => {
    for (const p of procs.splice(0).reverse()) await p.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  // Also when the test times out and its body is left running.
  t.after(cleanup)
  try {
    // Both run the DHT (the default), so the dashboard's DHT row has series to check.
    const a = await apiNode(['--topic', 'news'])
    procs.push(a)
    const b = await apiNode(['--topic', 'news'])
    procs.push(b)
    const prom = await startPrometheus(dir, [a.target, b.target], deadline)
    procs.push(prom)

    // Both targets up, and at least two scrapes of each, before the nodes connect.
    await poll('both targets up', async () => {
      const j = JSON.parse((await call(prom.base + '/api/v1/targets', 'GET')).text)
      const up = j.data.activeTargets.filter(t => t.health === 'up').map(t => t.labels.instance)
      return up.includes(a.target) && up.includes(b.target)
    }, deadline)
    const scrapes = async (n) => poll(`${n} scrapes of each node`, async () => {
      const r = await query(prom, 'count_over_time(up{job="cp2p"}[5m])')
      return [a.target, b.target].every(i => r.find(s => s.metric.instance === i)?.value >= n)
    }, deadline)
    await scrapes(2)
    for (const i of [a.target, b.target]) {
      assert.equal(await valueAt(prom, 'cp2p_host_connections_opened_total', i), 0)
    }

    const c = await call(`${a.base}/api/v0/connect?arg=${encodeURIComponent(b.addr)}`)
    assert.equal(c.status, 200, c.text)
    // The connection shows in Prometheus on both sides: opened moved from 0 to 1.
    await poll('connections seen by Prometheus', async () =>
      await valueAt(prom, 'cp2p_host_connections{direction="outbound"}', a.target) === 1 &&
      await valueAt(prom, 'cp2p_host_connections{direction="inbound"}', b.target) === 1, deadline)
    for (const i of [a.target, b.target]) {
      assert.ok(await valueAt(prom, 'cp2p_host_connections_opened_total', i) >= 1, i)
      assert.ok(await valueAt(prom, 'changes(cp2p_host_connections_opened_total[5m])', i) >= 1, i)
      assert.equal(await valueAt(prom, 'cp2p_peerstore_peers', i) >= 1, true, i)
    }

    // Traffic between scrapes: pings open streams, and Prometheus sees the count rise.
    const s0 = await valueAt(prom, 'cp2p_host_streams_opened_total', a.target)
    assert.ok(s0 >= 1, `streams opened before the pings: ${s0}`)
    const ping = await call(`${a.base}/api/v0/ping?arg=${b.id}&count=3`)
    assert.equal(ping.status, 200, ping.text)
    const s1 = await poll('streams opened rose', async () => {
      const v = await valueAt(prom, 'cp2p_host_streams_opened_total', a.target)
      return v > s0 && v
    }, deadline)
    assert.ok(s1 > s0)
    assert.ok(await valueAt(prom, 'increase(cp2p_host_streams_opened_total[30s])', a.target) > 0)
    // Prometheus's own scrapes are counted by the HTTP API's metrics.
    assert.ok(await valueAt(prom,
      'increase(cp2p_http_requests_total{endpoint="metrics",code="200"}[30s])', a.target) > 0)
    assert.ok(await valueAt(prom,
      'cp2p_http_request_duration_seconds_count{endpoint="ping"}', a.target) >= 1)
    await scrapes(4)
    // The pings' bytes, per protocol (3 x 32 bytes each way) and in the host totals.
    assert.ok(await valueAt(prom,
      'cp2p_host_stream_sent_bytes_total{protocol="/ipfs/ping/1.0.0"}', a.target) >= 96)
    assert.ok(await valueAt(prom,
      'cp2p_host_stream_received_bytes_total{protocol="/ipfs/ping/1.0.0"}', a.target) >= 96)
    assert.ok(await valueAt(prom, 'cp2p_host_sent_bytes_total', a.target) >= 96)
    assert.ok(await valueAt(prom, 'cp2p_noise_handshakes_total', a.target) >= 1)

    // promtool lints every exposition of the test.
    const texts = [await exposition(a), await exposition(b)]
    if (havePromtool) {
      for (const text of texts) {
        const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10000 })
        assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`)
      }
    }

    // Gossipsub: if the node exports pubsub series, Prometheus has them too.
    const names = sampleNames(texts[0])
    const pubsub = [...names].filter(n => /^cp2p_(gossipsub|pubsub)_/.test(n))
    if (pubsub.length === 0) {
      t.diagnostic('no gossipsub metric is exported yet (docs/METRICS.md): nothing to check')
    }
    for (const n of pubsub) {
      assert.ok((await query(prom, n)).some(s => s.metric.instance === a.target), `${n} in Prometheus`)
    }

    // The DHT: each node's routing table took the other in, and Prometheus saw it.
    await poll('routing tables seen by Prometheus', async () =>
      await valueAt(prom, 'cp2p_kad_routing_table_peers', a.target) >= 1 &&
      await valueAt(prom, 'cp2p_kad_routing_table_added_total', b.target) >= 1, deadline)

    // The dashboard cannot drift from the code: every metric it names is in a real exposition,
    // and every expression (variables filled in) is valid PromQL with data behind it.
    const { exprs } = dashboardExprs()
    for (const expr of exprs) {
      for (const n of metricNames(expr)) {
        assert.ok(names.has(n), `dashboard metric ${n} is not in a node's /metrics`)
      }
      const q = promql(expr)
      if (/^label_values\(/.test(q)) continue
      assert.ok((await query(prom, q)).length > 0, `dashboard expression has no data: ${q}`)
    }
  } finally {
    await cleanup()
  }
})
