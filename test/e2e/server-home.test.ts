// One server per home: a second `quoll server` on a home in use exits at once, naming the
// running one, and leaves credentials.json alone; a SIGKILLed server's home is free again.
// Restart hygiene: what a SIGKILLed server's installs and runs left running is stopped by the
// next server on the home before it re-queues any work.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Client } from '@quoll/client';
import {
  lastRunEnded,
  processesTitled,
  processExists,
  readyOrchestration,
  waitFor,
} from '../support/orchestration-helpers.js';
import { probeSandbox } from '../support/probe-sandbox.js';
import { CLI, startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

const exec = promisify(execFile);

describe('one server per home', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await servers[0]?.cleanup();
  });

  it('a second server on the same home exits at once, naming the running one, and rewrites nothing', async () => {
    const first = await startTestServer();
    servers.push(first);
    const credentials = join(first.home, 'credentials.json');
    const before = await readFile(credentials, 'utf8');
    const mtimeBefore = (await stat(credentials)).mtimeMs;

    const second = await exec(
      process.execPath,
      [
        CLI,
        'server',
        '--home',
        first.home,
        '--port',
        '0',
        ...(first.database ? ['--database', first.database] : []),
      ],
      { env: { ...process.env, QUOLL_RUNS_DIR: first.runsDir }, timeout: 30_000 },
    ).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (err: { code: number | null; killed?: boolean; stdout: string; stderr: string }) => err,
    );
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toContain(`pid ${first.process.pid}`);
    expect(second.stderr).toContain(first.url);
    expect(second.stderr).toContain(first.home);
    expect(second.stdout).not.toContain('listening');

    expect(await readFile(credentials, 'utf8')).toBe(before);
    expect((await stat(credentials)).mtimeMs).toBe(mtimeBefore);
    // The first server is untouched and still the one the CLI reaches.
    expect(first.process.exitCode).toBeNull();
    expect((await first.client().listWorkspaces()).length).toBeGreaterThan(0);
  }, 60_000);

  it('a SIGKILLed server leaves no lock behind: the next one starts and takes over the home', async () => {
    const first = servers[0] as TestServer;
    await first.kill();
    const next = await startTestServer({
      home: first.home,
      ...(first.database ? { args: ['--database', first.database] } : {}),
    });
    servers.push(next);
    const creds = JSON.parse(await readFile(join(first.home, 'credentials.json'), 'utf8')) as { url: string };
    expect(creds.url).toBe(next.url);
    const holder = JSON.parse(await readFile(join(first.home, 'server.json'), 'utf8')) as {
      pid: number;
      url: string;
    };
    expect(holder).toMatchObject({ pid: next.process.pid, url: next.url });
    const code = await next.stop();
    // Exit code null means a signal ended it (once in CI, 3 December): say which, with its output.
    expect(code, `signal ${String(next.process.signalCode)}; output:\n${next.output()}`).toBe(0);
    // A clean stop takes its server.json along.
    await expect(readFile(join(first.home, 'server.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 60_000);

  it('a SIGTERM sent the moment the server says it is listening stops it cleanly', async () => {
    // The handler must be in place before the line that tells the world the server is up: a
    // signal with no handler yet kills the process where it stands (CI, 3 December).
    for (let round = 0; round < 3; round++) {
      const home = mkdtempSync(join(tmpdir(), 'quoll-term-'));
      const runs = mkdtempSync(join(tmpdir(), 'quoll-term-runs-'));
      try {
        const child = spawn(process.execPath, [CLI, 'server', '--home', home, '--port', '0'], {
          env: { ...process.env, QUOLL_RUNS_DIR: runs },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let sent = false;
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (!sent && out.includes('listening on')) {
            sent = true;
            child.kill('SIGTERM');
          }
        });
        const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
        expect({ code, signal }, out).toEqual({ code: 0, signal: null });
        expect(out).toContain('listening on');
        await expect(readFile(join(home, 'server.json'))).rejects.toMatchObject({ code: 'ENOENT' });
      } finally {
        rmSync(home, { recursive: true, force: true });
        rmSync(runs, { recursive: true, force: true });
      }
    }
  }, 60_000);
});

const probe = await probeSandbox('restart hygiene with a sandbox');

describe.each([
  { sandbox: 'off', run: true },
  { sandbox: 'bubblewrap', run: probe.status.sandboxed },
])('restart hygiene with --sandbox $sandbox', ({ sandbox, run }) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await servers[0]?.cleanup();
  });

  it.runIf(run)(
    'a server SIGKILLed during an install and a run: the next one stops their processes before it re-queues work',
    async () => {
      const env = { QUOLL_NPM_ALLOW_SCRIPTS: 'hang-dep' };
      const args = ['--sandbox', sandbox, '--allow-unsandboxed-runs'];
      const first = await startTestServer({ env, args });
      servers.push(first);
      const client = first.client();
      const ws = await client.createWorkspace('hygiene');
      client.setCurrentWorkspace(ws);
      // Short: a process title cannot outgrow the process's original command line.
      const tag = `${sandbox.slice(0, 1)}${Date.now() % 1_000_000}`;
      const runMarker = `hr-${tag}`;
      const installMarker = `hi-${tag}`;

      // A run that never ends, with a child in its group.
      const forever = await readyOrchestration(client, 'forever', {
        'main.mjs': `import { spawn } from 'node:child_process';
          process.title = '${runMarker}';
          spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '${runMarker}-child'], { stdio: 'ignore' });
          console.log('up');
          setInterval(() => {}, 1000);`,
      });
      const foreverTask = await forever.runOnce({ name: 'forever' });
      const runPids = await waitFor(
        'the run and its child',
        async () => {
          const pids = processesTitled(runMarker);
          return pids.length >= 2 ? pids : undefined;
        },
        60_000,
      ).catch(async (err: unknown) => {
        const [r] = await foreverTask.lastRuns();
        console.log(
          'the run:',
          r?.status,
          (await r?.logs())?.map((l) => l.line),
          first.output(),
        );
        throw err;
      });

      // An install whose (allowed) install script never ends.
      const installing = await client.uploadOrchestration(
        {
          bytes: await createZip([
            {
              path: 'package.json',
              content: JSON.stringify({ dependencies: { 'hang-dep': 'file:./hang-dep' } }),
            },
            {
              path: 'hang-dep/package.json',
              content: JSON.stringify({
                name: 'hang-dep',
                version: '1.0.0',
                scripts: {
                  postinstall: `node -e "process.title='${installMarker}';setInterval(()=>{},1000)"`,
                },
              }),
            },
            { path: 'hang-dep/index.js', content: 'module.exports = 1;' },
            { path: 'main.mjs', content: "console.log('never');" },
          ]),
          fileName: 'hang.zip',
        },
        { name: 'hang' },
      );
      const installPids = await waitFor(
        'the install script',
        async () => {
          const pids = processesTitled(installMarker);
          return pids.length >= 1 ? pids : undefined;
        },
        90_000,
      );

      await first.kill();
      if (sandbox === 'off') {
        // Nothing ties plain process groups to the server: they outlive it (what the next one must stop).
        for (const pid of [...runPids, ...installPids]) expect(processExists(pid), `pid ${pid}`).toBe(true);
      }

      const next = await startTestServer({
        home: first.home,
        env,
        args: [...args, ...(first.database ? ['--database', first.database] : [])],
      });
      servers.push(next);
      // Listening comes after the leftovers are stopped: by now every old process is gone.
      for (const pid of [...runPids, ...installPids]) expect(processExists(pid), `pid ${pid}`).toBe(false);
      // The log line may reach the pipe just after the listening line (the logger writes on its own).
      if (sandbox === 'off')
        await vi.waitFor(
          () =>
            expect(next.output()).toContain('stopped processes a previous server on this home left running'),
          { timeout: 10_000, interval: 50 },
        );
      // Then the work goes on: the lost run is closed, the install is packaging again.
      const c2 = new Client({ url: next.url, token: next.token });
      c2.setCurrentWorkspace(ws);
      const tasks = await c2.listTasks();
      const lost = await lastRunEnded(tasks[0]!, 30_000, 'the lost run');
      expect(lost.status).toBe('failure');
      expect(await (await c2.getOrchestration(installing.id)).status()).toBe('packaging');
    },
    240_000,
  );
});
