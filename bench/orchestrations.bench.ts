// Orchestrations through the real HTTP API of a `quoll server` process (the built CLI):
// upload → ready without dependencies and with an already-installed dependency set,
// runOnce → first line of user code seen by followLogs(), and printed line → visible to
// followLogs(). Run: npx tsx bench/orchestrations.bench.ts — writes bench/results/orchestrations.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, Orchestration } from '@quoll/client';
import { startTestServer } from '../test/support/test-server.js';
import { createZip } from '../test/support/zip-builder.js';
import { median, printTable, writeResults } from './support.js';

const N = 10;
const now = (): number => performance.timeOrigin + performance.now();
const root = mkdtempSync(join(tmpdir(), 'quoll-bench-orch-'));

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/** Upload → status() 'ready', polled every 5 ms; returns ms and the orchestration. */
async function uploadToReady(
  client: Client,
  files: Record<string, string>,
  i: number,
): Promise<[number, Orchestration]> {
  // A unique comment makes every zip (and its sha) distinct, as real uploads are.
  const entries = Object.entries(files).map(([path, content]) => ({
    path,
    content: path.endsWith('.json') ? content : `${content}\n// ${i} ${Math.random()}`,
  }));
  const bytes = await createZip(entries);
  const t0 = now();
  const o = await client.uploadOrchestration({ bytes, fileName: 'bench.zip' }, { name: `bench-${i}` });
  for (;;) {
    const s = await o.status();
    if (s === 'ready') return [now() - t0, o];
    if (s === 'error') throw new Error(`packaging failed: ${String(await o.packagingLogs())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const server = await startTestServer();
try {
  const client = server.client();

  // 1. No dependencies.
  const noDeps: number[] = [];
  let first: Orchestration | undefined;
  for (let i = 0; i < N; i++) {
    const [ms, o] = await uploadToReady(
      client,
      { 'main.ts': "const s: string = 'first line';\nconsole.log(s);" },
      i,
    );
    noDeps.push(ms);
    first ??= o;
  }

  // 2. A dependency set installed once (a local file: package, so no registry is needed), then reused.
  const lib = join(root, 'benchlib');
  mkdirSync(lib, { recursive: true });
  writeFileSync(
    join(lib, 'package.json'),
    JSON.stringify({ name: 'benchlib', version: '1.0.0', type: 'module', main: 'index.js' }),
  );
  writeFileSync(join(lib, 'index.js'), 'export const hello = () => "hello from benchlib";\n');
  const withDepsFiles = {
    'main.ts': "import { hello } from 'benchlib';\nconsole.log(hello());",
    'package.json': JSON.stringify({ dependencies: { benchlib: `file:${lib}` } }),
  };
  const [installMs] = await uploadToReady(client, withDepsFiles, -1);
  const withDeps: number[] = [];
  for (let i = 0; i < N; i++) withDeps.push((await uploadToReady(client, withDepsFiles, 100 + i))[0]);

  // 3. runOnce → first line of user code visible to followLogs().
  const toFirstLine: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = now();
    const task = await first!.runOnce({ name: `first-line-${i}` });
    const [run] = await task.lastRuns({ limit: 1 });
    for await (const line of run!.followLogs()) {
      if (line.line === 'first line') {
        toFirstLine.push(now() - t0);
        break;
      }
    }
  }

  // 4. A printed line → visible to followLogs() (lines carry their print time).
  const printer = (
    await uploadToReady(
      client,
      {
        'main.mjs':
          "for (let i = 0; i < 40; i++) { console.log('t=' + (performance.timeOrigin + performance.now())); await new Promise((r) => setTimeout(r, 25)); }",
      },
      999,
    )
  )[1];
  const lineDelays: number[] = [];
  const task = await printer.runOnce({ name: 'printer' });
  const [run] = await task.lastRuns({ limit: 1 });
  for await (const line of run!.followLogs()) {
    if (line.line.startsWith('t=')) lineDelays.push(now() - Number(line.line.slice(2)));
  }

  const rows: [string, number[], number][] = [
    ['upload → ready, no dependencies', noDeps, 1000],
    ['upload → ready, installed dependency set', withDeps, 2000],
    ['runOnce → first line via followLogs()', toFirstLine, 150],
    ['printed line → followLogs()', lineDelays, 100],
  ];
  console.log(
    `cpus: ${cpus().length}; first install of the file: dependency set: ${installMs.toFixed(0)} ms`,
  );
  printTable(
    ['measure', 'n', 'p50 ms', 'p90 ms', 'max ms', 'target ms'],
    rows.map(([name, xs, target]) => [name, xs.length, median(xs), pct(xs, 90), Math.max(...xs), target]),
  );
  writeResults('orchestrations', {
    cpus: cpus().length,
    firstInstallMs: installMs,
    results: rows.map(([name, xs, target]) => ({
      name,
      n: xs.length,
      p50: median(xs),
      p90: pct(xs, 90),
      max: Math.max(...xs),
      targetMs: target,
    })),
  });
} finally {
  await server.stop();
  await server.cleanup();
  rmSync(root, { recursive: true, force: true });
}
