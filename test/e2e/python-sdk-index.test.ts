import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPythons, noPythonReason, PYTHON_REQUIRED, type PythonInfo } from '../support/python.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const exec = promisify(execFile);
const python: PythonInfo | undefined = (await findPythons()).find((p) => p.hasVenv);

describe('the server publishes the Python client as a PEP 503 simple index', () => {
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    server = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), 'quoll-pip-'));
  });

  afterAll(async () => {
    await server.stop();
    await server.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the index pages without a token, with the sha256 pip checks', async () => {
    const list = await fetch(`${server.url}/sdk/python/simple/`);
    expect(list.status).toBe(200);
    expect(list.headers.get('content-type')).toContain('text/html');
    expect(await list.text()).toContain('<a href="quoll/">quoll</a>');
    const page = await (await fetch(`${server.url}/sdk/python/simple/quoll/`)).text();
    const link =
      /href="\.\.\/\.\.\/files\/(quoll-[^"#]+\.whl)#sha256=([0-9a-f]{64})" data-requires-python="&gt;=3\.9"/.exec(
        page,
      );
    expect(link).not.toBeNull();
    const wheel = await fetch(`${server.url}/sdk/python/files/${link?.[1] ?? ''}`);
    expect(wheel.status).toBe(200);
    const bytes = new Uint8Array(await wheel.arrayBuffer());
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(link?.[2]);
    // PEP 503: other spellings of the name lead to the normalised page; unknown projects are 404.
    const other = await fetch(`${server.url}/sdk/python/simple/Quoll/`, { redirect: 'manual' });
    expect(other.status).toBe(301);
    expect((await fetch(`${server.url}/sdk/python/simple/numpy/`)).status).toBe(404);
    expect((await fetch(`${server.url}/sdk/python/files/evil.whl`)).status).toBe(404);
    // The API itself still needs a token.
    expect((await fetch(`${server.url}/v1/workspaces`)).status).toBe(401);
  });

  it(
    'pip install --index-url <server>/sdk/python/simple/ quoll works in a fresh venv',
    { timeout: 180_000 },
    async (ctx) => {
      if (python === undefined) {
        if (PYTHON_REQUIRED) expect.fail(noPythonReason('pip install from the index (with venv)'));
        console.warn(noPythonReason('pip install from the index (with venv)'));
        return ctx.skip();
      }
      const venv = join(dir, 'venv');
      await exec(python.executable, ['-m', 'venv', venv], { timeout: 120_000 });
      // No pip configuration of this machine: only the server's index may be used.
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        PIP_CONFIG_FILE: '/dev/null',
        PIP_NO_CACHE_DIR: '1',
        PIP_DISABLE_PIP_VERSION_CHECK: '1',
      };
      delete env.PIP_FIND_LINKS;
      delete env.PIP_INDEX_URL;
      delete env.PIP_EXTRA_INDEX_URL;
      const pip = await exec(
        join(venv, 'bin', 'python'),
        ['-m', 'pip', 'install', '--index-url', `${server.url}/sdk/python/simple/`, 'quoll'],
        { env, timeout: 120_000 },
      );
      expect(pip.stdout).toMatch(/Successfully installed quoll-\d/);
      const run = await exec(
        join(venv, 'bin', 'python'),
        [
          '-c',
          'import quoll, sys; c = quoll.Client(url=sys.argv[1], token=sys.argv[2]); print(quoll.__version__, [w.name() for w in c.list_workspaces()])',
          server.url,
          server.token,
        ],
        { env, cwd: dir },
      );
      expect(run.stdout).toMatch(/^\d+\.\d+\.\d+ \['default'\]/);
    },
  );
});
