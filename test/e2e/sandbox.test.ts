// Untrusted code: a run started with a workspace-scoped token tries what a hostile user would
// (read the home through /proc and by path, list other runs, call admin routes, leave processes
// behind, fork-bomb, exhaust memory) and each attempt fails while the run reports normally. And
// a server without a sandbox says so and refuses runs from workspace tokens unless allowed.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, QuollError } from '@quoll/client';
import type { Orchestration, Workspace } from '@quoll/client';
import { NO_LIMITS, setUpSandbox } from '../../packages/quoll/src/runner/index.js';
import { processesTitled, readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

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
  console.warn(`skipping the hostile-run tests (no sandbox here): ${probe.status.reason}`);
}

/** The attacker's script: every attempt is recorded as what happened, never thrown. */
const HOSTILE = `
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
const args = JSON.parse(process.env.QUOLL_TASK_ARGS);
const attempt = (f) => { try { return f(); } catch (e) { return 'refused: ' + (e.code ?? e.message); } };
const report = {};
// 1. Find the server's --home through /proc (the parent's command line), then any process's.
report.parentCmdline = attempt(() => readFileSync('/proc/' + process.ppid + '/cmdline', 'utf8'));
report.serverCmdline = attempt(() => readFileSync('/proc/' + args.serverPid + '/cmdline', 'utf8'));
report.homesSeenInProc = readdirSync('/proc').filter((n) => /^\\d+$/.test(n))
  .map((n) => attempt(() => readFileSync('/proc/' + n + '/cmdline', 'utf8')))
  .filter((c) => c.includes('--home'));
report.processesVisible = readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).length;
// 2. The secrets by path, knowing the home.
for (const f of ['credentials.json', 'master.key', 'quoll.db'])
  report[f] = attempt(() => readFileSync(args.home + '/' + f, 'utf8').slice(0, 20));
report.homeListing = attempt(() => readdirSync(args.home));
// 3. Other runs' directories.
report.runsListing = attempt(() => readdirSync(args.runsDir));
report.otherRun = attempt(() => readdirSync(args.otherRunDir));
// 4. Admin routes with the run's own token (the only one it has).
const audit = await fetch(process.env.QUOLL_URL + '/v1/admin/audit', { headers: { authorization: 'Bearer ' + process.env.QUOLL_TOKEN } });
report.adminAudit = audit.status;
const issue = await fetch(process.env.QUOLL_URL + '/v1/workspaces/' + args.otherWorkspaceId + '/tokens', {
  method: 'POST', headers: { authorization: 'Bearer ' + process.env.QUOLL_TOKEN, 'content-type': 'application/json' }, body: '{}' });
report.issueToken = issue.status;
// 5. Signal the server; write where the run may not.
report.killServer = attempt(() => { process.kill(args.serverPid, 'SIGKILL'); return 'sent'; });
report.writeNodeModules = attempt(() => { writeFileSync('node_modules/evil.js', 'x'); return 'written'; });
report.writeUsr = attempt(() => { writeFileSync('/usr/evil', 'x'); return 'written'; });
// 6. Leave processes behind: a detached one and one in a new session.
spawn('sleep', ['600', args.marker], { detached: true, stdio: 'ignore' }).unref();
spawn('setsid', ['sleep', '600', args.marker], { detached: true, stdio: 'ignore' }).unref();
// 7. Fork bomb: as many processes as it can get.
let started = 0; let refused = 0;
for (let i = 0; i < 400; i++) {
  try {
    const c = spawn('sleep', ['30'], { stdio: 'ignore' });
    c.on('spawn', () => started++);
    c.on('error', () => refused++);
  } catch { refused++; }
}
await new Promise((r) => setTimeout(r, 1500));
report.forkBomb = { started, refused };
// 8. Memory past the limit.
const keep = [];
report.memory = attempt(() => { for (let i = 0; i < 64; i++) keep.push(Buffer.alloc(64 * 1024 * 1024, 1)); return 'allocated 4 GiB'; });
report.memoryKeptMiB = keep.length * 64;
keep.length = 0;
console.log('REPORT ' + JSON.stringify(report));
process.exit(0);
`;

describe.skipIf(!probe.status.sandboxed)('a hostile run with a workspace token', () => {
  let server: TestServer;
  let admin: Client;
  let scoped: Client;
  let workspace: Workspace;
  let other: Workspace;
  let sleeper: Orchestration;

  beforeAll(async () => {
    server = await startTestServer({
      env: { QUOLL_TASK_PROCESSES: '128', QUOLL_TASK_MEMORY: '512 MiB' },
    });
    admin = server.client();
    workspace = await admin.createWorkspace('tenant-a');
    other = await admin.createWorkspace('tenant-b');
    scoped = new Client({ url: server.url, token: await admin.createWorkspaceToken(workspace) });
    const adminB = server.client();
    adminB.setCurrentWorkspace(other);
    sleeper = await readyOrchestration(adminB, 'neighbour', {
      'main.mjs': "console.log('up'); await new Promise((r) => setTimeout(r, 120_000));",
    });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('the server says runs are sandboxed', async () => {
    const health = (await (await fetch(`${server.url}/v1/health`)).json()) as {
      runs: Record<string, unknown>;
    };
    expect(health.runs).toMatchObject({
      launcher: 'bubblewrap',
      sandboxed: true,
      reason: null,
      network: 'host',
    });
    await waitFor('the run isolation line', async () =>
      server.output().includes('task runs:') ? true : undefined,
    );
    expect(server.output()).toContain('task runs: sandboxed with bubblewrap');
  });

  it('tries every attack; each fails and the run reports normally', async () => {
    // Another workspace's run, going at the same time.
    const neighbour = await sleeper.runOnce({ name: 'neighbour' });
    await waitFor('the neighbour to run', async () => {
      const [r] = await neighbour.lastRuns();
      return r !== undefined && (await r.logs()).some((l) => l.line === 'up') ? r : undefined;
    });
    // Where the server keeps run directories: they exist on the host.
    const runsDir = server.runsDir;
    // The neighbour's directory: the one holding a copy of its files (idle warm ones are empty).
    const otherRunDir = readdirSync(runsDir)
      .map((n) => join(runsDir, n))
      .find((d) => existsSync(join(d, '.quoll', 'entry.mjs')));
    expect(otherRunDir).toBeDefined();
    const marker = `hostile-${Date.now()}`;
    const hostile = await readyOrchestration(scoped, 'hostile', { 'main.mjs': HOSTILE });
    const task = await hostile.runOnce({
      name: 'hostile',
      jsonArgs: {
        home: server.home,
        serverPid: server.process.pid,
        runsDir,
        otherRunDir,
        otherWorkspaceId: other.id,
        marker,
      },
      timeout: 120,
    });
    const run = await waitFor(
      'the hostile run to end',
      async () => {
        const [r] = await task.lastRuns();
        return r !== undefined && r.status !== 'running' ? r : undefined;
      },
      90_000,
    );
    const logs = await run.logs();
    expect(run.status, logs.map((l) => l.line).join('\n')).toBe('success');
    expect(logs.at(-1)?.line).toBe('quoll: run finished: success (exit 0)');
    const line = logs.find((l) => l.line.startsWith('REPORT '))?.line ?? 'REPORT {}';
    const report = JSON.parse(line.slice('REPORT '.length)) as Record<string, unknown>;
    // The parent inside is the sandbox's init (bwrap): it names the binds, not the home.
    expect(report.parentCmdline).not.toContain('--home');
    expect(report.parentCmdline).not.toContain(server.home);
    expect(report.serverCmdline).toBe('refused: ENOENT');
    expect(report.homesSeenInProc).toEqual([]);
    expect(report.processesVisible).toBeLessThan(10);
    for (const f of ['credentials.json', 'master.key', 'quoll.db', 'homeListing', 'runsListing', 'otherRun'])
      expect(report[f], f).toBe('refused: ENOENT');
    expect(report.adminAudit).toBe(403);
    expect(report.issueToken).toBe(403);
    expect(report.killServer).toBe('refused: ESRCH');
    expect(report.writeNodeModules).toBe('refused: EROFS');
    expect(report.writeUsr).toBe('refused: EROFS');
    const bomb = report.forkBomb as { started: number; refused: number };
    expect(bomb.started).toBeLessThan(128);
    expect(bomb.refused).toBeGreaterThan(0);
    expect(report.memory).toMatch(/^refused: /);
    expect(report.memoryKeptMiB).toBeLessThanOrEqual(512);
    // Nothing it started outlives it, and the server and its neighbour are fine.
    await waitFor(
      'the left-behind processes to be gone',
      async () => (processesTitled(marker).length === 0 ? true : undefined),
      10_000,
    );
    expect(server.process.exitCode).toBeNull();
    expect((await admin.getTask(neighbour.id)).id).toBe(neighbour.id);
    expect((await neighbour.lastRuns())[0]?.status).toBe('running');
    await neighbour.kill();
  }, 150_000);

  it('runs a task with its own tighter limits, and refuses looser ones than the server allows', async () => {
    const limitsProbe = await readyOrchestration(scoped, 'limits', {
      'main.mjs':
        "import { readFileSync } from 'node:fs'; console.log(readFileSync('/proc/self/limits', 'utf8'));",
    });
    const limitsOf = async (task: Awaited<ReturnType<Orchestration['runOnce']>>): Promise<string> => {
      const run = await waitFor('the run to end', async () => {
        const [r] = await task.lastRuns();
        return r !== undefined && r.status !== 'running' ? r : undefined;
      });
      const lines = (await run.logs()).map((l) => l.line);
      expect(run.status, lines.join('\n')).toBe('success');
      return lines.join('\n');
    };
    const tight = {
      memoryBytes: 256 * 1024 ** 2,
      processes: 64,
      openFiles: 256,
      cpuSeconds: 30,
      diskBytes: 64 * 1024 ** 2,
    };
    const task = await limitsProbe.runOnce({ name: 'tight', limits: tight });
    expect(task.limits).toEqual(tight);
    const seen = await limitsOf(task);
    expect(seen).toMatch(/^Max data size\s+268435456\s+268435456\s+bytes/m);
    expect(seen).toMatch(/^Max processes\s+64\s+64\s/m);
    expect(seen).toMatch(/^Max open files\s+256\s+256\s/m);
    expect(seen).toMatch(/^Max cpu time\s+30\s+30\s+seconds/m);
    expect(seen).toMatch(/^Max file size\s+67108864\s+67108864\s+bytes/m);
    // A limit the task leaves out is the server's (QUOLL_TASK_MEMORY=512 MiB, QUOLL_TASK_PROCESSES=128).
    const partial = await limitsProbe.runOnce({ name: 'partial', limits: { openFiles: 100 } });
    const partialSeen = await limitsOf(partial);
    expect(partialSeen).toMatch(/^Max data size\s+536870912\s+536870912\s+bytes/m);
    expect(partialSeen).toMatch(/^Max processes\s+128\s+128\s/m);
    expect(partialSeen).toMatch(/^Max open files\s+100\s+100\s/m);
    // The server's default disk limit: 2 GiB.
    expect(partialSeen).toMatch(/^Max file size\s+2147483648\s+2147483648\s+bytes/m);
    // Looser than the server's, or not a limit at all: refused, and no task is made.
    const before = (await scoped.listTasks()).length;
    const refused: Record<string, number>[] = [{ memoryBytes: 1024 ** 3 }, { processes: 0 }, { swap: 1 }];
    for (const limits of refused) {
      const err = await limitsProbe.runOnce({ name: 'loose', limits }).catch((e: unknown) => e);
      expect(err, JSON.stringify(limits)).toBeInstanceOf(QuollError);
      expect((err as QuollError).code).toBe('invalid_task_args');
    }
    const above = await limitsProbe
      .runOnce({ name: 'loose', limits: { memoryBytes: 1024 ** 3 } })
      .catch((e: unknown) => e as QuollError);
    expect((above as QuollError).message).toContain('QUOLL_TASK_MEMORY');
    expect((await scoped.listTasks()).length).toBe(before);
  }, 120_000);

  it('a run filling its directory is stopped at its disk limit: failure with the reason, nothing left in the runs directory', async () => {
    const filler = await readyOrchestration(scoped, 'filler', {
      'main.mjs': `import { writeFileSync } from 'node:fs';
        console.log('filling');
        for (let i = 0; ; i++) { writeFileSync('part-' + i, Buffer.alloc(1024 * 1024, 1)); await new Promise((r) => setTimeout(r, 5)); }`,
    });
    const task = await filler.runOnce({ name: 'filler', timeout: 60, limits: { diskBytes: 8 * 1024 ** 2 } });
    const run = await waitFor('the run to end', async () => {
      const [r] = await task.lastRuns();
      return r !== undefined && r.status !== 'running' ? r : undefined;
    });
    expect(run.status).toBe('failure');
    const lines = (await run.logs()).map((l) => l.line);
    expect(lines.at(-1)).toBe('quoll: run finished: failure (disk limit exceeded (8388608 bytes))');
    // Its files are gone (whichever directory it ran in: its own, or a warm process's).
    const left = readdirSync(server.runsDir).filter((n) => existsSync(join(server.runsDir, n, 'part-0')));
    expect(left).toEqual([]);
  }, 120_000);

  it('packages dependencies without their install scripts, a package in the zip included; a sandboxed run imports them', async () => {
    const withDeps = await readyOrchestration(scoped, 'with-deps', {
      'package.json': JSON.stringify({ dependencies: { 'is-number': '7.0.0', 'zip-dep': 'file:./zip-dep' } }),
      'zip-dep/package.json': JSON.stringify({
        name: 'zip-dep',
        version: '1.0.0',
        main: 'index.js',
        scripts: { postinstall: "node -e \"require('fs').writeFileSync('ran', 'x')\"" },
      }),
      'zip-dep/index.js': "module.exports = 'from the zip';",
      'main.mjs': `import isNumber from 'is-number';
        import zipDep from 'zip-dep';
        import { existsSync } from 'node:fs';
        console.log(isNumber(5), zipDep, existsSync('node_modules/zip-dep/ran'));`,
    });
    const log = (await withDeps.packagingLogs()).map((l) => l.line).join('\n');
    expect(log).toContain('install scripts: off');
    const task = await withDeps.runOnce({ name: 'deps' });
    const run = await waitFor('the run to end', async () => {
      const [r] = await task.lastRuns();
      return r !== undefined && r.status !== 'running' ? r : undefined;
    });
    const lines = (await run.logs()).map((l) => l.line);
    expect(run.status, lines.join('\n')).toBe('success');
    expect(lines[0]).toBe('true from the zip false');
  }, 120_000);

  it('refuses a dependency outside the zip with a clear packaging error', async () => {
    const bad = await scoped.uploadOrchestration(
      {
        bytes: await createZip([
          { path: 'package.json', content: JSON.stringify({ dependencies: { up: 'file:../up' } }) },
          { path: 'main.mjs', content: "console.log('never');" },
        ]),
        fileName: 'bad.zip',
      },
      { name: 'bad' },
    );
    const status = await waitFor('packaging to end', async () => {
      const s = await bad.status();
      return s === 'error' || s === 'ready' ? s : undefined;
    });
    expect(status).toBe('error');
    expect((await bad.packagingLogs()).map((l) => l.line).join('\n')).toMatch(
      /"up": "file:\.\.\/up" .* points outside the zip/,
    );
  });

  it('cannot bundle the home’s secrets at packaging: the import is refused and no error quotes them', async () => {
    const credentials = readFileSync(join(server.home, 'credentials.json'), 'utf8');
    const key = readFileSync(join(server.home, 'master.key'));
    const secrets = [
      (JSON.parse(credentials) as { token?: string }).token ?? credentials,
      key.toString('utf8').trim().slice(0, 16),
      key.toString('hex').slice(0, 16),
      server.home,
    ];
    // `../../../` from <home>/orchestrations/<id>/files is the home.
    const attempts = {
      json: "import c from '../../../credentials.json';\nconsole.log(c);",
      text: "import k from '../../../master.key' with { type: 'text' };\nconsole.log(k);",
      parse: "import k from '../../../master.key' with { type: 'json' };\nconsole.log(k);",
      absolute: `import c from '${join(server.home, 'credentials.json')}';\nconsole.log(c);`,
    };
    for (const [name, source] of Object.entries(attempts)) {
      const o = await scoped.uploadOrchestration(
        { bytes: await createZip([{ path: 'main.ts', content: source }]), fileName: `${name}.zip` },
        { name },
      );
      const status = await waitFor('packaging to end', async () => {
        const s = await o.status();
        return s === 'error' || s === 'ready' ? s : undefined;
      });
      const shown = `${o.error ?? ''}\n${(await o.packagingLogs()).map((l) => l.line).join('\n')}`;
      // The absolute attempt wrote the home's path itself; the others must not learn it.
      const hidden = name === 'absolute' ? secrets.slice(0, 3) : secrets;
      for (const secret of hidden) expect(shown, name).not.toContain(secret);
      expect(status, name).toBe('error');
      expect(o.error, name).toContain('resolves outside the orchestration’s files');
    }
  }, 120_000);
});

describe.skipIf(!probe.status.sandboxed)('runs with --task-network server-only', () => {
  let server: TestServer;
  let outside: Server;
  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    await new Promise((r) => outside?.close(r));
  });

  it('reach the Quoll API and nothing else: not the host loopback, not another host address', async () => {
    // A service on the host, on every address: what a run must not reach.
    outside = createServer((_req, res) => res.end('outside'));
    await new Promise<void>((r) => outside.listen(0, '0.0.0.0', r));
    const port = (outside.address() as AddressInfo).port;
    const hostAddress =
      Object.values(networkInterfaces())
        .flat()
        .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address ?? null;
    expect((await fetch(`http://127.0.0.1:${port}`)).status).toBe(200);
    server = await startTestServer({ args: ['--task-network', 'server-only'] });
    const health = (await (await fetch(`${server.url}/v1/health`)).json()) as {
      runs: Record<string, unknown>;
    };
    expect(health.runs).toMatchObject({ sandboxed: true, network: 'server-only' });
    const admin = server.client();
    const ws = await admin.createWorkspace('netns');
    const scoped = new Client({ url: server.url, token: await admin.createWorkspaceToken(ws) });
    const netProbe = await readyOrchestration(scoped, 'net', {
      'main.mjs': `const args = JSON.parse(process.env.QUOLL_TASK_ARGS);
        const attempt = async (url, init) => { try { return (await fetch(url, { ...init, signal: AbortSignal.timeout(5000) })).status; } catch (e) { return 'refused: ' + (e.cause?.code ?? e.name); } };
        const report = {
          api: await attempt(process.env.QUOLL_URL + '/v1/workspaces', { headers: { authorization: 'Bearer ' + process.env.QUOLL_TOKEN } }),
          hostLoopback: await attempt('http://127.0.0.1:' + args.port),
          hostAddress: args.hostAddress === null ? 'none' : await attempt('http://' + args.hostAddress + ':' + args.port),
          internet: await attempt('http://1.1.1.1'),
        };
        console.log('REPORT ' + JSON.stringify(report));`,
    });
    const task = await netProbe.runOnce({ name: 'net', jsonArgs: { port, hostAddress } });
    const run = await waitFor('the run to end', async () => {
      const [r] = await task.lastRuns();
      return r !== undefined && r.status !== 'running' ? r : undefined;
    });
    const lines = (await run.logs()).map((l) => l.line);
    expect(run.status, lines.join('\n')).toBe('success');
    const report = JSON.parse(
      (lines.find((l) => l.startsWith('REPORT ')) ?? 'REPORT {}').slice('REPORT '.length),
    ) as Record<string, unknown>;
    expect(report.api).toBe(200);
    expect(report.hostLoopback).toMatch(/^refused: /);
    if (hostAddress !== null) expect(report.hostAddress).toMatch(/^refused: /);
    expect(report.internet).toMatch(/^refused: /);
  }, 120_000);
});

describe('a server without a sandbox', () => {
  let server: TestServer;
  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('says so at start and on /v1/health, and refuses runs from workspace tokens unless allowed', async () => {
    server = await startTestServer({ args: ['--sandbox', 'off'] });
    await waitFor('the run isolation line', async () =>
      server.output().includes('task runs:') ? true : undefined,
    );
    expect(server.output()).toMatch(
      /task runs: NOT sandboxed \(turned off \(QUOLL_SANDBOX=off\)\); only admin tokens may start runs/,
    );
    const health = (await (await fetch(`${server.url}/v1/health`)).json()) as {
      runs: Record<string, unknown>;
    };
    expect(health.runs).toMatchObject({
      launcher: 'direct',
      sandboxed: false,
      unsandboxedRuns: 'admin-only',
    });
    expect(health.runs.reason).toContain('turned off');
    const admin = server.client();
    const ws = await admin.createWorkspace('unsandboxed');
    const scoped = new Client({ url: server.url, token: await admin.createWorkspaceToken(ws) });
    const orchestration = await readyOrchestration(scoped, 'hello', { 'main.mjs': "console.log('hello');" });
    const refused = await orchestration.runOnce({ name: 'refused' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(QuollError);
    expect((refused as QuollError).code).toBe('sandbox_unavailable');
    expect((await scoped.listTasks()).length).toBe(0);
    // An admin may still run it (trusted code).
    const asAdmin = await admin.getOrchestration(orchestration.id);
    const task = await asAdmin.runOnce({ name: 'admin run' });
    await waitFor('the admin run', async () =>
      (await task.lastRunStatus()) === 'success' ? true : undefined,
    );
    await server.stop();

    const allowed = await startTestServer({
      home: server.home,
      args: ['--sandbox', 'off', '--allow-unsandboxed-runs'],
    });
    try {
      const h = (await (await fetch(`${allowed.url}/v1/health`)).json()) as { runs: Record<string, unknown> };
      expect(h.runs).toMatchObject({ sandboxed: false, unsandboxedRuns: 'allowed' });
      const scoped2 = new Client({
        url: allowed.url,
        token: await allowed.client().createWorkspaceToken(ws),
      });
      const again = await scoped2.getOrchestration(orchestration.id);
      const t = await again.runOnce({ name: 'allowed' });
      await waitFor('the allowed run', async () =>
        (await t.lastRunStatus()) === 'success' ? true : undefined,
      );
    } finally {
      await allowed.stop();
    }
  }, 120_000);
});
