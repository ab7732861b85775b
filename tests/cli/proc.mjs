// Spawning the cp2p program and reading its JSON lines (the same helper as the other CLI
// tests, kept in one module here).
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'

export const cli = path.join(process.env.CP2P_BUILD ?? 'build', 'cp2p')

// A long-running cp2p command: waitFor(pred) resolves with the first JSON line matching.
export function start (args) {
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

// A short cp2p command: its exit code, stdout and stderr.
export const run = (...args) => new Promise(resolve => {
  const p = spawn(cli, args)
  let out = ''
  let err = ''
  p.stdout.on('data', d => { out += d })
  p.stderr.on('data', d => { err += d })
  p.on('close', code => resolve({ code, out, err }))
})
