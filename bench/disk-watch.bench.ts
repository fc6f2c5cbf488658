// The cost of a run's disk limit: (1) one walk of a run directory of 10 to 100000 files
// (measureDiskUsage) and the share of a core the watcher then takes at its default pace;
// (2) paired runs through the runner, disk limit off and on (RLIMIT_FSIZE + watcher every
// 500 ms), interleaved in the same process: each run writes 2000 small files, then computes
// for about 1.5 s. Reports the server's CPU and the run's wall time, on / off.
// Run: npm run bench -- disk-watch (writes bench/results/disk-watch.json).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_DISK_CHECK_INTERVAL_MS,
  DirectLauncher,
  findExecutable,
  measureDiskUsage,
  NO_LIMITS,
  TaskRunner,
} from '../packages/quoll/src/runner/index.js';
import type { PackagedOrchestration } from '../packages/quoll/src/runner/index.js';
import { median, printTable, writeResults } from './support.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-bench-disk-'));
const load0 = loadavg()[0] ?? NaN;

// (1) One walk.
const walkRows: (string | number)[][] = [];
const walks: Record<string, number> = {};
for (const files of [10, 1_000, 10_000, 100_000]) {
  const dir = join(root, `walk-${files}`);
  mkdirSync(dir);
  // 100 files per folder, like a build tree.
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(sub);
    writeFileSync(join(sub, `f${i}`), 'x');
  }
  const times: number[] = [];
  for (let k = 0; k < 5; k++) {
    const t0 = performance.now();
    await measureDiskUsage(dir, { maxEntries: 200_000 });
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  walks[files] = ms;
  const pause = Math.max(DEFAULT_DISK_CHECK_INTERVAL_MS, 20 * ms);
  walkRows.push([files, ms.toFixed(2), `${((100 * ms) / (ms + pause)).toFixed(2)} %`]);
  rmSync(dir, { recursive: true, force: true });
}
printTable(['files in the run directory', 'one walk, ms (median of 5)', 'share of a core'], walkRows);

// (2) Paired runs.
const pkgDir = join(root, 'pkg');
mkdirSync(pkgDir);
writeFileSync(
  join(pkgDir, 'main.mjs'),
  `import { mkdirSync, writeFileSync } from 'node:fs';
   for (let d = 0; d < 20; d++) { mkdirSync('d' + d); for (let i = 0; i < 100; i++) writeFileSync('d' + d + '/f' + i, 'x'.repeat(4096)); }
   const end = Date.now() + 1500; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1);
   console.log('done', x > 0);`,
);
const pkg: PackagedOrchestration = { dir: pkgDir, entry: 'main.mjs' };
const prlimitPath = findExecutable('prlimit', process.env.PATH);
function runnerWith(diskBytes: number | null): TaskRunner {
  return new TaskRunner({
    logsDir: join(root, `logs-${diskBytes ?? 'off'}`),
    runsDir: join(root, `runs-${diskBytes ?? 'off'}`),
    serverUrl: 'http://127.0.0.1:9',
    issueRunToken: () => Promise.resolve({ token: 't', revoke: () => Promise.resolve() }),
    launcher: new DirectLauncher({ prlimitPath }),
    warmProcesses: 0,
    limits: { ...NO_LIMITS, diskBytes },
  });
}
const off = runnerWith(null);
const on = runnerWith(2 * 1024 ** 3);
const PAIRS = 8;
const cpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
const wall: Record<'off' | 'on', number[]> = { off: [], on: [] };
let seq = 0;
async function once(which: 'off' | 'on'): Promise<void> {
  const r = which === 'on' ? on : off;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const h = r.start({
    runId: `r${++seq}`,
    taskId: 't',
    workspaceId: 1,
    jsonArgs: {},
    timeoutSeconds: 60,
    package: pkg,
  });
  const outcome = await h.done;
  if (outcome.status !== 'success')
    throw new Error(`run ${which} ended ${outcome.status} (${outcome.reason})`);
  wall[which].push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu[which].push((c.user + c.system) / 1000);
}
await once('off');
await once('on');
for (let i = 0; i < PAIRS; i++) {
  // Alternate which goes first, so drift does not favour one side.
  if (i % 2 === 0) {
    await once('off');
    await once('on');
  } else {
    await once('on');
    await once('off');
  }
}
await off.stop();
await on.stop();
const drop = (xs: number[]): number[] => xs.slice(1);
const med = {
  cpuOff: median(drop(cpu.off)),
  cpuOn: median(drop(cpu.on)),
  wallOff: median(drop(wall.off)),
  wallOn: median(drop(wall.on)),
};
printTable(
  ['per run (median of 8, paired)', 'disk limit off', 'disk limit on', 'on / off'],
  [
    ['server CPU, ms', med.cpuOff.toFixed(1), med.cpuOn.toFixed(1), (med.cpuOn / med.cpuOff).toFixed(2)],
    [
      'run wall time, ms',
      med.wallOff.toFixed(0),
      med.wallOn.toFixed(0),
      (med.wallOn / med.wallOff).toFixed(3),
    ],
  ],
);
const load1 = loadavg()[0] ?? NaN;
console.log(`load average (1 min): ${load0.toFixed(2)} before, ${load1.toFixed(2)} after`);
writeResults('disk-watch', { walksMs: walks, perRun: med, cpu, wall, load: [load0, load1] });
rmSync(root, { recursive: true, force: true });
