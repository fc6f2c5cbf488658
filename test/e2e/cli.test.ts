import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { CLI, startTestServer, type TestServer } from '../support/test-server.js';

const exec = promisify(execFile);
let server: TestServer;
let dir: string;

/** Runs the CLI against the test server; never throws, answers code + output. */
async function quoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, '--home', server.home, ...args], {
      env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  server = await startTestServer();
  dir = await mkdtemp(join(tmpdir(), 'quoll-cli-'));
  await writeFile(join(dir, 'model.onnx'), makeTreeEnsembleRegressor({ seed: 21 }));
  await writeFile(join(dir, 'data.arrow'), tableToIpcFile(makeArrowTensorTable(makeHouseRows(30, 2), 18)));
});

afterAll(async () => {
  await server.stop();
  await server.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('the quoll CLI', () => {
  it('runs the serving flow with tables, and --json for scripts', async () => {
    expect((await quoll('workspace', 'create', 'cliws')).code).toBe(0);
    const list = await quoll('workspace', 'list');
    expect(list.stdout).toMatch(/^id\s+name\s+created at\s+default/m);
    expect(list.stdout).toContain('cliws');
    const json = JSON.parse((await quoll('workspace', 'list', '--json')).stdout) as { name: string }[];
    expect(json.map((w) => w.name)).toContain('cliws');

    const up = await quoll(
      '-w',
      'cliws',
      'model',
      'upload',
      'clim',
      join(dir, 'model.onnx'),
      '--tensor-fields',
      'tensor',
      '--json',
    );
    expect(up.code).toBe(0);
    expect((JSON.parse(up.stdout) as { config: { tensorFields: string[] } }).config.tensorFields).toEqual([
      'tensor',
    ]);
    expect((await quoll('-w', 'cliws', 'pipeline', 'create', 'clip')).code).toBe(0);
    expect((await quoll('-w', 'cliws', 'pipeline', 'add-step', 'clip', 'clim')).code).toBe(0);
    const deployed = await quoll('-w', 'cliws', 'pipeline', 'deploy', 'clip');
    expect(deployed.stdout).toMatch(/status\s+Running/);
    const inferred = await quoll(
      '-w',
      'cliws',
      'pipeline',
      'infer',
      'clip',
      join(dir, 'data.arrow'),
      '--limit',
      '5',
    );
    expect(inferred.code).toBe(0);
    expect(inferred.stdout).toMatch(/^time\s+in\.tensor\s+out\.variable\s+check_failures/m);
    expect(inferred.stdout).toContain('[30 rows x 4 columns]');
    const status = JSON.parse(
      (await quoll('-w', 'cliws', 'pipeline', 'status', 'clip', '--json')).stdout,
    ) as { status: string };
    expect(status.status).toBe('Running');
    expect((await quoll('-w', 'cliws', 'pipeline', 'undeploy', 'clip')).stdout).toMatch(
      /status\s+Undeployed/,
    );
  });

  it('exits non-zero with the error code and message', async () => {
    const missing = await quoll('-w', 'cliws', 'pipeline', 'status', 'nope');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error \[pipeline_not_found\]: .*nope/m);
    const badToken = await quoll('--url', server.url, '--token', 'qk_bad', 'workspace', 'list');
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('invalid_token');
  });

  it('shows the command tree in --help', async () => {
    const help = await quoll('--help');
    for (const group of ['server', 'workspace', 'model', 'pipeline']) expect(help.stdout).toContain(group);
  });
});
