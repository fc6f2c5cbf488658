// Where the time of a batch-1 JSON request goes: the Quoll server runs under `node --cpu-prof`
// (one profile per thread: the HTTP thread and each model worker), pinned to core 0, while wrk
// (core 1) sends batch-1 JSON requests; then the profiles are summed up by self time per
// function and per area. Usage: tsx bench/profile.ts [connections=1] [seconds=8]
// Env: BENCH_QUOLL_ARGS (extra server flags), PROFILE_KEEP=1 keeps the .cpuprofile files,
// PROFILE_FORMAT (json | arrow | oip — the Open Inference Protocol's JSON tensors on /v2, default json), PROFILE_BATCH (rows per request, default 1) and
// PROFILE_WARMUP_S (warm-up seconds, default 2; V8 still compiles after 2 s, so 10+ for a steady state).
// PROFILE_TOP: how many functions of each thread to list by self time (default 20).
// The server's inline verdict is awaited before the warm-up and printed with the figures.
// The server inherits the environment (e.g. QUOLL_BENCH_INPUT_CHECKS=off).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  printTable,
  startQuoll,
  stopAll,
  verdictSummary,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the system's monotonic clock (as process.hrtime), like the deltas. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [connections = 1, seconds = 8] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-profile-'));
const profiles = join(work, 'profiles');
const modelPath = writeBenchModel(work);
const extra = (process.env.BENCH_QUOLL_ARGS ?? '').split(' ').filter(Boolean);
const server = await startQuoll(work, 'home', extra, {
  nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profiles],
});
const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
// Inline (on the HTTP thread) or in the model workers profile different paths: the verdict is
// awaited before the warm-up and printed with the figures.
await awaitInlineVerdict(server, 'server');
const format: BodyFormat =
  process.env.PROFILE_FORMAT === 'arrow' || process.env.PROFILE_FORMAT === 'oip'
    ? process.env.PROFILE_FORMAT
    : 'json';
const url = format === 'oip' ? `${server.url}/v2/models/benchpipe/infer` : pipeline.url();
const batch = Number(process.env.PROFILE_BATCH ?? 1);
const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
wrk({ url, luaScript: lua, connections, seconds: Number(process.env.PROFILE_WARMUP_S ?? 2) });
const load = loadAverage();
/** CPU seconds (user + system) of each thread of the server, by thread id, with its name. */
function threadCpu(pid: number): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return out;
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, seconds: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

// Only samples inside the measured run count (not start-up, deploy or warm-up).
const cpuBefore = threadCpu(server.proc.pid!);
const from = Number(process.hrtime.bigint() / 1000n);
const run = wrk({ url, luaScript: lua, connections, seconds });
const to = Number(process.hrtime.bigint() / 1000n);
const cpuAfter = threadCpu(server.proc.pid!);
await stopAll([server.proc]);
console.log(`server exit: ${String(server.proc.exitCode)} ${String(server.proc.signalCode)}`);

/** Which part of the system a frame belongs to. */
function area(frame: ProfileNode['callFrame']): string {
  const { functionName: fn, url } = frame;
  if (fn === '(idle)') return 'idle (waiting)';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'native, not attributed (program)';
  if (/onnxruntime/.test(url) || fn === 'run') return 'onnxruntime';
  if (/inference-worker|worker-protocol/.test(url)) return 'model worker (Quoll)';
  if (/node:internal\/worker|MessagePort|postMessage|receiveMessage/.test(url + fn)) return 'thread hand-off';
  if (/worker-handle|pool-worker|deployment\.js/.test(url)) return 'hand-off + batching (Quoll)';
  if (/fastify|avvio|find-my-way|light-my-request|secure-json|fast-json|pino|@fastify/.test(url))
    return 'fastify + pino';
  if (/apache-arrow/.test(url)) return 'apache-arrow';
  if (/inference-result|input-binding|tensor-data|inference-input|decode|codec/.test(url))
    return 'decode/encode (Quoll)';
  if (/\/logs\/|log-store|inference-log/.test(url)) return 'inference log';
  if (/\/auth\//.test(url)) return 'auth';
  if (/\/metrics\//.test(url)) return 'metrics';
  if (/quoll\/dist/.test(url)) return 'other Quoll';
  if (/^node:/.test(url)) return `node: ${url.replace(/^node:(internal\/)?/, '').split('/')[0]}`;
  if (url === '') return `native: ${fn || '(anonymous)'}`;
  return 'other';
}

// A sampling profile counts wall time, and a thread that wakes another on the same core is
// often descheduled inside that call: its CPU time from /proc says what each thread really used.
const perThread = [...cpuAfter]
  .map(([tid, t]): [string, number] => [`${t.name} (${tid})`, t.seconds - (cpuBefore.get(tid)?.seconds ?? 0)])
  .filter(([, used]) => used > 0);
const files = readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile'));
const requests = run.reqPerSec * seconds;
console.log(
  `${format} batch ${batch}, ${connections} connection(s), ${seconds} s: ${Math.round(run.reqPerSec)} req/s, p99 ${run.p99Ms} ms; load ${load}; ${files.length} profiles; inline verdicts: ${verdictSummary(server)}`,
);
printTable(
  ['thread', 'CPU s', 'CPU µs / request'],
  perThread.map(([name, used]) => [name, used, (used * 1e6) / requests]),
);
for (const file of files) {
  const profile = JSON.parse(readFileSync(join(profiles, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= from && at <= to) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const a = area(frame);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${frame.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - (areas.get('idle (waiting)') ?? 0);
  if (total === 0) continue;
  console.log(
    `\n${file}: ${(total / 1e6).toFixed(1)} s sampled in the run, ${(busy / 1e6).toFixed(2)} s busy`,
  );
  const rows = (m: Map<string, number>, n: number): (string | number)[][] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => [k.slice(0, 90), (100 * us) / total, us / requests]);
  printTable(['area', '% of thread', 'µs / request'], rows(areas, 14));
  printTable(
    ['function (self time)', '% of thread', 'µs / request'],
    rows(fns, Number(process.env.PROFILE_TOP ?? 20)),
  );
}
if (process.env.PROFILE_KEEP === '1') console.log(`profiles kept in ${profiles}`);
else rmSync(work, { recursive: true, force: true });
