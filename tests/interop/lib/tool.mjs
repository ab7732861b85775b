// Runs one of cp2p's interop tools (a C program built by CMake) in batch mode: one command per
// input line, one answer per output line.
import { spawn } from 'node:child_process'
import path from 'node:path'

export function toolPath (name) {
  const build = process.env.CP2P_BUILD
  if (build == null || build === '') {
    throw new Error('CP2P_BUILD is not set: run these tests through ctest (make test)')
  }
  return path.join(build, name)
}

export async function runBatch (name, lines) {
  const child = spawn(toolPath(name), [], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', d => { out += d })
  child.stderr.setEncoding('utf8').on('data', d => { err += d })
  const done = new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', code => resolve(code))
  })
  child.stdin.end(lines.join('\n') + '\n')
  const code = await done
  if (code !== 0) {
    throw new Error(`${name} exited with ${code}: ${err}`)
  }
  const answers = out.split('\n')
  answers.pop() // the text ends with a newline
  if (answers.length !== lines.length) {
    throw new Error(`${name}: ${lines.length} commands but ${answers.length} answers; stderr: ${err}`)
  }
  return answers
}
