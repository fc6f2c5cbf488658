// Where a cluster node's infer request costs more than an embedded server's: infer over HTTP,
// Arrow IPC batch 1000, c=1, servers interleaved in short windows, and per request: the server
// process's CPU, its PostgreSQL backends' CPU (/proc/<backend pid>), PostgreSQL transactions
// (pg_stat_database) and minor page faults. Linux only (/proc), needs PostgreSQL
// (QUOLL_TEST_PG_URL); creates and drops two databases.
// PROBE_CONFIGS (default emb,node): emb, node, emb-nolog, node-nolog (QUOLL_INFERENCE_LOGS=off),
// base (a node from another build: PROBE_BASE_CLI=/path/to/dist/cli/main.js), emb-base (an
// embedded server from that build). PROBE_ROUNDS (3), PROBE_SECONDS (3), PROBE_PROF=1 (--cpu-prof
// into /tmp/quoll-probe-prof/<config>, worker threads included), PROBE_THREADS=1 (CPU and minor
// faults per request of each server thread, by its tid's offset from the main thread's and its
// name, then summed by name; Node 20 names every thread `node` but V8's profiler threads, so
// the offsets tell them apart: the main thread 0, V8's four platform workers (GC helpers) just after, then
// the log writer, then the inference workers), PROBE_DB_PREFIX (quoll_probe:
// the scratch databases' name prefix), PROBE_WINDOWS=1 (each window's server and backend CPU per request,
// not only their medians), PROBE_SQL_DB2 (SQL run on the second database once the servers have
// started, e.g. a storage setting for the `base` node to be compared; `;;` between statements
// runs them one by one), PROBE_SQL_DB1 (the same on the first database, the `node`'s: with both,
// e.g. the same log prefilled for two builds). Always printed, per request: PostgreSQL's shared processes' CPU
// (walwriter, checkpointer, background writer: the WAL and heap writes a node's backend leaves
// to them, which no server's figure counts), the kernel's worker threads' CPU (writeback of
// dirty pages, for both servers' writes), and the whole machine's busy CPU (every process, so
// other load counts in it too), and the WAL the PostgreSQL server wrote per request in the
// server's windows (the whole server's: any other database's writes meanwhile count too).
// Run: node --import tsx bench/postgres-probe.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Client } from '@quoll/client';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { cpuSeconds, median, minorFaults, waitFor } from './support.js';

const WIDTH = 18;
const SECS = Number(process.env.PROBE_SECONDS ?? 3);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const PROF = process.env.PROBE_PROF === '1';
const THREADS = process.env.PROBE_THREADS === '1';
/** Per thread of a process: CPU ns (schedstat) and minor faults (stat field 10), by tid. */
function threadStats(pid: number): Map<number, { cpuNs: number; minflt: number; comm: string }> {
  const out = new Map<number, { cpuNs: number; minflt: number; comm: string }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const cpuNs = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const minflt = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      out.set(Number(tid), { cpuNs, minflt, comm });
    } catch {
      // the thread ended
    }
  }
  return out;
}
/** CPU seconds of PostgreSQL's shared processes (not backends) and of the kernel's worker threads. */
function sharedCpu(): { pgAux: number; kworker: number } {
  let pgAux = 0;
  let kworker = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const isAux =
        comm === 'postgres' &&
        /checkpointer|background writer|walwriter/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      const isKworker = comm.startsWith('kworker') || comm.startsWith('jbd2') || comm.startsWith('flush-');
      if (!isAux && !isKworker) continue;
      const secs = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
      if (isAux) pgAux += secs;
      else kworker += secs;
    } catch {
      // the process ended
    }
  }
  return { pgAux, kworker };
}
/** Busy CPU seconds of the whole machine (all cores; idle and iowait left out). */
function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / 100;
}
const configs = (process.env.PROBE_CONFIGS ?? 'emb,node').split(',');
const PG_URL = process.env.QUOLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const urlOf = (name: string): string => {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
};
async function makeDb(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const root = new pg.Client({ connectionString: PG_URL });
  await root.connect();
  await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await root.query(`CREATE DATABASE ${name}`);
  await root.end();
  return {
    url: urlOf(name),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
const DB_PREFIX = process.env.PROBE_DB_PREFIX ?? 'quoll_probe';
const db = await makeDb(`${DB_PREFIX}_${process.pid}_1`);
const db2 = await makeDb(`${DB_PREFIX}_${process.pid}_2`);
const admin = new pg.Client({ connectionString: db.url });
await admin.connect();
const dbNames = [new URL(db.url).pathname.slice(1), new URL(db2.url).pathname.slice(1)];
/**
 * The servers' own connections (client backends) in those databases: not autovacuum or parallel
 * workers, which start and end within a window and would count from zero or not at all.
 */
async function backendPids(names: string[] = dbNames): Promise<number[]> {
  const r = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE datname = ANY($1) AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
    [names],
  );
  return r.rows.map((x) => x.pid);
}
/** The server's WAL position, in bytes (every database's writes: the one measured's, in its window). */
async function walBytes(): Promise<number> {
  const r = await admin.query<{ b: string }>(
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b",
  );
  return Number(r.rows[0]?.b ?? 0);
}
async function xacts(names: string[] = dbNames): Promise<number> {
  await admin.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
  const r = await admin.query<{ n: string }>(
    'SELECT sum(xact_commit + xact_rollback) AS n FROM pg_stat_database WHERE datname = ANY($1)',
    [names],
  );
  return Number(r.rows[0]?.n ?? 0);
}
const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
const body = tableToIpcFile(makeArrowTensorTable(makeHouseRows(1000, 1), WIDTH));
const model = makeTreeEnsembleRegressor({ seed: 1 });
interface S {
  name: string;
  child: ChildProcess;
  url: string;
  home: string;
  token: string;
  node: boolean;
}
const servers: S[] = [];
try {
  for (const name of configs) {
    const base = name.startsWith('base') || name.endsWith('-base');
    const node = name.startsWith('node') || name.startsWith('base');
    const logsOff = name.endsWith('-nolog');
    const home = mkdtempSync(join(tmpdir(), 'quoll-probe-home-'));
    const child = spawn(
      process.execPath,
      [
        ...(PROF ? ['--cpu-prof', `--cpu-prof-dir=/tmp/quoll-probe-prof/${name}`] : []),
        base ? (process.env.PROBE_BASE_CLI ?? cli) : cli,
        'server',
        '--home',
        home,
        '--port',
        '0',
        '--log-level',
        'warn',
        ...(node ? ['--database', logsOff || base ? db2.url : db.url] : []),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...(logsOff ? { QUOLL_INFERENCE_LOGS: 'off' } : {}) },
      },
    );
    const url = (await waitFor(child, /listening on (http:\S+)/))[1] ?? '';
    const token = (JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string })
      .token;
    const client = new Client({ url, token });
    const m = await (
      await client.uploadModel(`bench-${servers.length}`, model)
    ).configure({ tensorFields: ['tensor'] });
    const p = await client.buildPipeline(`bench-${servers.length}`);
    await p.addModelStep(m);
    await p.deploy();
    servers.push({ name, child, url: p.url(), home, token, node });
  }
  for (const [sql, url] of [
    [process.env.PROBE_SQL_DB1, db.url],
    [process.env.PROBE_SQL_DB2, db2.url],
  ] as const) {
    if (!sql) continue;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    // `;;` separates statements run one by one (VACUUM cannot run in a multi-statement query).
    for (const statement of sql.split(';;')) await c.query(statement);
    await c.end();
  }
  const rate: Record<string, number[]> = {};
  const cpuPerReq: Record<string, number[]> = {};
  const pgCpuPerReq: Record<string, number[]> = {};
  const xactPerReq: Record<string, number[]> = {};
  const flt: Record<string, number[]> = {};
  const pgAuxPerReq: Record<string, number[]> = {};
  const kworkerPerReq: Record<string, number[]> = {};
  const machinePerReq: Record<string, number[]> = {};
  const walPerReq: Record<string, number[]> = {};
  /** Per config and thread (by tid order): CPU ms and minor faults per request, per window. */
  const perThread: Record<string, Map<number, { cpu: number[]; flt: number[]; comm: string }>> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of servers) {
      const post = () =>
        fetch(s.url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${s.token}`,
            'content-type': 'application/vnd.apache.arrow.file',
            accept: 'application/vnd.apache.arrow.file',
          },
          body,
        }).then((res) => res.arrayBuffer());
      for (let i = 0; i < 20; i++) await post();
      // This server's database only: the other node's background transactions and backends are not its.
      const own = !s.node ? [] : [new URL(s.name === 'node' ? db.url : db2.url).pathname.slice(1)];
      // Backends by pid at the window's start; a backend that connects during the window (the
      // log writer's second connection, opened for a detach or a vacuum, which then serves
      // writes too) counts from zero, one that ends during it not at all.
      const pg0 = new Map((await backendPids(own)).map((p) => [p, cpuSeconds(p)] as const));
      const x0 = await xacts(own);
      const c0 = cpuSeconds(s.child);
      const f0 = minorFaults(s.child.pid!);
      const th0 = THREADS ? threadStats(s.child.pid!) : null;
      const sh0 = sharedCpu();
      const m0 = machineBusy();
      const w0 = await walBytes();
      const t = performance.now();
      let n = 0;
      while (performance.now() - t < SECS * 1000) {
        await post();
        n++;
      }
      const el = (performance.now() - t) / 1000;
      (walPerReq[s.name] ??= []).push(((await walBytes()) - w0) / 1024 / n);
      const c1 = cpuSeconds(s.child);
      const sh1 = sharedCpu();
      (pgAuxPerReq[s.name] ??= []).push(((sh1.pgAux - sh0.pgAux) * 1000) / n);
      (kworkerPerReq[s.name] ??= []).push(((sh1.kworker - sh0.kworker) * 1000) / n);
      (machinePerReq[s.name] ??= []).push(((machineBusy() - m0) * 1000) / n);
      if (th0 !== null) {
        const byTid = (perThread[s.name] ??= new Map());
        for (const [tid, b] of threadStats(s.child.pid!)) {
          const a = th0.get(tid) ?? { cpuNs: 0, minflt: 0 };
          const e = byTid.get(tid) ?? { cpu: [], flt: [], comm: b.comm };
          e.cpu.push((b.cpuNs - a.cpuNs) / 1e6 / n);
          e.flt.push((b.minflt - a.minflt) / n);
          byTid.set(tid, e);
        }
      }
      (flt[s.name] ??= []).push((minorFaults(s.child.pid!) - f0) / n);
      let pgCpu = 0;
      for (const p of new Set([...pg0.keys(), ...(await backendPids(own))])) {
        const end = cpuSeconds(p);
        const start = pg0.get(p) ?? 0;
        if (Number.isFinite(end) && Number.isFinite(start)) pgCpu += end - start;
      }
      const x1 = await xacts(own);
      (rate[s.name] ??= []).push((n * 1000) / el);
      (cpuPerReq[s.name] ??= []).push(((c1 - c0) * 1000) / n);
      (pgCpuPerReq[s.name] ??= []).push((pgCpu * 1000) / n);
      // The admin connection's two flushes count in the node's database (it is connected to it).
      (xactPerReq[s.name] ??= []).push((x1 - x0 - (s.name === 'node' ? 2 : 0)) / n);
    }
  }
  if (process.env.PROBE_WINDOWS === '1')
    for (const s of servers)
      console.log(
        `${s.name.padEnd(12)} per window: CPU ms/req ${cpuPerReq[s.name]!.map((x) => x.toFixed(2)).join(' ')} | pg backends CPU ms/req ${pgCpuPerReq[s.name]!.map((x) => x.toFixed(2)).join(' ')}`,
      );
  for (const s of servers)
    console.log(
      `${s.name.padEnd(12)} rows/s ${rate[s.name]!.map((x) => Math.round(x)).join(' ')} | median ${Math.round(median(rate[s.name]!))} | server CPU ms/req ${median(cpuPerReq[s.name]!).toFixed(2)} | pg backends CPU ms/req ${median(pgCpuPerReq[s.name]!).toFixed(2)} | pg xact/req ${median(xactPerReq[s.name]!).toFixed(3)} | minflt/req ${median(flt[s.name]!).toFixed(0)}`,
    );
  for (const s of servers)
    console.log(
      `${s.name.padEnd(12)} shared CPU ms/req: pg walwriter+checkpointer+bgwriter ${median(pgAuxPerReq[s.name]!).toFixed(3)} | kernel workers ${median(kworkerPerReq[s.name]!).toFixed(3)} | machine busy ${median(machinePerReq[s.name]!).toFixed(2)} | WAL kB/req ${median(walPerReq[s.name]!).toFixed(1)}${process.env.PROBE_WINDOWS === '1' ? ` | per window: pg aux ${pgAuxPerReq[s.name]!.map((x) => x.toFixed(2)).join(' ')}; machine ${machinePerReq[s.name]!.map((x) => x.toFixed(2)).join(' ')}; WAL kB/req ${walPerReq[s.name]!.map((x) => x.toFixed(0)).join(' ')}` : ''}`,
    );
  for (const [name, byTid] of Object.entries(perThread)) {
    const rows = [...byTid]
      .sort((a, b) => a[0] - b[0])
      .map(([tid, v]) => ({ tid, cpu: median(v.cpu), flt: median(v.flt), comm: v.comm }));
    console.log(
      `${name.padEnd(12)} threads (tid order, CPU ms/req minflt/req, >0.05 ms): ${rows
        .filter((r) => r.cpu > 0.05)
        .map((r) => `${r.tid - rows[0]!.tid}(${r.comm}):${r.cpu.toFixed(2)}/${r.flt.toFixed(0)}`)
        .join(' ')}`,
    );
    // By thread name (Node names its threads: the main thread, each worker's, libuv's pool, V8's
    // platform workers): the sum over threads of each window's CPU per request, medians.
    const byName = new Map<string, number[]>();
    for (const v of byTid.values()) {
      const sums = byName.get(v.comm) ?? [];
      v.cpu.forEach((x, i) => (sums[i] = (sums[i] ?? 0) + x));
      byName.set(v.comm, sums);
    }
    console.log(
      `${name.padEnd(12)} by thread name (CPU ms/req, medians of window sums): ${[...byName]
        .map(([comm, sums]) => ({ comm, cpu: median(sums) }))
        .sort((a, b) => b.cpu - a.cpu)
        .map((x) => `${x.comm}:${x.cpu.toFixed(3)}`)
        .join(' ')}`,
    );
    if (process.env.PROBE_WINDOWS === '1')
      for (const r of rows.filter((x) => x.cpu > 0.05))
        console.log(
          `${name.padEnd(12)} thread ${r.tid - rows[0]!.tid} per window: ${byTid
            .get(r.tid)!
            .cpu.map((x) => x.toFixed(2))
            .join(' ')}`,
        );
  }
  for (const url of [db.url, db2.url]) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const r = await c
      .query<{ n: string; stored: string; raw: string }>(
        'SELECT count(*) AS n, avg(pg_column_size(data)) AS stored, avg(octet_length(data)) AS raw FROM inference_log_batches',
      )
      .catch(() => null);
    await c.end();
    const row = r?.rows[0];
    if (row && Number(row.n) > 0)
      console.log(
        `${new URL(url).pathname.slice(1)}: ${row.n} stored batches, ${Math.round(Number(row.raw))} bytes each, ${Math.round(Number(row.stored))} stored`,
      );
  }
  const e = median(rate.emb ?? []);
  const n = median(rate.node ?? []);
  if (e && n) console.log(`node/embedded ${(n / e).toFixed(2)}`);
  const b = median(rate.base ?? []);
  if (e && b) console.log(`base/embedded ${(b / e).toFixed(2)}`);
  const eb = median(rate['emb-base'] ?? []);
  if (eb && b) console.log(`base/emb-base ${(b / eb).toFixed(2)}`);
  if (eb && e) console.log(`embedded/emb-base ${(e / eb).toFixed(2)}`);
} finally {
  for (const s of servers) {
    s.child.kill('SIGTERM');
    await new Promise((resolve) => s.child.once('exit', resolve));
    rmSync(s.home, { recursive: true, force: true });
  }
  await admin.end();
  await db.drop();
  await db2.drop();
}
