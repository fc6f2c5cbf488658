// Shared pieces of the benchmarks: wrk runs, medians, result files.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Whether `taskset` can pin processes here. */
export const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** Spawns a process, pinned to `cores` when possible. */
export function spawnPinned(
  cores: string,
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): ChildProcess {
  return canPin
    ? spawn('taskset', ['-c', cores, cmd, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      })
    : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

/** Resolves with the first stdout match of `pattern`. */
export function waitFor(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        child.stdout?.off('data', on);
        resolve(m);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`exited ${String(code)} before ready:\n${out}`)));
  });
}

export interface WrkResult {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
}

/** Runs wrk with a POST body from a Lua script; returns throughput and latency. */
export function wrk(opts: {
  url: string;
  luaScript: string;
  connections: number;
  seconds: number;
  threads?: number;
}): WrkResult {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
    '-s',
    opts.luaScript,
    opts.url,
  ];
  const r = canPin
    ? spawnSync('taskset', ['-c', '1', 'wrk', ...args], { encoding: 'utf8' })
    : spawnSync('wrk', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const lat = (p: string): number => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { reqPerSec: rps, p50Ms: lat('50'), p99Ms: lat('99'), non2xx };
}

/** Writes `bench/results/<name>.json`. */
export function writeResults(name: string, data: unknown): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(`${RESULTS_DIR}${name}.json`, JSON.stringify(data, null, 2) + '\n');
}

/** Prints an aligned table. */
export function printTable(headers: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(2)) : c)),
  );
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => c.padStart(w[i] ?? 0)).join('  ');
  console.log(line(headers));
  console.log(w.map((x) => '-'.repeat(x)).join('  '));
  for (const r of cells) console.log(line(r));
}
