// Sandbox cost: runOnce → first line of user code via followLogs() through two real servers,
// sandbox on (bubblewrap) and off, interleaved; and 60 trivial runs, 4 in flight, through the
// runner with the sandbox on and off, against a loop spawning `node` on the same one-line script
// at the same concurrency, in the same run. Run: npm run bench -- sandbox
// (writes bench/results/sandbox.json). Needs bubblewrap.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Orchestration } from '@quoll/client';
import { resolveClientPackageDir } from '../packages/quoll/src/orchestrations/index.js';
import { NodeRuntime, setUpSandbox, TaskRunner } from '../packages/quoll/src/runner/index.js';
import type {
  PackagedOrchestration,
  ResourceLimits,
  TaskRunnerOptions,
} from '../packages/quoll/src/runner/index.js';
import { readyOrchestration } from '../test/support/orchestration-helpers.js';
import { startTestServer, type TestServer } from '../test/support/test-server.js';
import { median, printTable, writeResults } from './support.js';

const N_FIRST = 10;
const N_TRIVIAL = 60;
const CONCURRENCY = 4;
const now = (): number => performance.timeOrigin + performance.now();
const root = mkdtempSync(join(tmpdir(), 'quoll-bench-sandbox-'));
const pct = (xs: number[], p: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

// The server's default limits, as a sandboxed run gets them.
const LIMITS: ResourceLimits = {
  memoryBytes: 4 * 1024 ** 3,
  processes: 512,
  openFiles: 16384,
  cpuSeconds: null,
  diskBytes: 2 * 1024 ** 3,
};

async function launcherFor(
  mode: 'bubblewrap' | 'off',
): Promise<Pick<TaskRunnerOptions, 'launcher' | 'taskUser'>> {
  const setup = await setUpSandbox({
    mode,
    network: 'host',
    taskUser: null,
    limits: LIMITS,
    scratchDir: join(root, `runs-${mode}`, '.quoll'),
    apiPort: () => 9,
  });
  return { launcher: setup.launcher, taskUser: setup.taskUser };
}

// 1. runOnce → first line, sandbox on vs off, through two servers, interleaved.
const servers: TestServer[] = [];
const firstLine: Record<'on' | 'off', number[]> = { on: [], off: [] };
try {
  const on = await startTestServer({ args: ['--sandbox', 'bubblewrap'] });
  servers.push(on);
  const off = await startTestServer({ args: ['--sandbox', 'off'] });
  servers.push(off);
  const orchestration = async (s: TestServer): Promise<Orchestration> =>
    readyOrchestration(s.client(), 'first', { 'main.mjs': "console.log('first line');" });
  const targets = { on: await orchestration(on), off: await orchestration(off) };
  const once = async (o: Orchestration, i: number): Promise<number> => {
    const t0 = now();
    const task = await o.runOnce({ name: `first-${i}` });
    const [run] = await task.lastRuns({ limit: 1 });
    for await (const line of run!.followLogs()) if (line.line === 'first line') return now() - t0;
    throw new Error('no first line');
  };
  await once(targets.on, -1);
  await once(targets.off, -1);
  for (let i = 0; i < N_FIRST; i++) {
    firstLine.on.push(await once(targets.on, i));
    firstLine.off.push(await once(targets.off, i));
  }
} finally {
  for (const s of servers) {
    await s.stop();
    await s.cleanup();
  }
}

// 2. 60 trivial runs, 4 in flight: runner with sandbox on, off, and raw `node` spawns.
const dir = join(root, 'pkgs', 'trivial');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'main.mjs'), 'process.exit(0);');
const trivial: PackagedOrchestration = { dir, entry: 'main.mjs' };
const runners: Record<'on' | 'off', TaskRunner> = {
  on: new TaskRunner({
    logsDir: join(root, 'logs-on'),
    runsDir: join(root, 'runs-bubblewrap'),
    serverUrl: 'http://127.0.0.1:9',
    concurrency: CONCURRENCY,
    ...(await launcherFor('bubblewrap')),
    runtimes: [new NodeRuntime({ sdkDir: resolveClientPackageDir() })],
    limits: LIMITS,
    issueRunToken: () => Promise.resolve({ token: 't', revoke: () => Promise.resolve() }),
  }),
  off: new TaskRunner({
    logsDir: join(root, 'logs-off'),
    runsDir: join(root, 'runs-off'),
    serverUrl: 'http://127.0.0.1:9',
    concurrency: CONCURRENCY,
    ...(await launcherFor('off')),
    runtimes: [new NodeRuntime({ sdkDir: resolveClientPackageDir() })],
    limits: LIMITS,
    issueRunToken: () => Promise.resolve({ token: 't', revoke: () => Promise.resolve() }),
  }),
};
let seq = 0;
async function quollTrivial(runner: TaskRunner): Promise<number> {
  await runner.warm();
  const t0 = now();
  const outs = await Promise.all(
    Array.from(
      { length: N_TRIVIAL },
      () =>
        runner.start({
          runId: `t-${++seq}`,
          taskId: 't',
          workspaceId: 1,
          jsonArgs: {},
          timeoutSeconds: 900,
          package: trivial,
        }).done,
    ),
  );
  if (outs.some((o) => o.status !== 'success'))
    throw new Error(`a trivial run failed: ${JSON.stringify(outs[0])}`);
  return N_TRIVIAL / ((now() - t0) / 1000);
}
async function rawTrivial(): Promise<number> {
  const t0 = now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < N_TRIVIAL) {
      next++;
      await new Promise<void>((resolve) =>
        spawn(process.execPath, [join(dir, 'main.mjs')], { stdio: 'ignore' }).once('close', () => resolve()),
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return N_TRIVIAL / ((now() - t0) / 1000);
}
const perSec: Record<'on' | 'off' | 'raw', number[]> = { on: [], off: [], raw: [] };
for (let round = 0; round < 3; round++) {
  perSec.on.push(await quollTrivial(runners.on));
  perSec.off.push(await quollTrivial(runners.off));
  perSec.raw.push(await rawTrivial());
}
await runners.on.stop();
await runners.off.stop();
rmSync(root, { recursive: true, force: true });

console.log(
  `cpus: ${cpus().length}; load average at the end: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
printTable(
  ['runOnce → first line (HTTP)', 'n', 'p50 ms', 'p90 ms', 'max ms'],
  (['on', 'off'] as const).map((k) => [
    `sandbox ${k}`,
    firstLine[k].length,
    median(firstLine[k]),
    pct(firstLine[k], 90),
    Math.max(...firstLine[k]),
  ]),
);
console.log(
  `sandbox's own cost (p50 on − off): ${(median(firstLine.on) - median(firstLine.off)).toFixed(1)} ms`,
);
printTable(
  [`${N_TRIVIAL} trivial runs, ${CONCURRENCY} in flight`, 'median runs/s', 'rounds', 'ratio to raw'],
  (['on', 'off', 'raw'] as const).map((k) => [
    k === 'raw' ? 'raw node spawn loop' : `runner, sandbox ${k}`,
    median(perSec[k]),
    perSec[k].map((x) => x.toFixed(1)).join(' / '),
    median(perSec[k]) / median(perSec.raw),
  ]),
);
writeResults('sandbox', { firstLine, perSec, loadavg: loadavg() });
