// Orchestrations through the real HTTP API of a `quoll server` process (the built CLI):
// upload → ready without dependencies and with an already-installed dependency set,
// runOnce → first line of user code seen by followLogs(), and printed line → visible to
// followLogs(). Run: npx tsx bench/orchestrations.bench.ts — writes bench/results/orchestrations.json.
import { cpus } from 'node:os';
import type { Orchestration } from '@quoll/client';
import { startTestServer } from '../test/support/test-server.js';
import { median, now, percentile, printTable, uploadToReady, writeResults } from './support.js';

const N = 10;

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

  // 2. A dependency set installed once (a package shipped in the zip, so no registry is needed), then reused.
  const withDepsFiles = {
    'main.ts': "import { hello } from 'benchlib';\nconsole.log(hello());",
    'package.json': JSON.stringify({ dependencies: { benchlib: 'file:./benchlib' } }),
    'benchlib/package.json': JSON.stringify({
      name: 'benchlib',
      version: '1.0.0',
      type: 'module',
      main: 'index.js',
    }),
    'benchlib/index.js': 'export const hello = () => "hello from benchlib";\n',
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
    rows.map(([name, xs, target]) => [
      name,
      xs.length,
      median(xs),
      percentile(xs, 90),
      Math.max(...xs),
      target,
    ]),
  );
  writeResults('orchestrations', {
    cpus: cpus().length,
    firstInstallMs: installMs,
    results: rows.map(([name, xs, target]) => ({
      name,
      n: xs.length,
      p50: median(xs),
      p90: percentile(xs, 90),
      max: Math.max(...xs),
      targetMs: target,
    })),
  });
} finally {
  await server.stop();
  await server.cleanup();
}
