import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { runCli, type CliResult } from '../support/run-cli.js';
import { CLI, startTestServer, type TestServer } from '../support/test-server.js';

const exec = promisify(execFile);
let server: TestServer;
let dir: string;

/** ISO 8601 in UTC with milliseconds: the one time format of CLI output. */
const ISO = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\b/;
/** What the CLI printed before: the seed's `%Y-%d-%b` and a space-separated form. */
const OTHER_TIMES = /\b\d{4}-\d{2}-[A-Z][a-z]{2}\b|\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}/;

/** Runs the CLI against the test server; never throws, answers code + output. */
function quoll(...args: string[]): Promise<CliResult> {
  return runCli(server.home, args);
}

beforeAll(async () => {
  server = await startTestServer();
  dir = await mkdtemp(join(tmpdir(), 'quoll-cli-'));
  await writeFile(join(dir, 'model.onnx'), makeTreeEnsembleRegressor({ seed: 21 }));
  await writeFile(join(dir, 'data.arrow'), tableToIpcFile(makeArrowTensorTable(makeHouseRows(30, 2), 18)));
  await writeFile(join(dir, 'big.arrow'), tableToIpcFile(makeArrowTensorTable(makeHouseRows(2000, 3), 18)));
  // Every test below builds on this workspace, model and pipeline; none on another test.
  const client = server.client();
  client.setCurrentWorkspace(await client.getWorkspace('clibase', { createIfNotExist: true }));
  const model = await client.uploadModel('basemodel', makeTreeEnsembleRegressor({ seed: 22 }), {
    tensorFields: ['tensor'],
  });
  const pipeline = await client.buildPipeline('basepipe');
  await pipeline.addModelStep(model);
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
    // Progress is for terminals: a pipe gets only the output.
    expect(up.stderr).toBe('');
    expect((JSON.parse(up.stdout) as { config: { tensorFields: string[] } }).config.tensorFields).toEqual([
      'tensor',
    ]);
    expect((await quoll('-w', 'cliws', 'pipeline', 'create', 'clip')).code).toBe(0);
    expect((await quoll('-w', 'cliws', 'pipeline', 'add-step', 'clip', 'clim')).code).toBe(0);
    const deployed = await quoll('-w', 'cliws', 'pipeline', 'deploy', 'clip');
    expect(deployed.stdout).toMatch(/status\s+Running/);
    expect(deployed.stderr).toBe('');
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
    expect(inferred.stdout).toMatch(ISO);
    const status = JSON.parse(
      (await quoll('-w', 'cliws', 'pipeline', 'status', 'clip', '--json')).stdout,
    ) as {
      status: string;
    };
    expect(status.status).toBe('Running');
    expect((await quoll('-w', 'cliws', 'pipeline', 'undeploy', 'clip')).stdout).toMatch(
      /status\s+Undeployed/,
    );
  });

  it('exits non-zero with the error code and a message in CLI terms', async () => {
    const missing = await quoll('-w', 'clibase', 'pipeline', 'status', 'nope');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error \[pipeline_not_found\]: .*nope/m);
    // The server's hint names an SDK call; the CLI names its own command.
    expect(missing.stderr).toContain('quoll pipeline create nope');
    expect(missing.stderr).not.toContain('buildPipeline');
    const notDeployed = await quoll(
      '-w',
      'clibase',
      'pipeline',
      'infer',
      'basepipe',
      join(dir, 'data.arrow'),
    );
    expect(notDeployed.stderr).toContain('quoll pipeline deploy');
    const badToken = await quoll('--url', server.url, '--token', 'qk_bad', 'workspace', 'list');
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('invalid_token');
  });

  it('prints errors as JSON on stdout under --json, usage errors too', async () => {
    const missing = await quoll('-w', 'clibase', 'pipeline', 'get', 'nope', '--json');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('');
    const body = JSON.parse(missing.stdout) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('pipeline_not_found');
    expect(body.error.message).toContain('nope');

    const usage = await quoll('pipeline', 'get', '--json');
    expect(usage.code).toBe(1);
    expect(JSON.parse(usage.stdout)).toEqual({
      error: { code: 'usage', message: "missing required argument 'name'" },
    });
    const local = await quoll('task', 'list', '--workspace-id', 'x', '--json');
    expect((JSON.parse(local.stdout) as { error: { code: string } }).error.code).toBe('usage');
  });

  it('prints every time as ISO 8601 (UTC, milliseconds)', async () => {
    for (const args of [
      ['workspace', 'list'],
      ['model', 'list'],
      ['pipeline', 'list'],
      ['pipeline', 'versions', 'basepipe', '-w', 'clibase'],
      ['model', 'get', 'basemodel', '-w', 'clibase'],
    ]) {
      const out = await quoll(...args);
      expect(out.code, args.join(' ')).toBe(0);
      expect(out.stdout, args.join(' ')).not.toMatch(OTHER_TIMES);
    }
    expect((await quoll('model', 'list')).stdout).toMatch(ISO);
  });

  it('lists span every visible workspace; -w and --workspace-id narrow them to one', async () => {
    const client = server.client();
    const other = await client.getWorkspace('clilist', { createIfNotExist: true });
    client.setCurrentWorkspace(other);
    await client.buildPipeline('listedpipe');
    const all = await quoll('pipeline', 'list', '--json');
    const names = (JSON.parse(all.stdout) as { name: string }[]).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['basepipe', 'listedpipe']));
    const one = JSON.parse((await quoll('-w', 'clilist', 'pipeline', 'list', '--json')).stdout) as {
      name: string;
    }[];
    expect(one.map((p) => p.name)).toEqual(['listedpipe']);
    const byId = JSON.parse(
      (await quoll('pipeline', 'list', '--workspace-id', String(other.id), '--json')).stdout,
    ) as { name: string }[];
    expect(byId.map((p) => p.name)).toEqual(['listedpipe']);
    const models = JSON.parse((await quoll('model', 'list', '--json')).stdout) as { name: string }[];
    expect(models.map((m) => m.name)).toContain('basemodel');
    expect(JSON.parse((await quoll('-w', 'clilist', 'model', 'list', '--json')).stdout)).toEqual([]);
  });

  it('stops quietly when the reader closes the pipe (| head)', async () => {
    const client = server.client();
    client.setCurrentWorkspace(await client.getWorkspace('clibase'));
    const pipeline = await client.getPipeline('basepipe');
    await pipeline.deploy();
    await pipeline.inferFromFile(join(dir, 'big.arrow'));
    await pipeline.logs({ limit: 1 });
    // 2000 rows of 18 numbers: far more than a pipe holds, so the writes hit EPIPE.
    const child = spawn(
      'bash',
      [
        '-c',
        `set -o pipefail; "${process.execPath}" "${CLI}" --home "${server.home}" -w clibase pipeline logs basepipe --limit 2000 | head -n 2`,
      ],
      { env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    await pipeline.undeploy();
    expect(stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(stderr).not.toMatch(/EPIPE|Error|at /);
    expect(code).toBe(0);
  });

  it('completion scripts load in bash and complete commands, subcommands and flags', async () => {
    const script = await quoll('completion', 'bash');
    expect(script.code).toBe(0);
    const complete = async (words: string[]): Promise<string[]> => {
      const { stdout } = await exec('bash', [
        '-c',
        `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _quoll_completion; printf '%s\\n' "\${COMPREPLY[@]}"`,
        'bash',
        join(dir, 'completion.bash'),
      ]);
      return stdout.split('\n').filter(Boolean);
    };
    await writeFile(join(dir, 'completion.bash'), script.stdout);
    expect(await complete(['quoll', 'pip'])).toEqual(['pipeline']);
    expect(await complete(['quoll', 'pipeline', 'de'])).toEqual(['deploy']);
    expect(await complete(['quoll', '-w', 'ws', 'task', 'l'])).toEqual(['list', 'logs']);
    expect(await complete(['quoll', 'pipeline', 'logs', 'p', '--exp'])).toEqual(['--export']);
    for (const shell of ['zsh', 'fish']) {
      const out = await quoll('completion', shell);
      expect(out.code).toBe(0);
      expect(out.stdout).toContain('pipeline');
    }
    expect((await quoll('completion', 'tcsh')).code).toBe(1);
  });

  it('shows the command tree in --help', async () => {
    const help = await quoll('--help');
    for (const group of ['server', 'workspace', 'model', 'pipeline', 'completion']) {
      expect(help.stdout).toContain(group);
    }
  });

  it('starts without loading apache-arrow or the SDK client for --help and completion', async () => {
    // A module-load hook that names every module the CLI loads on stderr.
    const hooks = join(dir, 'load-hooks.mjs');
    await writeFile(
      join(dir, 'trace-loads.mjs'),
      "import { register } from 'node:module';\n" +
        `register(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
    );
    await writeFile(
      hooks,
      'export async function load(url, context, next) {\n' +
        "  process.stderr.write('LOADED ' + url + '\\n');\n" +
        '  return next(url, context);\n}\n',
    );
    for (const args of [['--help'], ['completion', 'bash'], ['pipeline', '--help']]) {
      const { stdout, stderr } = await exec(
        process.execPath,
        ['--import', join(dir, 'trace-loads.mjs'), CLI, ...args],
        { env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' } },
      );
      expect(stdout.length).toBeGreaterThan(100);
      const loaded = stderr.split('\n').filter((l) => l.startsWith('LOADED '));
      expect(loaded.some((l) => l.includes('/cli/build-program.js'))).toBe(true);
      expect(
        loaded.filter((l) => /apache-arrow|flatbuffers|[/\\]client[/\\]dist[/\\]client\.js/.test(l)),
      ).toEqual([]);
    }
  });
});
