// What one end-to-end test server costs on PostgreSQL (QUOLL_TEST_SERVER_DATABASE=postgres):
// ROUNDS × (startTestServer: its database created, the node started; stopTestServer: stopped,
// home removed, database dropped), timing each phase, with the CPU of this process, of the
// server processes (reaped children) and of PostgreSQL (every postgres process, plus what the
// postmaster reaped: its backends). PostgreSQL is shared: run it where nothing else uses it.
// ROOT picks the checkout whose test support is measured (default: this one), so one copy of
// the probe measures two checkouts alternately.
// Run: ROUNDS=8 [ROOT=/work/base] node --import tsx bench/pg-node-cycle-probe.ts
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as TestServerModule from '../test/support/test-server.js';

if (process.env.ON_SQLITE !== '1') process.env.QUOLL_TEST_SERVER_DATABASE = 'postgres';
const root = process.env.ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.env.ROUNDS ?? 8);
const support = (await import(
  pathToFileURL(`${root}/test/support/test-server.ts`).href
)) as typeof TestServerModule;

const TICK_MS = 10; // getconf CLK_TCK = 100
function stat(pid: string | number): number[] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s
    .slice(s.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
}
/** CPU ms of every postgres process and of what the postmaster reaped. */
function postgresCpuMs(): number {
  let ticks = 0;
  const pids = execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).trim().split('\n');
  for (const pid of pids) {
    try {
      const f = stat(pid); // fields from 3: utime is [11], stime [12], cutime [13], cstime [14]
      ticks += f[11]! + f[12]! + (f[1] === 1 ? f[13]! + f[14]! : 0);
    } catch {
      // gone meanwhile
    }
  }
  return ticks * TICK_MS;
}
function childrenCpuMs(): number {
  const f = stat('self');
  return (f[13]! + f[14]!) * TICK_MS;
}
const selfCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const totals = { start: 0, stop: 0, cleanup: 0 };
const cpu0 = { self: selfCpuMs(), children: childrenCpuMs(), pg: postgresCpuMs() };
const wall0 = performance.now();
// Warm-up round (the first createTestDatabase probes PostgreSQL; a template is made once per run).
{
  const s = await support.startTestServer();
  await support.stopTestServer(s);
}
const cpu1 = { self: selfCpuMs(), children: childrenCpuMs(), pg: postgresCpuMs() };
const wall1 = performance.now();
for (let i = 0; i < rounds; i++) {
  let t = performance.now();
  const s = await support.startTestServer();
  totals.start += performance.now() - t;
  t = performance.now();
  const code = await s.stop();
  totals.stop += performance.now() - t;
  t = performance.now();
  await s.cleanup();
  totals.cleanup += performance.now() - t;
  if (code !== 0) throw new Error(`server exited ${String(code)}: ${s.output()}`);
}
const wall2 = performance.now();
const cpu2 = { self: selfCpuMs(), children: childrenCpuMs(), pg: postgresCpuMs() };
const per = (x: number): string => (x / rounds).toFixed(0);
console.log(
  JSON.stringify({
    root,
    rounds,
    warmupMs: Math.round(wall1 - wall0),
    warmupCpuMs: Math.round(cpu1.self - cpu0.self + cpu1.children - cpu0.children + cpu1.pg - cpu0.pg),
    perRound: {
      wallMs: per(wall2 - wall1),
      startMs: per(totals.start),
      stopMs: per(totals.stop),
      cleanupMs: per(totals.cleanup),
      cpuSelfMs: per(cpu2.self - cpu1.self),
      cpuServerMs: per(cpu2.children - cpu1.children),
      cpuPostgresMs: per(cpu2.pg - cpu1.pg),
      cpuTotalMs: per(cpu2.self - cpu1.self + cpu2.children - cpu1.children + cpu2.pg - cpu1.pg),
    },
  }),
);
