import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveClientPackageDir } from '../orchestrations/resolve-client-package.js';
import { NO_LIMITS } from './resource-limits.js';
import type { ResourceLimits } from './resource-limits.js';
import type { PackagedOrchestration, RunRequest } from './run-request.js';
import { NodeRuntime } from './runtimes/node-runtime.js';
import { setUpSandbox } from './sandbox.js';
import type { SandboxSetup } from './sandbox.js';
import { TaskRunner } from './task-runner.js';
import type { TaskRunnerOptions } from './task-runner.js';

const probeDir = mkdtempSync(join(tmpdir(), 'quoll-sandbox-probe-'));
const probe = await setUpSandbox({
  mode: 'auto',
  network: 'host',
  taskUser: null,
  limits: NO_LIMITS,
  scratchDir: probeDir,
  apiPort: () => 9,
});
rmSync(probeDir, { recursive: true, force: true });
if (!probe.status.sandboxed) {
  if (process.env.CI === 'true')
    throw new Error(`CI must run the sandbox tests, but: ${probe.status.reason}`);
  console.warn(`skipping the sandbox tests: ${probe.status.reason}`);
}

let root: string;
let runners: TaskRunner[];
let seq = 0;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-sandbox-'));
  runners = [];
});
afterEach(async () => {
  for (const r of runners) await r.stop();
  rmSync(root, { recursive: true, force: true });
});

async function sandboxRunner(
  over: Partial<TaskRunnerOptions> & { network?: 'host' | 'server-only' } = {},
): Promise<TaskRunner> {
  const setup: SandboxSetup = await setUpSandbox({
    mode: 'bubblewrap',
    network: over.network ?? 'host',
    taskUser: null,
    limits: over.limits ?? NO_LIMITS,
    scratchDir: join(root, 'runs', '.quoll'),
    apiPort: () => 9,
  });
  const r = new TaskRunner({
    logsDir: join(root, 'logs'),
    runsDir: join(root, 'runs'),
    serverUrl: 'http://127.0.0.1:9',
    issueRunToken: () => Promise.resolve({ token: 'tok', revoke: () => Promise.resolve() }),
    launcher: setup.launcher,
    taskUser: setup.taskUser,
    runtimes: [new NodeRuntime({ sdkDir: resolveClientPackageDir() })],
    warmProcesses: 0,
    env: { PATH: process.env.PATH, HOME: '/root' },
    ...over,
  });
  runners.push(r);
  return r;
}

function pkg(name: string, source: string): PackagedOrchestration {
  const dir = join(root, 'pkgs', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.mjs'), source);
  return { dir, entry: 'main.mjs' };
}

function req(p: PackagedOrchestration, over: Partial<RunRequest> = {}): RunRequest {
  seq++;
  return {
    runId: `sbx-${seq}`,
    taskId: 't',
    workspaceId: 1,
    jsonArgs: {},
    timeoutSeconds: null,
    package: p,
    ...over,
  };
}

async function lines(r: TaskRunner, runId: string): Promise<string[]> {
  return (await r.readRunLog(runId)).map((l) => l.line);
}

/** Host processes whose command line contains `marker`. */
function hostProcessesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe.skipIf(!probe.status.sandboxed)('bubblewrap sandbox', () => {
  it('runs in /quoll/run with its own /proc, no capabilities and no new privileges, and the SDK importable', async () => {
    const secret = join(root, 'home');
    mkdirSync(secret);
    writeFileSync(join(secret, 'credentials.json'), '{"token":"admin"}');
    const r = await sandboxRunner();
    const h = r.start(
      req(
        pkg(
          'inside',
          `import { existsSync, readFileSync, readdirSync } from 'node:fs';
           import { inTask } from '@quoll/client';
           const status = readFileSync('/proc/self/status', 'utf8');
           const field = (n) => status.split('\\n').find((l) => l.startsWith(n + ':')).split(/\\s+/)[1];
           console.log(JSON.stringify({
             cwd: process.cwd(), uid: process.getuid(), pid: process.pid, inTask: inTask(),
             pids: readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).length,
             server: existsSync('/proc/${process.pid}'), home: existsSync(${JSON.stringify(secret)}),
             runs: existsSync(${JSON.stringify(join(root, 'runs'))}), etcShadow: existsSync('/etc/shadow'),
             capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs'),
           }));`,
        ),
      ),
    );
    expect(await h.done).toMatchObject({ status: 'success', exitCode: 0 });
    const seen = JSON.parse((await lines(r, h.runId))[0]!) as Record<string, unknown>;
    expect(seen).toMatchObject({
      cwd: '/quoll/run',
      inTask: true,
      home: false,
      runs: false,
      etcShadow: false,
      capEff: '0000000000000000',
      noNewPrivs: '1',
    });
    // bwrap's init is pid 1, the run pid 2: the server's processes do not exist in there.
    expect(seen.pid).toBe(2);
    expect(seen.pids).toBeLessThanOrEqual(3);
    if (process.getuid?.() === 0) expect(seen.uid).toBe(65534);
  });

  it('kills everything the run started when it exits, even what left its process group', async () => {
    const marker = `quoll-orphan-${process.pid}-${Date.now()}`;
    const r = await sandboxRunner();
    const h = r.start(
      req(
        pkg(
          'orphans',
          `import { spawn } from 'node:child_process';
           spawn('setsid', ['sleep', '300', '${marker}'], { detached: true, stdio: 'ignore' }).unref();
           spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '${marker}'], { detached: true, stdio: 'ignore' }).unref();
           await new Promise((r) => setTimeout(r, 300));
           console.log('left two behind');`,
        ),
      ),
    );
    expect(await h.done).toMatchObject({ status: 'success' });
    expect(await lines(r, h.runId)).toContain('left two behind');
    for (let i = 0; i < 100 && hostProcessesWith(marker).length > 0; i++)
      await new Promise((res) => setTimeout(res, 20));
    expect(hostProcessesWith(marker)).toEqual([]);
  });

  it('kill() reaches the run with SIGTERM first, then ends the sandbox', async () => {
    const r = await sandboxRunner({ killGraceMs: 2_000 });
    const h = r.start(
      req(
        pkg(
          'term',
          `process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(3); });
           console.log('ready'); setInterval(() => {}, 1000);`,
        ),
      ),
    );
    for await (const l of r.followRunLog(h.runId)) if (l.line === 'ready') break;
    r.kill(h.runId);
    expect(await h.done).toMatchObject({ status: 'killed', exitCode: 3 });
    expect(await lines(r, h.runId)).toContain('got SIGTERM');
  });

  it('warm processes start inside sandboxes and serve runs', async () => {
    const r = await sandboxRunner({ warmProcesses: 2 });
    await r.warm();
    const warm = r.warmPids;
    expect(warm).toHaveLength(2);
    const h = r.start(
      req(
        pkg(
          'warm',
          "import { readFileSync } from 'node:fs'; console.log(process.cwd(), readFileSync('main.mjs', 'utf8').length > 0);",
        ),
      ),
    );
    expect(warm).toContain(await h.spawned);
    const outcome = await h.done;
    expect(outcome, JSON.stringify({ outcome, log: await lines(r, h.runId) })).toMatchObject({
      status: 'success',
    });
    expect((await lines(r, h.runId))[0]).toBe('/quoll/run true');
  });

  it('shows the dependency environment read-only as node_modules, with @quoll/client added', async () => {
    const env = join(root, 'envs', 'e1', 'node_modules');
    mkdirSync(join(env, 'tiny-dep'), { recursive: true });
    writeFileSync(
      join(env, 'tiny-dep', 'package.json'),
      '{"name":"tiny-dep","type":"module","main":"index.js"}',
    );
    writeFileSync(join(env, 'tiny-dep', 'index.js'), 'export const answer = 42;');
    const r = await sandboxRunner();
    const p = {
      ...pkg(
        'deps',
        `import { answer } from 'tiny-dep';
         import { Client } from '@quoll/client';
         import { writeFileSync } from 'node:fs';
         let readOnly = false;
         try { writeFileSync('node_modules/tiny-dep/x', 'x'); } catch (e) { readOnly = e.code === 'EROFS'; }
         console.log(answer, typeof Client, readOnly);`,
      ),
      envNodeModulesDir: env,
    };
    const h = r.start(req(p));
    expect(await h.done).toMatchObject({ status: 'success' });
    expect((await lines(r, h.runId))[0]).toBe('42 function true');
  });

  const limited = (over: Partial<ResourceLimits>): ResourceLimits => ({ ...NO_LIMITS, ...over });

  it('a run past its memory limit fails on its own and reports normally', async () => {
    // 1 GiB, not less: Node 24 does not start at all under an RLIMIT_DATA below about 570 MiB
    // (V8 fails to reserve its code range), which would make the sandbox probe fail instead.
    const r = await sandboxRunner({ limits: limited({ memoryBytes: 1024 ** 3 }) });
    const h = r.start(
      req(
        pkg(
          'hog',
          `const keep = [];
           try { for (let i = 0; i < 64; i++) keep.push(Buffer.alloc(64 * 1024 * 1024, 1)); console.log('allocated 4 GiB'); }
           catch (e) { console.log('refused after', keep.length * 64, 'MiB'); }`,
        ),
      ),
    );
    expect(await h.done).toMatchObject({ status: 'success' });
    const out = await lines(r, h.runId);
    expect(out[0]).toMatch(/^refused after \d+ MiB$/);
    expect(out.at(-1)).toBe('quoll: run finished: success (exit 0)');
  });

  it('a sandboxed run cannot write one file past its disk limit, and ends failure with nothing left', async () => {
    const r = await sandboxRunner({ limits: limited({ diskBytes: 4 * 1024 ** 2 }) });
    const h = r.start(
      req(
        pkg(
          'bigfile',
          `import { openSync, writeSync, statSync } from 'node:fs';
           const fd = openSync('big.bin', 'w');
           try { for (let i = 0; i < 32; i++) writeSync(fd, Buffer.alloc(1024 * 1024, 1)); console.log('wrote 32 MiB'); }
           catch (e) { console.log(e.code, 'at', statSync('big.bin').size); }`,
        ),
        { timeoutSeconds: 60 },
      ),
    );
    expect(await h.done).toMatchObject({ status: 'failure', reason: 'disk limit exceeded (4194304 bytes)' });
    const out = await lines(r, h.runId);
    expect(out[0]).toBe('EFBIG at 4194304');
    expect(out.at(-1)).toBe('quoll: run finished: failure (disk limit exceeded (4194304 bytes))');
    expect(readdirSync(join(root, 'runs')).filter((n) => !n.startsWith('.'))).toEqual([]);
  });

  it('a sandboxed run spreading past its disk limit over many files is stopped, its files removed', async () => {
    const r = await sandboxRunner({ limits: limited({ diskBytes: 4 * 1024 ** 2 }), diskCheckIntervalMs: 20 });
    const h = r.start(
      req(
        pkg(
          'spread',
          `import { writeFileSync } from 'node:fs';
           console.log('spreading');
           for (let i = 0; ; i++) { writeFileSync('part-' + i, Buffer.alloc(256 * 1024, 1)); await new Promise((r) => setTimeout(r, 2)); }`,
        ),
        { timeoutSeconds: 60 },
      ),
    );
    expect(await h.done).toMatchObject({ status: 'failure', reason: 'disk limit exceeded (4194304 bytes)' });
    expect(readdirSync(join(root, 'runs')).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(hostProcessesWith(h.runId)).toEqual([]);
  });

  it('a fork bomb stops at the process limit and the run still ends normally', async () => {
    const r = await sandboxRunner({ limits: limited({ processes: 64 }) });
    const h = r.start(
      req(
        pkg(
          'bomb',
          `import { spawn } from 'node:child_process';
           let started = 0, refused = 0;
           for (let i = 0; i < 200; i++) {
             try {
               const c = spawn('sleep', ['30'], { stdio: 'ignore' });
               c.on('error', () => refused++);
               c.on('spawn', () => started++);
             } catch { refused++; }
           }
           await new Promise((r) => setTimeout(r, 1500));
           console.log(JSON.stringify({ started, refused }));
           process.exit(0);`,
        ),
        { timeoutSeconds: 60 },
      ),
    );
    expect(await h.done).toMatchObject({ status: 'success' });
    const counts = JSON.parse((await lines(r, h.runId))[0]!) as { started: number; refused: number };
    expect(counts.started).toBeLessThan(64);
    expect(counts.refused).toBeGreaterThan(100);
  });
});
