import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPythons, noPythonReason, PYTHON_REQUIRED } from './support/python.js';
import { makeArrowTensorTable, tableToIpcFile } from './support/synthetic-data.js';
import { makeScaleModel } from './support/synthetic-models.js';
import { startTestServer, type TestServer } from './support/test-server.js';

/** The Python client's own tests (`python3 -m unittest` in packages/python) against a real server. */
const PROJECT = fileURLToPath(new URL('../packages/python/', import.meta.url));
const pythons = await findPythons(['pandas', 'pyarrow']);

/** Runs the unittest suite; resolves with its exit code and output. */
function unittest(python: string, env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      python,
      ['-m', 'unittest', '-v'],
      { cwd: PROJECT, env, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

describe('the Python client (packages/python) against a real server', () => {
  let server: TestServer;
  let dir: string;
  let model: string;
  let arrowFile: string;

  beforeAll(async () => {
    if (pythons.length === 0) return;
    server = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), 'quoll-pyclient-'));
    model = join(dir, 'double.onnx');
    await writeFile(model, makeScaleModel({ width: 4, factor: 2 }));
    // An Arrow file made without pyarrow, so the no-pyarrow path of infer_from_file is tested too.
    arrowFile = join(dir, 'rows.arrow');
    await writeFile(
      arrowFile,
      tableToIpcFile(makeArrowTensorTable(new Float32Array([1, 2, 3, 4, 0.5, 1, 1.5, 2]), 4)),
    );
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('has a Python to run on (and, under CI, one with pandas for the DataFrame tests)', (ctx) => {
    if (pythons.length === 0) {
      if (PYTHON_REQUIRED) expect.fail(noPythonReason('the Python client tests'));
      console.warn(noPythonReason('the Python client tests'));
      ctx.skip();
    }
    if (PYTHON_REQUIRED) expect(pythons.some((p) => p.modules.pandas)).toBe(true);
  });

  for (const python of pythons) {
    const features = ['server', ...(['pandas', 'pyarrow'] as const).filter((m) => python.modules[m])];
    it(
      `python -m unittest passes on ${python.command} (${python.version.join('.')}; requires ${features.join(', ')})`,
      { timeout: 600_000 },
      async () => {
        const result = await unittest(python.command, {
          ...process.env,
          QUOLL_URL: server.url,
          QUOLL_TOKEN: server.token,
          QUOLL_TEST_MODEL: model,
          QUOLL_TEST_ARROW: arrowFile,
          // What this interpreter has must be tested: a missing piece fails instead of skipping.
          QUOLL_TEST_REQUIRE: features.join(','),
          PYTHONDONTWRITEBYTECODE: '1',
        });
        if (result.code !== 0 || process.env.QUOLL_TEST_VERBOSE) console.error(result.output);
        expect(result.code).toBe(0);
        expect(result.output).toMatch(/\nOK/);
      },
    );
  }
});
