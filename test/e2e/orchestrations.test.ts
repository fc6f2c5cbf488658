import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, NotFoundError, PayloadTooLargeError, ValidationError, type Workspace } from '@quoll/client';
import { readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { createZip } from '../support/zip-builder.js';
import { runCli, type CliResult } from '../support/run-cli.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let client: Client;
let workspace: Workspace;
let dir: string;

function cli(args: string[]): Promise<CliResult> {
  return runCli(server.home, args);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quoll-orch-e2e-'));
  server = await startTestServer();
  client = server.client();
  workspace = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
  client.setCurrentWorkspace(workspace);
});

afterAll(async () => {
  const code = await server?.stop();
  await server?.cleanup();
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(0);
});

describe('upload and packaging', () => {
  it('uploads a zip from a path: pending_packaging at once, then ready; prints like the seed', async () => {
    const zip = await createZip([
      { path: 'main.ts', content: "const n: number = 42;\nconsole.log('answer', n);\n" },
      { path: 'data/zonea.json', content: '{"zone": "a"}' },
    ]);
    const path = join(dir, 'remote_inference.zip');
    await writeFile(path, zip);
    const orchestration = await client.uploadOrchestration({ path }, { name: 'houseprice' });
    expect(orchestration.fileName).toBe('remote_inference.zip');
    expect(orchestration.name).toBe('houseprice');
    expect(orchestration.sha).toBe(createHash('sha256').update(zip).digest('hex'));
    expect(orchestration.workspaceName).toBe('orchestrationworkspace');
    expect(String(orchestration)).toMatch(/^Status +pending_packaging$/m);
    expect(String(orchestration)).toMatch(new RegExp(`^SHA +${orchestration.sha}$`, 'm'));
    await orchestration.waitUntilReady();
    expect(await orchestration.status()).toBe('ready');
    expect(String(orchestration)).toMatch(/^Created At +\d{4}-\d\d-[A-Z][a-z]{2} \d\d:\d\d:\d\d$/m);
    const logs = await orchestration.packagingLogs();
    expect(logs.map((l) => l.line)).toContain('ready');
    expect(logs.some((l) => l.source === 'esbuild' && l.line.includes('main.ts'))).toBe(true);

    const listed = await client.listOrchestrations();
    expect(listed.map((o) => o.id)).toContain(orchestration.id);
    const table = inspect(listed);
    expect(table.split('\n')[0]).toMatch(
      /^id +name +status +filename +sha +created at +updated at +workspace id +workspace name$/,
    );
    expect(table).toContain(`${orchestration.sha.slice(0, 6)}...${orchestration.sha.slice(-6)}`);
    expect((await client.getOrchestration(orchestration.id)).fileName).toBe('remote_inference.zip');
    expect(
      (await client.listOrchestrations({ workspaceName: 'orchestrationworkspace' })).map((o) => o.id),
    ).toEqual([orchestration.id]);
  });

  it('a compile error ends packaging in error with the reason; tasks cannot be created from it', async () => {
    const bytes = await createZip([{ path: 'main.ts', content: 'const x: number = ;\n' }]);
    const orchestration = await client.uploadOrchestration({ bytes, fileName: 'broken.zip' });
    expect(orchestration.name).toBe('');
    await waitFor('error', async () => ((await orchestration.status()) === 'error' ? true : undefined));
    expect(orchestration.error).toMatch(/main\.ts/);
    expect(String(await orchestration.packagingLogs())).toMatch(/packaging failed/);
    await expect(orchestration.runOnce({ name: 'nope' })).rejects.toMatchObject({
      code: 'orchestration_not_ready',
    });
  });

  it('refuses every unsafe or broken zip with the right error and stores nothing', async () => {
    const before = (await client.listOrchestrations()).length;
    const refuse = async (
      bytes: Buffer,
      code: string,
      type: typeof ValidationError | typeof PayloadTooLargeError,
    ): Promise<void> => {
      const err = await client.uploadOrchestration({ bytes, fileName: 'bad.zip' }).catch((e: unknown) => e);
      expect(err, code).toBeInstanceOf(type);
      expect(err).toMatchObject({ code });
    };
    await refuse(Buffer.from('this is not a zip file at all'), 'invalid_archive', ValidationError);
    await refuse(
      await createZip([
        { path: 'readme.txt', content: 'no code' },
        { path: 'a.ts', content: '' },
        { path: 'b.ts', content: '' },
      ]),
      'archive_no_entrypoint',
      ValidationError,
    );
    await refuse(
      await createZip([
        { path: 'main.ts', content: '' },
        { path: '../evil.js', content: 'x' },
      ]),
      'archive_unsafe_entry',
      ValidationError,
    );
    await refuse(
      await createZip([
        { path: 'main.ts', content: '' },
        { path: '/abs.js', content: 'x' },
      ]),
      'archive_unsafe_entry',
      ValidationError,
    );
    await refuse(
      await createZip([
        { path: 'main.ts', content: '' },
        { path: 'link', symlinkTarget: '/etc/passwd' },
      ]),
      'archive_unsafe_entry',
      ValidationError,
    );
    await refuse(
      await createZip([
        { path: 'main.ts', content: '' },
        { path: 'zeros.bin', content: Buffer.alloc(20 * 1024 * 1024) },
      ]),
      'archive_too_large',
      PayloadTooLargeError,
    );
    expect(await client.listOrchestrations()).toHaveLength(before);
  });

  it('a workspace token sees only its workspace: other orchestrations and tasks do not exist for it', async () => {
    const mine = await readyOrchestration(client, 'admin-side', { 'main.mjs': "console.log('hi');\n" });
    const task = await mine.runOnce({ name: 'admin task' });
    const other = await client.getWorkspace('otherworkspace', { createIfNotExist: true });
    const scoped = new Client({ url: server.url, token: await client.createWorkspaceToken(other) });
    expect(await scoped.listOrchestrations()).toHaveLength(0);
    expect(String(await scoped.listOrchestrations())).toBe('(no orchestrations)');
    expect(String(await scoped.listTasks({ killed: true }))).toBe('(no tasks)');
    await expect(scoped.getOrchestration(mine.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(scoped.getTask(task.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      scoped.listOrchestrations({ workspaceName: 'orchestrationworkspace' }),
    ).rejects.toBeInstanceOf(NotFoundError);
    const own = await readyOrchestration(scoped, 'own', { 'main.mjs': "console.log('mine');\n" });
    expect(own.workspaceName).toBe('otherworkspace');
    expect((await scoped.listOrchestrations()).map((o) => o.id)).toEqual([own.id]);
    expect((await client.listOrchestrations()).map((o) => o.id)).toContain(own.id);
  });
});

describe('CLI', () => {
  it('uploads, lists, runs once, shows logs and kills, with tables, --json and exit codes', async () => {
    const path = join(dir, 'cli.zip');
    await writeFile(
      path,
      await createZip([
        {
          path: 'main.js',
          content: "console.log('from the cli run', JSON.stringify(process.env.QUOLL_TASK_ARGS));\n",
        },
      ]),
    );
    const up = await cli([
      '-w',
      'orchestrationworkspace',
      'orchestration',
      'upload',
      path,
      '--name',
      'cli',
      '--wait',
      '--json',
    ]);
    expect(up.code, up.stderr).toBe(0);
    const orchestration = JSON.parse(up.stdout) as { id: string; status: string };
    expect(orchestration.status).toBe('ready');
    const list = await cli(['orchestration', 'list']);
    expect(list.stdout).toMatch(/^id +name +status +filename/);
    expect(list.stdout).toContain(orchestration.id);
    expect((await cli(['orchestration', 'logs', orchestration.id])).stdout).toMatch(/quoll ready$/m);
    expect((await cli(['orchestration', 'status', orchestration.id])).stdout).toMatch(/^status +ready$/m);

    const created = await cli([
      'task',
      'run-once',
      orchestration.id,
      '--name',
      'cli once',
      '--args',
      '{"k": 1}',
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const task = JSON.parse(created.stdout) as { id: string };
    const task$ = await client.getTask(task.id);
    await waitFor('success', async () => ((await task$.lastRunStatus()) === 'success' ? true : undefined));
    const logs = await cli(['task', 'logs', task.id]);
    expect(logs.stdout).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stdout from the cli run "\{\\"k\\":1\}"$/m,
    );
    expect(logs.stdout).toMatch(/Z stdout quoll: run finished: success \(exit 0\)$/m);
    const followed = await cli(['task', 'logs', task.id, '--follow']);
    expect(followed.stdout.trim().split('\n')).toHaveLength(2);
    expect((await cli(['task', 'list'])).stdout).toMatch(/cli once +success +Temporary Run +true/);
    expect((await cli(['task', 'status', task.id])).stdout).toMatch(/^run id +status +exit code/m);
    // Per-task resource limits from flags: the task keeps them; a malformed size is refused before a call.
    const limited = await cli([
      'task',
      'schedule',
      orchestration.id,
      '--name',
      'cli limited',
      '--schedule',
      '0 0 1 1 *',
      '--memory',
      '512MiB',
      '--processes',
      '64',
      '--open-files',
      '256',
      '--cpu-seconds',
      '30',
      '--disk',
      '1GiB',
      '--json',
    ]);
    expect(limited.code, limited.stderr).toBe(0);
    const limitedTask = await client.getTask((JSON.parse(limited.stdout) as { id: string }).id);
    expect(limitedTask.limits).toEqual({
      memoryBytes: 512 * 1024 ** 2,
      processes: 64,
      openFiles: 256,
      cpuSeconds: 30,
      diskBytes: 1024 ** 3,
    });
    await limitedTask.kill();
    const tasksBefore = (await client.listTasks()).length;
    const badSize = await cli([
      'task',
      'run-once',
      orchestration.id,
      '--name',
      'bad size',
      '--memory',
      'lots',
    ]);
    expect(badSize.code).not.toBe(0);
    expect(badSize.stderr).toMatch(/--memory.*positive number of bytes/);
    expect((await client.listTasks()).length).toBe(tasksBefore);
    const bad = await cli(['task', 'schedule', orchestration.id, '--name', 'bad', '--schedule', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid_schedule/);
    expect((await cli(['task', 'kill', task.id])).stdout).toBe(`${task.id}: pending_kill\n`);
    const missing = await cli(['task', 'status', '00000000-0000-0000-0000-000000000000']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/task_not_found/);
  });
});
