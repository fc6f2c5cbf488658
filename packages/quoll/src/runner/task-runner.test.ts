import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { buildSync } from 'esbuild';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskRunLogLineDto } from '@quoll/client/wire';
import type { Clock } from '../clock/index.js';
import { ManualClock, systemClock } from '../clock/index.js';
import { FINAL_LINE_PREFIX, TaskRunner, UNBOUNDED_RUN_TOKEN_TTL_MS } from './task-runner.js';
import { NO_LIMITS } from './resource-limits.js';
import { restrictHomeForTaskUser } from './task-user.js';
import type { FileRunLogStore } from './file-run-log-store.js';
import type { TaskRunnerOptions } from './task-runner.js';
import type { PackagedOrchestration, RunRequest } from './run-request.js';

let root: string;
let runners: TaskRunner[];
let tokens: { issued: string[]; revoked: string[]; ttls: number[]; renewals: number[] };

/** Writes a one-file orchestration package and returns it. */
function pkg(name: string, source: string, extra: Record<string, string> = {}): PackagedOrchestration {
  const dir = join(root, 'pkgs', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.mjs'), source);
  for (const [file, text] of Object.entries(extra)) writeFileSync(join(dir, file), text);
  return { dir, entry: 'main.mjs' };
}

function runner(over: Partial<TaskRunnerOptions> = {}): TaskRunner {
  const r = new TaskRunner({
    logsDir: join(root, 'logs'),
    runsDir: join(root, 'runs'),
    serverUrl: 'http://127.0.0.1:9',
    issueRunToken: (workspaceId, runId, ttlMs) => {
      const token = `tok-${workspaceId}-${runId}`;
      tokens.issued.push(token);
      tokens.ttls.push(ttlMs);
      return Promise.resolve({
        token,
        revoke: () => Promise.resolve(void tokens.revoked.push(token)),
        renew: (ttl: number) => Promise.resolve(void tokens.renewals.push(ttl)),
      });
    },
    ...over,
  });
  runners.push(r);
  return r;
}

let seq = 0;
function req(p: PackagedOrchestration, over: Partial<RunRequest> = {}): RunRequest {
  seq++;
  return {
    runId: `run-${seq}`,
    taskId: `task-${seq}`,
    workspaceId: 5,
    jsonArgs: {},
    timeoutSeconds: null,
    package: p,
    ...over,
  };
}

/** Collects a run's followed lines until `until` returns true (or the log ends). */
async function followUntil(
  r: TaskRunner,
  runId: string,
  until: (l: TaskRunLogLineDto) => boolean,
): Promise<TaskRunLogLineDto[]> {
  const got: TaskRunLogLineDto[] = [];
  for await (const l of r.followRunLog(runId)) {
    got.push(l);
    if (until(l)) break;
  }
  return got;
}

/** Whether a process exists and is not a zombie (a killed process whose parent has not reaped it yet). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." where S is the state; Z = zombie (already dead).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** Waits (polling) until a process is gone; fails the test if it never goes. */
async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
  expect(alive(pid)).toBe(false);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-runner-'));
  runners = [];
  tokens = { issued: [], revoked: [], ttls: [], renewals: [] };
});
afterEach(async () => {
  for (const r of runners) await r.stop();
  for (const r of runners) expect(r.activeCount + r.queuedCount).toBe(0);
  rmSync(root, { recursive: true, force: true });
});

const NANO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

describe('TaskRunner', () => {
  it('runs a script to success, captures stdout with ns timestamps and ends with the final line', async () => {
    const r = runner();
    const h = r.start(req(pkg('ok', "console.log('hello'); console.log('world');")));
    const outcome = await h.done;
    expect(outcome).toMatchObject({ status: 'success', exitCode: 0, reason: 'exit 0' });
    const log = await r.readRunLog(h.runId);
    expect(log.map((l) => [l.stream, l.line])).toEqual([
      ['stdout', 'hello'],
      ['stdout', 'world'],
      ['stdout', 'quoll: run finished: success (exit 0)'],
    ]);
    for (const l of log) expect(l.time).toMatch(NANO_TIME);
    expect(log.map((l) => l.time)).toEqual([...log.map((l) => l.time)].sort());
  });

  it('reports a non-zero exit as failure with stderr captured', async () => {
    const r = runner();
    const h = r.start(req(pkg('fail', "console.error('boom: it broke'); process.exit(3);")));
    expect(await h.done).toMatchObject({ status: 'failure', exitCode: 3, reason: 'exit 3' });
    const log = await r.readRunLog(h.runId);
    expect(log).toContainEqual(expect.objectContaining({ stream: 'stderr', line: 'boom: it broke' }));
    expect(log.at(-1)?.line).toBe('quoll: run finished: failure (exit 3)');
  });

  it('reports an uncaught exception as failure with the stack on stderr', async () => {
    const r = runner();
    const h = r.start(req(pkg('throw', "throw new Error('kaboom');")));
    expect(await h.done).toMatchObject({ status: 'failure', exitCode: 1 });
    const stderr = (await r.readRunLog(h.runId)).filter((l) => l.stream === 'stderr').map((l) => l.line);
    expect(stderr.join('\n')).toContain('Error: kaboom');
  });

  it('passes the task environment and runs in a fresh copy of the package', async () => {
    const r = runner({ env: { PATH: process.env.PATH, QUOLL_MASTER_KEY: 'server-secret', HOME: '/home/x' } });
    const p = pkg(
      'env',
      `import { readFileSync, writeFileSync } from 'node:fs';
       writeFileSync('scratch.txt', 'x');
       const pick = ['QUOLL_URL','QUOLL_TOKEN','QUOLL_TASK_ID','QUOLL_TASK_RUN_ID','QUOLL_TASK_ARGS','QUOLL_MASTER_KEY','HOME'];
       console.log(JSON.stringify({ env: Object.fromEntries(pick.map((k) => [k, process.env[k] ?? null])), data: readFileSync('data/input.txt', 'utf8'), cwd: process.cwd() }));`,
      {},
    );
    mkdirSync(join(p.dir, 'data'));
    writeFileSync(join(p.dir, 'data', 'input.txt'), 'payload');
    const h = r.start(
      req(p, {
        runId: 'run-env',
        taskId: 'task-env',
        workspaceId: 9,
        jsonArgs: { pipeline_name: 'p1', n: 2 },
      }),
    );
    expect((await h.done).status).toBe('success');
    const first = (await r.readRunLog(h.runId))[0]!;
    const seen = JSON.parse(first.line) as { env: Record<string, string | null>; data: string; cwd: string };
    expect(seen.env).toEqual({
      QUOLL_URL: 'http://127.0.0.1:9',
      QUOLL_TOKEN: 'tok-9-run-env',
      QUOLL_TASK_ID: 'task-env',
      QUOLL_TASK_RUN_ID: 'run-env',
      QUOLL_TASK_ARGS: '{"pipeline_name":"p1","n":2}',
      QUOLL_MASTER_KEY: null,
      HOME: '/home/x',
    });
    expect(seen.data).toBe('payload');
    expect(seen.cwd).toBe(join(root, 'runs', 'run-env'));
    // The run wrote into its copy, not into the package; the copy is removed afterwards.
    expect(existsSync(join(p.dir, 'scratch.txt'))).toBe(false);
    expect(existsSync(join(root, 'runs', 'run-env'))).toBe(false);
    expect(tokens.revoked).toEqual(['tok-9-run-env']);
  });

  it('links node_modules into the run directory instead of copying it', async () => {
    const r = runner();
    const modules = join(root, 'deps', 'node_modules');
    mkdirSync(join(modules, 'tiny-dep'), { recursive: true });
    writeFileSync(
      join(modules, 'tiny-dep', 'package.json'),
      '{"name":"tiny-dep","type":"module","main":"index.js"}',
    );
    writeFileSync(join(modules, 'tiny-dep', 'index.js'), 'export const answer = 42;');
    const p = {
      ...pkg(
        'deps',
        "import { lstatSync } from 'node:fs'; import { answer } from 'tiny-dep'; console.log(answer, lstatSync('node_modules').isSymbolicLink());",
      ),
      nodeModulesDir: modules,
    };
    const h = r.start(req(p));
    expect((await h.done).status).toBe('success');
    expect((await r.readRunLog(h.runId))[0]?.line).toBe('42 true');
  });

  it('applies redact to every captured line before it is stored', async () => {
    const r = runner({ redact: (line) => line.replaceAll('hunter2', '*****') });
    const h = r.start(
      req(pkg('secret', "console.log('password=hunter2'); console.error('again hunter2!');")),
    );
    await h.done;
    const text = readFileSync((r.logs as FileRunLogStore).pathFor(h.runId), 'utf8');
    expect(text).not.toContain('hunter2');
    expect((await r.readRunLog(h.runId)).map((l) => l.line)).toEqual([
      'password=*****',
      'again *****!',
      'quoll: run finished: success (exit 0)',
    ]);
  });

  it('stores a last line without newline when the process exits', async () => {
    const r = runner();
    const h = r.start(req(pkg('partial', "process.stdout.write('first\\nno newline at end');")));
    await h.done;
    expect((await r.readRunLog(h.runId)).map((l) => l.line)).toEqual([
      'first',
      'no newline at end',
      'quoll: run finished: success (exit 0)',
    ]);
  });

  it('stops a run past its timeout with SIGTERM and reports timed_out', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const r = runner({ clock });
    const h = r.start(
      req(pkg('slow', "console.log('working'); setInterval(() => {}, 1000);"), { timeoutSeconds: 900 }),
    );
    await followUntil(r, h.runId, (l) => l.line === 'working');
    await clock.advance(900_000);
    expect(await h.done).toMatchObject({ status: 'timed_out', reason: 'killed after 900 s' });
    expect((await r.readRunLog(h.runId, { limit: 1 }))[0]?.line).toBe(
      'quoll: run finished: timed_out (killed after 900 s)',
    );
  });

  it('kill() sends SIGTERM, then SIGKILL after the grace period, and reports killed', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const r = runner({ clock, killGraceMs: 5_000 });
    const h = r.start(
      req(
        pkg(
          'stubborn',
          "process.on('SIGTERM', () => console.log('ignoring TERM')); console.log('ready'); setInterval(() => {}, 1000);",
        ),
      ),
    );
    await followUntil(r, h.runId, (l) => l.line === 'ready');
    expect(r.kill(h.runId)).toBe(true);
    await followUntil(r, h.runId, (l) => l.line === 'ignoring TERM');
    let ended = false;
    void h.done.then(() => (ended = true));
    await clock.advance(4_999);
    expect(ended).toBe(false);
    await clock.advance(1);
    expect(await h.done).toMatchObject({ status: 'killed' });
    expect((await r.readRunLog(h.runId)).at(-1)?.line).toBe(
      'quoll: run finished: killed (the task was killed)',
    );
  });

  it('kills the whole process group: a grandchild dies with the run', async () => {
    const r = runner();
    const h = r.start(
      req(
        pkg(
          'family',
          `import { spawn } from 'node:child_process';
           const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
           console.log('grandchild ' + g.pid);
           setInterval(() => {}, 1000);`,
        ),
      ),
    );
    const lines = await followUntil(r, h.runId, (l) => l.line.startsWith('grandchild '));
    const grandchild = Number(lines.at(-1)!.line.split(' ')[1]);
    expect(alive(grandchild)).toBe(true);
    r.kill(h.runId);
    expect((await h.done).status).toBe('killed');
    await waitGone(grandchild);
  });

  it('reaps what a run left behind when its entry process exits', async () => {
    const r = runner();
    const h = r.start(
      req(
        pkg(
          'orphan',
          `import { spawn } from 'node:child_process';
           const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
           g.unref();
           console.log('grandchild ' + g.pid);`,
        ),
      ),
    );
    expect((await h.done).status).toBe('success');
    const line = (await r.readRunLog(h.runId)).find((l) => l.line.startsWith('grandchild '))!;
    await waitGone(Number(line.line.split(' ')[1]));
  });

  it('runs at most `concurrency` runs at once and starts queued runs in FIFO order', async () => {
    const spawnedOrder: string[] = [];
    const r = runner({ concurrency: 2, onSpawn: (runId) => spawnedOrder.push(runId) });
    const gate = join(root, 'gate');
    const waiter = pkg(
      'gate',
      `import { existsSync } from 'node:fs';
       console.log('in');
       const t = setInterval(() => { if (existsSync(${JSON.stringify(gate)})) { clearInterval(t); } }, 10);`,
    );
    const handles = [1, 2, 3, 4].map((i) => r.start(req(waiter, { runId: `q-${i}` })));
    await Promise.all([handles[0]!.spawned, handles[1]!.spawned]);
    expect(r.activeCount).toBe(2);
    expect(r.queuedCount).toBe(2);
    // Two runs prepare their directories concurrently, so their spawn order is not fixed.
    expect([...spawnedOrder].sort()).toEqual(['q-1', 'q-2']);
    writeFileSync(gate, '');
    const outcomes = await Promise.all(handles.map((h) => h.done));
    expect(outcomes.map((o) => o.status)).toEqual(['success', 'success', 'success', 'success']);
    expect(spawnedOrder.slice(2).sort()).toEqual(['q-3', 'q-4']);

    // With one slot, runs are strictly one after another: spawn order is queue order.
    const serialOrder: string[] = [];
    const serial = runner({ concurrency: 1, onSpawn: (runId) => serialOrder.push(runId) });
    const quick = pkg('quick', `console.log('done');`);
    const serialHandles = [1, 2, 3, 4].map((i) => serial.start(req(quick, { runId: `s-${i}` })));
    await Promise.all(serialHandles.map((h) => h.done));
    expect(serialOrder).toEqual(['s-1', 's-2', 's-3', 's-4']);
  });

  it('keeps a slot from a workspace at its cap: another workspace runs while its runs wait', async () => {
    const r = runner({ concurrency: 4, workspaceConcurrency: 3 });
    const gate = join(root, 'gate-cap');
    // Continuous-like runs: they hold their slot until the gate opens.
    const holder = pkg(
      'holder',
      `import { existsSync } from 'node:fs';
       const t = setInterval(() => { if (existsSync(${JSON.stringify(gate)})) clearInterval(t); }, 10);`,
    );
    const hogs = [1, 2, 3, 4].map((i) => r.start(req(holder, { runId: `hog-${i}`, workspaceId: 1 })));
    await Promise.all(hogs.slice(0, 3).map((h) => h.spawned));
    const other = r.start(req(pkg('other', "console.log('b ran');"), { runId: 'b-1', workspaceId: 2 }));
    const outcome = await Promise.race([
      other.done,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 30_000)),
    ]);
    expect(outcome?.status).toBe('success');
    // Workspace 1's fourth run still waits: three of its runs hold three slots.
    expect(r.queuedCount).toBe(1);
    expect(r.activeCount).toBe(3);
    writeFileSync(gate, '');
    expect((await Promise.all(hogs.map((h) => h.done))).map((o) => o.status)).toEqual([
      'success',
      'success',
      'success',
      'success',
    ]);
    expect(r.workspaceConcurrencyLimit).toBe(3);
  });

  it('gives free slots to waiting workspaces in turn, each workspace FIFO', async () => {
    const order: string[] = [];
    const r = runner({ concurrency: 1, onSpawn: (runId) => order.push(runId) });
    const quick = pkg('quick-rr', "console.log('done');");
    const handles = [
      r.start(req(quick, { runId: 'a-1', workspaceId: 1 })),
      r.start(req(quick, { runId: 'a-2', workspaceId: 1 })),
      r.start(req(quick, { runId: 'a-3', workspaceId: 1 })),
      r.start(req(quick, { runId: 'b-1', workspaceId: 2 })),
      r.start(req(quick, { runId: 'b-2', workspaceId: 2 })),
    ];
    await Promise.all(handles.map((h) => h.done));
    expect(order).toEqual(['a-1', 'b-1', 'a-2', 'b-2', 'a-3']);
  });

  it('kills a queued run without starting it', async () => {
    const r = runner({ concurrency: 1 });
    const slow = r.start(req(pkg('block', "console.log('x'); setInterval(() => {}, 1000);")));
    const queued = r.start(req(pkg('never', "console.log('should not run');")));
    await slow.spawned;
    expect(r.kill(queued.runId)).toBe(true);
    expect(await queued.spawned).toBeNull();
    expect(await queued.done).toMatchObject({ status: 'killed', startedAt: null });
    expect((await r.readRunLog(queued.runId)).map((l) => l.line)).toEqual([
      'quoll: run finished: killed (the task was killed)',
    ]);
    r.kill(slow.runId);
    await slow.done;
  });

  it('fails a run whose package cannot be prepared, with the reason in the log', async () => {
    const r = runner();
    const h = r.start(req({ dir: join(root, 'missing'), entry: 'main.mjs' }));
    const o = await h.done;
    expect(o.status).toBe('failure');
    expect(o.reason).toMatch(/^could not start: /);
    expect((await r.readRunLog(h.runId)).at(-1)?.line).toMatch(
      /^quoll: run finished: failure \(could not start: /,
    );
  });

  it('follow yields existing then live lines and ends after the final line', async () => {
    const r = runner();
    const go = join(root, 'go');
    const h = r.start(
      req(
        pkg(
          'live',
          `import { existsSync } from 'node:fs';
           console.log('a');
           const t = setInterval(() => { if (existsSync(${JSON.stringify(go)})) { clearInterval(t); console.log('b'); } }, 5);`,
        ),
      ),
    );
    const seen: string[] = [];
    for await (const l of r.followRunLog(h.runId)) {
      seen.push(l.line);
      // 'b' is only printed after the follower has seen 'a': the lines arrive live.
      if (l.line === 'a') writeFileSync(go, '');
    }
    expect(seen).toEqual(['a', 'b', 'quoll: run finished: success (exit 0)']);
    // A follower that starts after the end gets everything and ends too.
    const again: string[] = [];
    for await (const l of r.followRunLog(h.runId)) again.push(l.line);
    expect(again).toEqual(seen);
  });

  it('follow ends when its signal aborts', async () => {
    const r = runner();
    const h = r.start(req(pkg('forever', "console.log('tick'); setInterval(() => {}, 1000);")));
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const l of r.followRunLog(h.runId, ac.signal)) {
      seen.push(l.line);
      ac.abort();
    }
    expect(seen).toEqual(['tick']);
    r.kill(h.runId);
    await h.done;
  });

  it('reads the tail of a long log', async () => {
    const r = runner();
    const h = r.start(
      req(pkg('many', "for (let i = 0; i < 5000; i++) console.log('line ' + i + ' ' + 'x'.repeat(40));")),
    );
    await h.done;
    const tail = await r.readRunLog(h.runId, { limit: 3 });
    expect(tail.map((l) => l.line.split(' ').slice(0, 2).join(' '))).toEqual([
      'line 4998',
      'line 4999',
      'quoll: run',
    ]);
    expect(await r.readRunLog(h.runId)).toHaveLength(5001);
    expect(await r.readRunLog('never-ran')).toEqual([]);
  });

  it('stop() ends running and queued runs as failure and leaves no process behind', async () => {
    const r = runner({ concurrency: 1 });
    const a = r.start(req(pkg('s1', "console.log('up'); setInterval(() => {}, 1000);")));
    const b = r.start(req(pkg('s2', "console.log('up');")));
    const pid = (await a.spawned)!;
    await r.stop();
    const stopped = await a.done;
    expect(stopped.status).toBe('failure');
    expect(stopped.reason).toMatch(/^stopped: /);
    expect(await b.done).toMatchObject({ status: 'failure', startedAt: null });
    expect(r.activeCount + r.queuedCount).toBe(0);
    await waitGone(pid);
    const late = r.start(req(pkg('s3', "console.log('late');")));
    expect((await late.done).status).toBe('failure');
  });

  it('closeLostRun appends the lost-run final line', async () => {
    const r = runner();
    const clock: Clock = systemClock;
    expect(clock.now()).toBeGreaterThan(0);
    await r.closeLostRun('lost-1', null);
    expect((await r.readRunLog('lost-1')).map((l) => l.line)).toEqual([
      `${FINAL_LINE_PREFIX}failure (lost: the server stopped while the run was active)`,
    ]);
  });

  it('issues run tokens that expire after the timeout plus grace, and renews those of runs without one', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const r = runner({ clock, killGraceMs: 5_000 });
    const once = r.start(req(pkg('ttl', "console.log('x');"), { timeoutSeconds: 600 }));
    await once.done;
    // 600 s + 5 s grace + 2 s pipe cap + 60 s margin.
    expect(tokens.ttls).toEqual([667_000]);
    const endless = r.start(req(pkg('ttl2', "console.log('up'); setInterval(() => {}, 1000);")));
    await followUntil(r, endless.runId, (l) => l.line === 'up');
    expect(tokens.ttls[1]).toBe(UNBOUNDED_RUN_TOKEN_TTL_MS);
    expect(tokens.renewals).toEqual([]);
    await clock.advance(UNBOUNDED_RUN_TOKEN_TTL_MS / 4);
    await clock.advance(UNBOUNDED_RUN_TOKEN_TTL_MS / 4);
    expect(tokens.renewals).toEqual([UNBOUNDED_RUN_TOKEN_TTL_MS, UNBOUNDED_RUN_TOKEN_TTL_MS]);
    r.kill(endless.runId);
    expect((await endless.done).status).toBe('killed');
    expect(tokens.revoked).toHaveLength(2);
  });

  it('creates the runs directory and each run directory private (0700)', async () => {
    const r = runner({ keepRunDirs: true });
    const h = r.start(req(pkg('modes', "console.log('ok');")));
    await h.done;
    expect(statSync(join(root, 'runs')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'runs', h.runId)).mode & 0o777).toBe(0o700);
  });

  it('starts runs with source maps on, so a compiled TypeScript stack names the .ts line', async () => {
    const dir = join(root, 'pkgs', 'ts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'main.ts'),
      "function fail(n: number): never {\n  throw new Error('typed boom ' + n);\n}\nfail(1);\n",
    );
    buildSync({
      entryPoints: [join(dir, 'main.ts')],
      outfile: join(dir, 'main.mjs'),
      format: 'esm',
      sourcemap: 'inline',
      logLevel: 'silent',
    });
    for (const warmProcesses of [0, 2]) {
      const r = runner({ warmProcesses });
      await r.warm();
      const h = r.start(req({ dir, entry: 'main.mjs' }));
      expect(await h.done).toMatchObject({ status: 'failure', exitCode: 1 });
      const stderr = (await r.readRunLog(h.runId)).filter((l) => l.stream === 'stderr').map((l) => l.line);
      expect(stderr.join('\n')).toContain('typed boom 1');
      expect(stderr.join('\n')).toMatch(/main\.ts:2/);
    }
  });
});

describe('TaskRunner disk limit', () => {
  const MiB = 1024 ** 2;
  const limited = (diskBytes: number): TaskRunnerOptions['limits'] => ({ ...NO_LIMITS, diskBytes });

  it('a run that keeps writing past its disk limit ends failure with the reason, and its files are removed', async () => {
    const r = runner({ limits: limited(64 * MiB), diskCheckIntervalMs: 20, warmProcesses: 0 });
    // The task's own limit is tighter than the runner's, so it is the one that holds.
    const h = r.start(
      req(
        pkg(
          'filler',
          `import { writeFileSync } from 'node:fs';
           console.log('writing');
           for (let i = 0; ; i++) {
             writeFileSync('chunk-' + i, Buffer.alloc(64 * 1024, 1));
             await new Promise((r) => setTimeout(r, 2));
           }`,
        ),
        { limits: { diskBytes: MiB }, timeoutSeconds: 30 },
      ),
    );
    const outcome = await h.done;
    expect(outcome).toMatchObject({ status: 'failure', reason: 'disk limit exceeded (1048576 bytes)' });
    const log = await r.readRunLog(h.runId);
    expect(log[0]?.line).toBe('writing');
    expect(log.at(-1)?.line).toBe(`${FINAL_LINE_PREFIX}failure (disk limit exceeded (1048576 bytes))`);
    expect(existsSync(join(root, 'runs', h.runId))).toBe(false);
  });

  it('a run that wrote past its limit between two looks and exited 0 still ends failure, and nothing is left', async () => {
    const r = runner({ limits: limited(MiB), diskCheckIntervalMs: 3_600_000, warmProcesses: 0 });
    const h = r.start(
      req(
        pkg(
          'burst',
          `import { writeFileSync } from 'node:fs';
           for (let i = 0; i < 4; i++) writeFileSync('part-' + i, Buffer.alloc(512 * 1024, 1));
           console.log('done');`,
        ),
      ),
    );
    expect(await h.done).toMatchObject({ status: 'failure', reason: 'disk limit exceeded (1048576 bytes)' });
    expect(existsSync(join(root, 'runs', h.runId))).toBe(false);
  });

  it('a run under its disk limit is untouched', async () => {
    const r = runner({ limits: limited(4 * MiB), diskCheckIntervalMs: 10, warmProcesses: 0 });
    const h = r.start(
      req(
        pkg(
          'small',
          `import { writeFileSync } from 'node:fs';
           writeFileSync('out.bin', Buffer.alloc(256 * 1024, 1));
           await new Promise((r) => setTimeout(r, 200));
           console.log('fine');`,
        ),
      ),
    );
    expect(await h.done).toMatchObject({ status: 'success', exitCode: 0, reason: 'exit 0' });
  });

  it('a run with more files than the watcher counts is over its limit', async () => {
    const r = runner({
      limits: limited(1024 * MiB),
      diskCheckIntervalMs: 20,
      diskMaxEntries: 50,
      warmProcesses: 0,
    });
    const h = r.start(
      req(
        pkg(
          'many',
          `import { writeFileSync } from 'node:fs';
           for (let i = 0; ; i++) { writeFileSync('f' + i, ''); await new Promise((r) => setTimeout(r, 1)); }`,
        ),
        { timeoutSeconds: 30 },
      ),
    );
    expect(await h.done).toMatchObject({
      status: 'failure',
      reason: 'disk limit exceeded (more than 50 files)',
    });
  });

  it('leaves no watcher timer behind when a run ends, or when the runner stops', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const r = runner({ clock, limits: limited(64 * MiB), warmProcesses: 0 });
    const h = r.start(req(pkg('quick', "console.log('x');")));
    await h.done;
    expect(clock.pendingTimers).toBe(0);
    const long = r.start(
      req(pkg('long', "console.log('up'); setInterval(() => {}, 1000);"), { timeoutSeconds: 600 }),
    );
    await followUntil(r, long.runId, (l) => l.line === 'up');
    // The run's timeout and its disk watcher.
    expect(clock.pendingTimers).toBe(2);
    await clock.advance(600);
    await r.stop();
    expect((await long.done).status).toBe('failure');
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('TaskRunner warm processes', () => {
  it('a warm run gets its cwd, environment, argv, output and exit code', async () => {
    const r = runner({ env: { PATH: process.env.PATH, QUOLL_MASTER_KEY: 'server-secret', HOME: '/home/x' } });
    await r.warm();
    const warmPids = r.warmPids;
    expect(warmPids.length).toBe(2);
    const p = pkg(
      'warm-env',
      `import { readFileSync } from 'node:fs';
       const pick = ['QUOLL_URL','QUOLL_TOKEN','QUOLL_TASK_ID','QUOLL_TASK_RUN_ID','QUOLL_TASK_ARGS','QUOLL_MASTER_KEY','HOME'];
       console.log(JSON.stringify({ env: Object.fromEntries(pick.map((k) => [k, process.env[k] ?? null])), data: readFileSync('data.txt', 'utf8'), cwd: process.cwd(), argv: process.argv.slice(1), sourceMaps: process.execArgv }));
       console.error('to stderr');
       process.exitCode = 7;`,
      { 'data.txt': 'payload' },
    );
    const h = r.start(req(p, { runId: 'run-warm', taskId: 'task-warm', workspaceId: 4, jsonArgs: { a: 1 } }));
    const pid = await h.spawned;
    expect(warmPids).toContain(pid);
    expect(await h.done).toMatchObject({ status: 'failure', exitCode: 7, reason: 'exit 7' });
    const log = await r.readRunLog(h.runId);
    const seen = JSON.parse(log[0]!.line) as { cwd: string } & Record<string, unknown>;
    // The run directory is the one the waiting process was started in.
    expect(seen.cwd).toMatch(new RegExp(`^${join(root, 'runs')}/warm-[0-9a-f-]+$`));
    expect(seen).toEqual({
      env: {
        QUOLL_URL: 'http://127.0.0.1:9',
        QUOLL_TOKEN: 'tok-4-run-warm',
        QUOLL_TASK_ID: 'task-warm',
        QUOLL_TASK_RUN_ID: 'run-warm',
        QUOLL_TASK_ARGS: '{"a":1}',
        QUOLL_MASTER_KEY: null,
        HOME: '/home/x',
      },
      data: 'payload',
      cwd: seen.cwd,
      argv: [join(seen.cwd, 'main.mjs')],
      sourceMaps: ['--enable-source-maps'],
    });
    expect(log.slice(1).map((l) => [l.stream, l.line])).toEqual([
      ['stderr', 'to stderr'],
      ['stdout', 'quoll: run finished: failure (exit 7)'],
    ]);
  });

  it('a warm run is killed with its process group like a cold one', async () => {
    const r = runner();
    await r.warm();
    const warmPids = r.warmPids;
    const h = r.start(
      req(
        pkg(
          'warm-family',
          `import { spawn } from 'node:child_process';
           const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
           console.log('grandchild ' + g.pid);
           setInterval(() => {}, 1000);`,
        ),
      ),
    );
    expect(warmPids).toContain(await h.spawned);
    const lines = await followUntil(r, h.runId, (l) => l.line.startsWith('grandchild '));
    const grandchild = Number(lines.at(-1)!.line.split(' ')[1]);
    r.kill(h.runId);
    expect((await h.done).status).toBe('killed');
    await waitGone(grandchild);
  });

  it('does not use a warm process that died while idle', async () => {
    const r = runner();
    await r.warm();
    const [dead, other] = r.warmPids as [number, number];
    process.kill(dead, 'SIGKILL');
    await waitGone(dead);
    // The pool noticed the exit; the run gets the live one (or a cold process), never the dead one.
    for (let i = 0; i < 100 && r.warmPids.includes(dead); i++)
      await new Promise((res) => setTimeout(res, 10));
    expect(r.warmPids).not.toContain(dead);
    const h = r.start(req(pkg('after-death', "console.log('alive');")));
    const pid = await h.spawned;
    expect(pid).not.toBe(dead);
    expect(pid).toBe(other);
    expect(await h.done).toMatchObject({ status: 'success', exitCode: 0 });
    expect((await r.readRunLog(h.runId))[0]?.line).toBe('alive');
  });

  it('stop() leaves no idle warm process', async () => {
    const r = runner({ warmProcesses: 2 });
    await r.warm();
    const pids = r.warmPids;
    expect(pids).toHaveLength(2);
    await r.stop();
    expect(r.warmPids).toEqual([]);
    for (const pid of pids) await waitGone(pid);
  });

  it('closeLostRun of a restarted server kills a warm run left behind', async () => {
    const first = runner();
    await first.warm();
    const h = first.start(req(pkg('left', "console.log('up'); setInterval(() => {}, 1000);")));
    const pid = (await h.spawned)!;
    await followUntil(first, h.runId, (l) => l.line === 'up');
    // A second runner on the same directories stands for the restarted server.
    const second = runner({ warmProcesses: 0 });
    await second.closeLostRun(h.runId, pid);
    await waitGone(pid);
    expect((await h.done).status).toBe('failure');
  });
});

describe('TaskRunner task user', () => {
  const asRoot = process.getuid?.() === 0;

  it.skipIf(!asRoot)(
    'runs as QUOLL_TASK_USER, which cannot read the 0600 files of a narrowed home',
    async () => {
      // A home as the server leaves it: secrets owner-only after restrictHomeForTaskUser.
      chmodSync(root, 0o711);
      const home = join(root, 'home');
      mkdirSync(join(home, 'task-logs'), { recursive: true });
      mkdirSync(join(home, 'envs'), { recursive: true });
      writeFileSync(join(home, 'credentials.json'), '{"token":"admin"}');
      writeFileSync(join(home, 'master.key'), 'k'.repeat(44));
      writeFileSync(join(home, 'quoll.db'), 'db');
      writeFileSync(join(home, 'task-logs', 'other.log'), 'other run output');
      await restrictHomeForTaskUser(home);
      const r = runner({ taskUser: { uid: 65534, gid: 65534 }, env: { PATH: process.env.PATH } });
      const targets = ['credentials.json', 'master.key', 'quoll.db', 'task-logs/other.log'].map((f) =>
        join(home, f),
      );
      const p = pkg(
        'as-nobody',
        `import { readFileSync, writeFileSync } from 'node:fs';
       writeFileSync('own.txt', 'mine');
       const result = { uid: process.getuid(), gid: process.getgid(), own: readFileSync('own.txt', 'utf8') };
       for (const f of ${JSON.stringify(targets)}) {
         try { readFileSync(f); result[f] = 'READ'; } catch (e) { result[f] = e.code; }
       }
       console.log(JSON.stringify(result));`,
      );
      for (const warmProcesses of [0, 2]) {
        const rr =
          warmProcesses === 0
            ? r
            : runner({
                taskUser: { uid: 65534, gid: 65534 },
                env: { PATH: process.env.PATH },
                warmProcesses,
              });
        await rr.warm();
        const h = rr.start(req(p));
        expect(await h.done).toMatchObject({ status: 'success' });
        const seen = JSON.parse((await rr.readRunLog(h.runId))[0]!.line) as Record<string, unknown>;
        expect(seen).toMatchObject({ uid: 65534, gid: 65534, own: 'mine' });
        for (const f of targets) expect(seen[f]).toBe('EACCES');
      }
      // The runs directory lets the task user enter its run directory, not list the others.
      expect(statSync(join(root, 'runs')).mode & 0o777).toBe(0o711);
    },
  );
});
