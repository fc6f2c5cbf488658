// Server start cost: `quoll server` on a fresh home, from spawn until it prints "listening",
// then SIGTERM until it exits — the CPU of the whole (the server, its threads and every
// process it started and reaped: sandboxes, warm processes) and the time to "listening".
// Each CLI given starts in turn, round after round (alternating), so builds are paired.
//
//   npx tsx bench/server-start.bench.ts [cli.js ...]
//
// Default CLI: this tree's build. `BENCH_ROUNDS` (default 5) rounds; `BENCH_DATABASE=postgres`
// makes each server a node on a fresh PostgreSQL database (QUOLL_TEST_PG_URL, else the local
// default), created before and dropped after the start, neither in the figures;
// `BENCH_SERVER_ARGS` adds flags (space-separated); `BENCH_HOLD_MS` (default 1000) is how long
// the server runs after "listening" before the SIGTERM, so that what it starts in the background
// (warm processes, threads) is counted as a test server pays for it. `/usr/bin/time` reads the CPU (it counts
// every reaped descendant).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '../test/support/postgres-test-database.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const clis = process.argv.slice(2).length
  ? process.argv.slice(2).map((p) => resolve(p))
  : [join(here, '../packages/quoll/dist/cli/main.js')];
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const onPostgres = process.env.BENCH_DATABASE === 'postgres';
const holdMs = Number(process.env.BENCH_HOLD_MS ?? 1000);
const extraArgs = (process.env.BENCH_SERVER_ARGS ?? '').split(' ').filter((a) => a !== '');

interface Start {
  listenMs: number;
  wallMs: number;
  userS: number;
  sysS: number;
}

async function startOnce(cli: string): Promise<Start> {
  const home = await mkdtemp(join(tmpdir(), 'quoll-start-bench-'));
  const runsDir = await mkdtemp(join(tmpdir(), 'quoll-start-bench-runs-'));
  let db: TestDatabase | null = null;
  if (onPostgres) db = await createTestDatabase();
  try {
    const args = [
      '-f',
      'cpu %U %S',
      process.execPath,
      cli,
      'server',
      '--home',
      home,
      '--port',
      '0',
      '--log-level',
      'warn',
      ...(db === null ? [] : ['--database', db.url]),
      ...extraArgs,
    ];
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', args, {
      env: { ...process.env, QUOLL_RUNS_DIR: runsDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    let listenMs = NaN;
    await new Promise<void>((res, rej) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (Number.isNaN(listenMs) && out.includes('listening on ')) {
          listenMs = performance.now() - t0;
          res();
        }
      });
      void exited.then((code) =>
        rej(new Error(`server exited ${String(code)} before listening:\n${out}${err}`)),
      );
    });
    await new Promise((res) => setTimeout(res, holdMs));
    // The time process forwards nothing: signal the server (its only child).
    const serverPid = await childPid(child.pid!);
    process.kill(serverPid, 'SIGTERM');
    const code = await exited;
    const wallMs = performance.now() - t0;
    const m = /cpu ([\d.]+) ([\d.]+)/.exec(err);
    if (code !== 0 || m === null) throw new Error(`server exited ${String(code)}:\n${out}${err}`);
    return { listenMs, wallMs, userS: Number(m[1]), sysS: Number(m[2]) };
  } finally {
    await rm(home, { recursive: true, force: true });
    await rm(runsDir, { recursive: true, force: true });
    await db?.drop();
  }
}

async function childPid(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  const first = text.trim().split(' ')[0];
  if (first === undefined || first === '') throw new Error(`no child of ${pid}`);
  return Number(first);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const results = new Map<string, Start[]>(clis.map((c) => [c, []]));
for (let r = 0; r < rounds; r++) {
  for (const cli of r % 2 === 0 ? clis : [...clis].reverse()) {
    const s = await startOnce(cli);
    results.get(cli)!.push(s);
    console.log(
      `round ${r + 1} ${cli}: listening ${s.listenMs.toFixed(0)} ms, total ${s.wallMs.toFixed(0)} ms, ` +
        `CPU ${s.userS.toFixed(2)} u + ${s.sysS.toFixed(2)} s = ${(s.userS + s.sysS).toFixed(2)} s`,
    );
  }
}
console.log(`\n${onPostgres ? 'PostgreSQL' : 'SQLite'}, ${rounds} starts each (median; min–max CPU)`);
for (const [cli, starts] of results) {
  const cpu = starts.map((s) => s.userS + s.sysS);
  console.log(
    `${cli}: listening ${median(starts.map((s) => s.listenMs)).toFixed(0)} ms, ` +
      `CPU ${median(cpu).toFixed(2)} s (${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)}), ` +
      `user ${median(starts.map((s) => s.userS)).toFixed(2)}, sys ${median(starts.map((s) => s.sysS)).toFixed(2)}`,
  );
}
