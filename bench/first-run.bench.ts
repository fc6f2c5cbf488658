// A fresh server's first task run: `quoll server` on a new home, one orchestration uploaded
// (to ready), then runOnce → first line of user code via followLogs(), for the first run and
// the next BENCH_RUNS − 1. Main starts its warm processes at server start; a build that starts
// them on first use (branch `ci`, reverted from main: docs/benchmarks.md) must keep this latency.
// Each CLI given is measured in turn, round after round.
//
//   npx tsx bench/first-run.bench.ts [cli.js ...]   (default: this tree's build)
//
// BENCH_ROUNDS (default 3) fresh servers per CLI; BENCH_RUNS (default 3) runs per server.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@quoll/client';
import { median, now, uploadToReady } from './support.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const clis = process.argv.slice(2).length
  ? process.argv.slice(2).map((p) => resolve(p))
  : [join(here, '../packages/quoll/dist/cli/main.js')];
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const runs = Number(process.env.BENCH_RUNS ?? 3);

async function oneServer(cli: string): Promise<{ readyMs: number; firstLineMs: number[] }> {
  const home = await mkdtemp(join(tmpdir(), 'quoll-first-run-'));
  const runsDir = await mkdtemp(join(tmpdir(), 'quoll-first-run-runs-'));
  const child = spawn(
    process.execPath,
    [cli, 'server', '--home', home, '--port', '0', '--log-level', 'warn'],
    { env: { ...process.env, QUOLL_RUNS_DIR: runsDir }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  try {
    let out = '';
    const url = await new Promise<string>((res, rej) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m?.[1]) res(m[1]);
      });
      void exited.then(() => rej(new Error(`server exited:\n${out}`)));
    });
    const { token } = JSON.parse(await readFile(join(home, 'credentials.json'), 'utf8')) as { token: string };
    const client = new Client({ url, token });
    const [readyMs, o] = await uploadToReady(client, { 'main.mjs': "console.log('first line');" }, 0);
    const firstLineMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = now();
      const task = await o.runOnce({ name: `first-line-${i}` });
      const [run] = await task.lastRuns({ limit: 1 });
      for await (const line of run!.followLogs()) {
        if (line.line === 'first line') {
          firstLineMs.push(now() - t0);
          break;
        }
      }
    }
    return { readyMs, firstLineMs };
  } finally {
    child.kill('SIGTERM');
    await exited;
    await rm(home, { recursive: true, force: true });
    await rm(runsDir, { recursive: true, force: true });
  }
}

const results = new Map<string, { readyMs: number; firstLineMs: number[] }[]>(clis.map((c) => [c, []]));
for (let r = 0; r < rounds; r++) {
  for (const cli of r % 2 === 0 ? clis : [...clis].reverse()) {
    const s = await oneServer(cli);
    results.get(cli)!.push(s);
    console.log(
      `round ${r + 1} ${cli}: upload → ready ${s.readyMs.toFixed(0)} ms; runOnce → first line ` +
        s.firstLineMs.map((ms) => ms.toFixed(0)).join(', ') +
        ' ms',
    );
  }
}
console.log(`\nmedian of ${rounds} servers each`);
for (const [cli, xs] of results) {
  const later = xs.flatMap((x) => x.firstLineMs.slice(1));
  console.log(
    `${cli}: upload → ready ${median(xs.map((x) => x.readyMs)).toFixed(0)} ms; first run ` +
      `${median(xs.map((x) => x.firstLineMs[0]!)).toFixed(0)} ms; later runs ` +
      `${later.length ? median(later).toFixed(0) : '–'} ms`,
  );
}
