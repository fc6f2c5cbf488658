// Shared pieces of the benchmarks: the model and request bodies, starting Quoll servers with a
// deployed pipeline, wrk runs, CPU time and load readings, medians, result files.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tableFromIPC, type FixedSizeList, type Float32, type Vector } from 'apache-arrow';
import { Client, type Orchestration, type Pipeline } from '@quoll/client';
import pg from 'pg';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../test/support/shared-fixtures.js';
import { createZip } from '../test/support/zip-builder.js';

export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

/** The p-th percentile (nearest rank) of `xs`. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Whether `taskset` can pin processes here. */
export const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** The core wrk runs on when pinning is possible (the servers under test are on core 0). */
export const WRK_CORE = '1';

/**
 * Moves this process, all its threads (the script's, libuv's, V8's), to wrk's core when pinning
 * is possible: the serving benches call it first, so that the harness, which starts the servers,
 * deploys, reads /proc and waits for wrk, never takes the servers' core 0 from them (its node
 * was seen there in slices of up to 4 ms while Quoll was measured, 5 December), for Quoll and
 * the references alike. Processes it spawns later without `taskset` inherit that core.
 */
export function keepHarnessOffServerCore(): void {
  if (!canPin) return;
  const moved = spawnSync('taskset', ['-a', '-p', '-c', WRK_CORE, String(process.pid)]);
  if (moved.status !== 0) throw new Error(`taskset could not move the harness: ${String(moved.stderr)}`);
}

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

interface WrkOptions {
  url: string;
  luaScript: string;
  connections: number;
  seconds: number;
  threads?: number;
}

/** wrk's command line (pinned to {@link WRK_CORE} when possible). */
function wrkCommand(opts: WrkOptions): [string, string[]] {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
    '-s',
    opts.luaScript,
    opts.url,
  ];
  return canPin ? ['taskset', ['-c', WRK_CORE, 'wrk', ...args]] : ['wrk', args];
}

/** Throughput, latency and non-2xx answers from wrk's report. */
function parseWrk(out: string): WrkResult {
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

/** Runs wrk with a POST body from a Lua script; returns throughput and latency. */
export function wrk(opts: WrkOptions): WrkResult {
  const [cmd, args] = wrkCommand(opts);
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  return parseWrk(r.stdout);
}

/** {@link wrk} without blocking this process: several can run at the same time. */
export function wrkAsync(opts: WrkOptions): Promise<WrkResult> {
  const [cmd, args] = wrkCommand(opts);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    // 'close', not 'exit': at 'exit' wrk's stdout may not all be read yet, and a summary cut
    // short parsed as NaN requests/s (a pair of bench/metrics.bench.ts left out, 3 December 07:40).
    child.once('close', (code) =>
      code === 0 ? resolve(parseWrk(out)) : reject(new Error(`wrk failed (${String(code)}): ${err}`)),
    );
  });
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

/** Seconds (or repetitions) from the environment: BENCH_WARMUP_S, BENCH_SECONDS, BENCH_REPS. */
export const WARMUP = Number(process.env.BENCH_WARMUP_S ?? 2);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
export const REPS = Number(process.env.BENCH_REPS ?? 3);

// ../shared beside the repository, or QUOLL_SHARED_DIR (a git worktree is not beside it).
const FIXTURES = SHARED_FIXTURES;
/** Whether the tutorial's fixtures are here (else a synthetic model and rows of the same shape). */
export const useFixture = hasSharedFixtures;
/** How result files and tables name the model. */
export const modelName = useFixture ? 'rf_model.onnx (fixture)' : 'synthetic tree ensemble';

/** The benchmark model written into `work`: the tutorial's `rf_model.onnx`, else a synthetic one. */
export function writeBenchModel(work: string): string {
  const path = join(work, 'model.onnx');
  writeFileSync(
    path,
    useFixture
      ? readFileSync(`${FIXTURES}rf_model.onnx`)
      : makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 }),
  );
  return path;
}

let baseRows: Float32Array | null = null;
/** `n` input rows of 18 floats: the fixture's 1000 test rows (or synthetic ones), repeated. */
export function benchRows(n: number): Float32Array {
  if (!baseRows) {
    if (useFixture) {
      const t = tableFromIPC(readFileSync(`${FIXTURES}xtest-1k.arrow`));
      const col = t.getChild('tensor') as Vector<FixedSizeList<Float32>>;
      baseRows = new Float32Array(t.numRows * 18);
      for (let i = 0; i < t.numRows; i++) baseRows.set(col.get(i)?.toArray() as Float32Array, i * 18);
    } else {
      baseRows = makeHouseRows(1000, 1);
    }
  }
  const base = baseRows;
  const count = base.length / 18;
  const out = new Float32Array(n * 18);
  for (let i = 0; i < n; i++) out.set(base.subarray((i % count) * 18, (i % count) * 18 + 18), i * 18);
  return out;
}

/** Request body formats: Quoll's JSON records, Arrow IPC file, and the Open Inference Protocol's JSON tensors. */
export type BodyFormat = 'json' | 'arrow' | 'oip';

const CONTENT_TYPES: Record<BodyFormat, string> = {
  json: 'application/json',
  arrow: 'application/vnd.apache.arrow.file',
  oip: 'application/json',
};

/** Writes (once) the body of a `batch`-row request in `format` under `work`; returns its path. */
export function writeBody(work: string, format: BodyFormat, batch: number): string {
  const path = join(work, `${format}-${batch}.body`);
  if (existsSync(path)) return path;
  const r = benchRows(batch);
  if (format === 'arrow') writeFileSync(path, tableToIpcFile(makeArrowTensorTable(r, 18)));
  else if (format === 'oip')
    writeFileSync(
      path,
      JSON.stringify({
        inputs: [{ name: 'tensor', shape: [batch, 18], datatype: 'FP32', data: Array.from(r) }],
      }),
    );
  else
    writeFileSync(
      path,
      JSON.stringify(
        Array.from({ length: batch }, (_, i) => ({ tensor: Array.from(r.subarray(i * 18, i * 18 + 18)) })),
      ),
    );
  return path;
}

/**
 * A wrk Lua script POSTing a `batch`-row `format` body, with a bearer token when given, its
 * headers always in the same order (Host, Content-Type, Accept, Authorization, Content-Length).
 *
 * wrk's own `wrk.format` writes the headers in the order of a Lua table, and LuaJIT seeds its
 * string hashes per process: each wrk run sent them in another order (seen 5 December: five runs,
 * four orders). Node builds `req.headers` in the order the headers arrive, so each new order is a
 * new hidden class, and every optimized function of the request path that reads a header (Node's
 * parserOnIncoming, Fastify's routeHandler, handleRequest, rawBody, content-type parser, Quoll's
 * hooks) deopted ("wrong map") and was compiled again on the server's core at the start of the
 * run, in Quoll and in F1 alike: a cost of wrk, not of the servers, which made short runs' p99
 * depend on the order drawn. One order is what a real client library sends.
 */
export function writeLua(
  work: string,
  opts: { format: BodyFormat; batch: number; token?: string | null; tag: string },
): string {
  const ct = CONTENT_TYPES[opts.format];
  const path = join(work, `${opts.format}-${opts.batch}-${opts.tag}.lua`);
  const headers = [
    `Content-Type: ${ct}`,
    `Accept: ${ct}`,
    ...(opts.token ? [`Authorization: Bearer ${opts.token}`] : []),
  ];
  writeFileSync(
    path,
    [
      'wrk.method = "POST"',
      `local f = io.open("${writeBody(work, opts.format, opts.batch)}", "rb"); wrk.body = f:read("*a"); f:close()`,
      // Called once by wrk.init (Host is set by then): the static request, in one order.
      'function wrk.format(method, path, headers, body)',
      '  body = body or wrk.body',
      '  return table.concat({',
      '    (method or wrk.method) .. " " .. (path or wrk.path) .. " HTTP/1.1",',
      '    "Host: " .. wrk.headers["Host"],',
      ...headers.map((h) => `    "${h}",`),
      '    "Content-Length: " .. string.len(body),',
      '    "",',
      '    body,',
      '  }, "\\r\\n")',
      'end',
    ].join('\n'),
  );
  return path;
}

/** A Quoll server started by a benchmark. */
export interface BenchServer {
  proc: ChildProcess;
  home: string;
  url: string;
  token: string;
  client: Client;
  /** Its inline runs' verdicts and trips, in the order it logged them (see {@link awaitInlineVerdict}). */
  verdicts: InlineVerdictSeen[];
}

/**
 * One `inline runs on|off|tripped for deployment …` line of a server's log: whether its
 * deployment's small runs run on the HTTP thread (`on`), go to the model workers (`off`), or went
 * there for good after slow runs (`tripped`), and why. On one core the two paths differ by about
 * 1.5× in CPU a request at JSON batch 1, so a reading of a server is only known with its verdict.
 */
export interface InlineVerdictSeen {
  state: 'on' | 'off' | 'tripped';
  deployment: string;
  reason: string;
  /** ms since the server was started. */
  atMs: number;
}

const VERDICT_LINE = /inline runs (on|off|tripped) for deployment (\S+): (.*)$/;

/** Collects the inline verdicts of `proc`'s log lines (pino JSON at `info`) into `into`. */
function collectVerdicts(proc: ChildProcess, into: InlineVerdictSeen[]): void {
  const started = performance.now();
  let partial = '';
  proc.stdout?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('inline runs ')) continue;
      let msg = line;
      try {
        const parsed = (JSON.parse(line) as { msg?: unknown }).msg;
        if (typeof parsed === 'string') msg = parsed;
      } catch {
        // Not JSON (a pretty-printed log): the line itself.
      }
      const m = VERDICT_LINE.exec(msg);
      if (m)
        into.push({
          state: m[1] as InlineVerdictSeen['state'],
          deployment: m[2]!,
          reason: m[3]!,
          atMs: Math.round(performance.now() - started),
        });
    }
  });
}

/** How long {@link awaitInlineVerdict} waits by default (s): past the probe's retries (2, 10, 30 s) and their loads. */
export const VERDICT_TIMEOUT_S = Number(process.env.BENCH_VERDICT_TIMEOUT_S ?? 60);

/**
 * Waits (up to `timeoutS`) for `server`'s first inline verdict (`on` or `off`) after
 * `since` verdicts, prints it with its reason under `label` (or "no verdict"), and returns its
 * state (`none` when none came). Call it after deploying and before any warm-up: until the probe
 * answers, runs go to the workers, and a verdict that lands in the middle of a measure splits it.
 */
export async function awaitInlineVerdict(
  server: BenchServer,
  label: string,
  opts: { since?: number; timeoutS?: number } = {},
): Promise<'on' | 'off' | 'none'> {
  const since = opts.since ?? 0;
  const timeoutS = opts.timeoutS ?? VERDICT_TIMEOUT_S;
  const deadline = performance.now() + timeoutS * 1000;
  const found = (): InlineVerdictSeen | undefined =>
    server.verdicts.slice(since).find((v) => v.state !== 'tripped');
  while (found() === undefined && performance.now() < deadline && server.proc.exitCode === null)
    await new Promise((resolve) => setTimeout(resolve, 20));
  const verdict = found();
  if (verdict === undefined) {
    console.log(`[${label}] inline verdict: no verdict within ${timeoutS} s`);
    return 'none';
  }
  console.log(`[${label}] inline verdict: ${verdict.state} at ${verdict.atMs} ms: ${verdict.reason}`);
  return verdict.state as 'on' | 'off';
}

/** A server's verdicts in short: `on`, `off`, `on, tripped`, or `none`. */
export function verdictSummary(server: BenchServer): string {
  return server.verdicts.length === 0 ? 'none' : server.verdicts.map((v) => v.state).join(', ');
}

/**
 * Prints each server's verdicts (`label: on`, …) and, when the servers compared ended with
 * different ones (a trip counts), says so loudly on stdout and stderr: their figures then compare
 * the inline path with the workers' (about 1.5× the CPU a request on one core), not the builds
 * or flags. Returns whether they all agree.
 */
export function checkVerdicts(servers: readonly { label: string; server: BenchServer }[]): boolean {
  const summaries = servers.map(({ label, server }) => `${label}: ${verdictSummary(server)}`);
  const agree = new Set(servers.map(({ server }) => verdictSummary(server))).size <= 1;
  console.log(`inline verdicts: ${summaries.join('; ')}${agree ? '' : '  <-- DIFFER'}`);
  if (!agree) {
    const banner = `!!! INLINE VERDICTS DIFFER (${summaries.join('; ')}): these servers ran different paths (inline vs the model workers); their ratios measure that, not what is compared !!!`;
    console.log(banner);
    console.error(banner);
  }
  return agree;
}

// BENCH_QUOLL_CLI: another build's dist/cli/main.js (e.g. a copy of main's), to run a bench
// against it with the same bench code.
const CLI =
  process.env.BENCH_QUOLL_CLI ??
  fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));

/**
 * Starts the built Quoll server (home `<work>/<tag>`, any free port, log level info, which with
 * request logging off adds only its start and its deployments' inline verdicts, collected in
 * `verdicts`) pinned to `cores`, with `extra` flags, `nodeArgs` for node itself (e.g.
 * `--cpu-prof`) and `env` added to its environment.
 */
export async function startQuoll(
  work: string,
  tag: string,
  extra: string[] = [],
  opts: { cores?: string; nodeArgs?: string[]; env?: NodeJS.ProcessEnv; cli?: string } = {},
): Promise<BenchServer> {
  const home = join(work, tag);
  const proc = spawnPinned(
    opts.cores ?? '0',
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      opts.cli ?? CLI,
      'server',
      '--home',
      home,
      '--port',
      '0',
      '--log-level',
      'info',
      ...extra,
    ],
    opts.env,
  );
  const verdicts: InlineVerdictSeen[] = [];
  collectVerdicts(proc, verdicts);
  const url = (await waitFor(proc, /listening on (http:\S+)/))[1] ?? '';
  const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
  return { proc, home, url, token, client: new Client({ url, token }), verdicts };
}

/** Uploads `modelPath` as `model` (input column `tensor`) and deploys a one-step pipeline `pipeline`. */
export async function deployModel(
  client: Client,
  model: string,
  modelPath: string,
  pipeline: string,
): Promise<Pipeline> {
  const uploaded = await (await client.uploadModel(model, modelPath)).configure({ tensorFields: ['tensor'] });
  const p = await client.buildPipeline(pipeline);
  await p.addModelStep(uploaded);
  await p.deploy();
  return p;
}

/** Sends SIGTERM to every process and waits until all have exited. */
export async function stopAll(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve(null);
          p.once('exit', resolve);
          p.kill('SIGTERM');
        }),
    ),
  );
}

/** The fields of `/proc/<pid>/stat` after the parenthesised command name (Linux only). */
function procStat(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) used so far by a process, or NaN where /proc is missing (or it ended). */
export function cpuSeconds(proc: ChildProcess | number): number {
  try {
    // utime and stime are fields 14 and 15 of the whole line.
    const fields = procStat(typeof proc === 'number' ? proc : (proc.pid ?? -1));
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Minor page faults of a process so far (field 10 of `/proc/<pid>/stat`). */
export function minorFaults(pid: number): number {
  return Number(procStat(pid)[7]);
}

/**
 * CPU nanoseconds used so far by every live thread of a process (the first field of each
 * `/proc/<pid>/task/<tid>/schedstat`): finer than {@link cpuSeconds}' clock ticks.
 */
export function threadCpuNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return sum;
}

/**
 * CPU nanoseconds used so far by a process's main thread alone (`/proc/<pid>/task/<pid>/schedstat`:
 * for a Quoll server the HTTP thread, the one whose tid is the pid), or NaN once it has ended.
 */
export function mainThreadCpuNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

/** A process scraping a server's `/metrics` like Prometheus. */
export interface Scraper {
  /** Stops it; resolves with its summary line (`{"scrapes":n,"bytes":b}`). */
  stop(): Promise<string>;
}

/**
 * Starts a separate process that GETs `<url>/metrics` with `token` every `seconds` (its own
 * process, like Prometheus), pinned to `core` when given.
 */
export function startScraper(url: string, token: string, seconds: number, core?: string): Scraper {
  const script = `let n = 0, bytes = 0; setInterval(async () => { const r = await fetch(process.argv[1] + '/metrics', { headers: { authorization: 'Bearer ' + process.argv[2] } }); bytes = (await r.text()).length; n++; }, Number(process.argv[3])); process.on('SIGTERM', () => { console.log(JSON.stringify({ scrapes: n, bytes })); process.exit(0); });`;
  const args = ['-e', script, url, token, String(seconds * 1000)];
  const child =
    core === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn('taskset', ['-c', core, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      return out.trim();
    },
  };
}

/** The 1-minute load average now (what else the shared machine was doing), or NaN. */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

/** A process's resident memory (MiB) and thread count from /proc/<pid>/status. */
export function processFootprint(pid: number): { rssMiB: number; threads: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: field('VmRSS') / 1024, threads: field('Threads') };
}

/** Wall-clock milliseconds (comparable across processes). */
export const now = (): number => performance.timeOrigin + performance.now();

/**
 * Uploads an orchestration zip of `files` and polls `status()` every 5 ms until `ready`;
 * returns the milliseconds taken and the orchestration. A unique comment in each top-level
 * source file (`#` for Python, `//` for JavaScript and TypeScript) makes every zip, and its SHA,
 * distinct, as real uploads are; other files (package.json, requirements.txt, packages shipped
 * in subfolders, whose content is part of the dependency set) are left as they are.
 */
export async function uploadToReady(
  client: Client,
  files: Record<string, string>,
  i: number,
): Promise<[number, Orchestration]> {
  const entries = Object.entries(files).map(([path, content]) => {
    const topLevel = !path.includes('/');
    const marker = !topLevel ? null : path.endsWith('.py') ? '#' : /\.[cm]?[jt]s$/.test(path) ? '//' : null;
    return { path, content: marker === null ? content : `${content}\n${marker} ${i} ${Math.random()}` };
  });
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

/** A fresh PostgreSQL database of a bench script's own, a client on it and its backend's pid. */
export interface ScratchDatabase {
  client: pg.Client;
  /** The PostgreSQL backend serving `client` (its CPU is in /proc/<pid>). */
  backendPid: number;
  /** Closes the client and drops the database. */
  drop(): Promise<void>;
}

/**
 * Creates database `name` (dropping a leftover of that name first) on the server of
 * `QUOLL_TEST_PG_URL` (default: the local `postgres` database) and connects one client to it.
 */
export async function scratchPgDatabase(name: string): Promise<ScratchDatabase> {
  const adminUrl = process.env.QUOLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const root = new pg.Client({ connectionString: adminUrl });
  await root.connect();
  await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await root.query(`CREATE DATABASE ${name}`);
  const client = new pg.Client({ connectionString: url.toString() });
  const drop = async (): Promise<void> => {
    await client.end().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await root.end();
  };
  try {
    await client.connect();
    const backendPid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p ?? 0;
    return { client, backendPid, drop };
  } catch (error) {
    await drop();
    throw error;
  }
}
