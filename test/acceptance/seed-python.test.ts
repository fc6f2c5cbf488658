import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, Orchestration } from '@quoll/client';
import { waitFor } from '../support/orchestration-helpers.js';
import { findPythons, noPythonReason, PYTHON_REQUIRED } from '../support/python.js';
import { SHARED_DIR, SHARED_FIXTURES, hasSharedFixtures } from '../support/shared-fixtures.js';
import { createZip } from '../support/zip-builder.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

// The seed tutorial's orchestration, as the seed prints it: its main.py taken from the seed text
// in ../shared/seed with only `import wallaroo` changed, and a requirements.txt naming what it
// imports (pandas, pyarrow, requests), installed by pip from whatever the server's pip is
// configured with. It reads the connection from Quoll, deploys the pipeline, fetches the Arrow
// file, infers and prints the table with the seed's numbers.

const SEED_DIR = join(SHARED_DIR, 'seed');
const hasSeed = existsSync(SEED_DIR) && hasSharedFixtures;
const CONNECTION = 'houseprice_arrow_table';

/** The seed's main.py, cut from the tutorial text (the block after the "Sample Orchestrator" heading). */
async function seedMainPy(): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  for (const name of await readdir(SEED_DIR)) {
    if (!name.endsWith('.txt') && !name.endsWith('.md')) continue;
    const text = await readFile(join(SEED_DIR, name), 'utf8');
    const at = text.indexOf('### Sample Orchestrator');
    if (at < 0) continue;
    const m = /```python\n([\s\S]*?)```/.exec(text.slice(at));
    if (m?.[1] !== undefined) return m[1];
  }
  throw new Error(`no "Sample Orchestrator" main.py in ${SEED_DIR}`);
}

let server: TestServer | undefined;
let client: Client;
let files: Server | undefined;
let skipReason: string | null = null;

beforeAll(async () => {
  if (!hasSeed) {
    skipReason = `skipped: the seed text and fixtures are not at ${SEED_DIR} and ${SHARED_FIXTURES} (lay ../shared beside the repository or set QUOLL_SHARED_DIR)`;
    if (process.env.CI === 'true') throw new Error(skipReason);
    return;
  }
  const [python] = await findPythons();
  if (python === undefined) {
    skipReason = noPythonReason('the seed Python orchestration');
    if (PYTHON_REQUIRED) throw new Error(skipReason);
    return;
  }
  // The "remote" Arrow file the connection points at.
  const arrow = await readFile(join(SHARED_FIXTURES, 'xtest-1k.arrow'));
  files = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.apache.arrow.file' });
    res.end(arrow);
  });
  await new Promise<void>((resolve) => files!.listen(0, '127.0.0.1', resolve));
  const port = (files.address() as AddressInfo).port;
  server = await startTestServer({ env: { QUOLL_PYTHON: python.executable } });
  client = server.client();
  const workspace = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
  client.setCurrentWorkspace(workspace);
  const model = await client.uploadModel('housepricesagacontrol', join(SHARED_FIXTURES, 'rf_model.onnx'));
  const pipeline = await client.buildPipeline('orchestrationpipeline');
  await pipeline.addModelStep(model);
  await client.createConnection(CONNECTION, 'HTTPFILE', { host: `http://127.0.0.1:${port}/xtest-1k.arrow` });
  await workspace.addConnection(CONNECTION);
}, 120_000);

afterAll(async () => {
  if (server !== undefined) {
    expect(await server.stop()).toBe(0);
    await server.cleanup();
  }
  await new Promise<void>((resolve) => (files ? files.close(() => resolve()) : resolve()));
});

describe("the seed tutorial's Python orchestration", () => {
  it(
    'runs main.py with only its import changed and prints the seed’s numbers',
    { timeout: 600_000 },
    async (ctx) => {
      if (skipReason !== null) {
        console.warn(skipReason);
        return ctx.skip();
      }
      const seed = await seedMainPy();
      expect(seed).toContain('import wallaroo\n');
      const mainPy = seed
        .replace(/^import wallaroo$/m, 'import quoll as wallaroo')
        .replace(/^from wallaroo\.object import/m, 'from quoll.object import');
      const bytes = await createZip([
        { path: 'main.py', content: mainPy },
        { path: 'requirements.txt', content: 'pandas\npyarrow\nrequests\n' },
      ]);
      const orchestration: Orchestration = await client.uploadOrchestration(
        { bytes, fileName: 'remote_inference.zip' },
        { name: 'comprehensive sample' },
      );
      const status = await waitFor(
        'packaging',
        async () => {
          const s = await orchestration.status();
          return s === 'ready' || s === 'error' ? s : undefined;
        },
        540_000,
      );
      if (status === 'error') {
        const logs = (await orchestration.packagingLogs()).map((l) => l.line).join('\n');
        // Without a package index (or a wheel folder) for pandas/pyarrow/requests there is nothing to run.
        if (!PYTHON_REQUIRED && /No matching distribution|Could not find a version/.test(logs)) {
          console.warn(`skipped: pip on this machine cannot install pandas, pyarrow and requests:\n${logs}`);
          return ctx.skip();
        }
        throw new Error(`packaging failed:\n${logs}`);
      }
      const task = await orchestration.runOnce({ name: 'house price run once task', jsonArgs: {} });
      const run = await waitFor(
        'the run',
        async () => {
          const [r] = await task.lastRuns();
          return r !== undefined && r.status !== 'running' ? r : undefined;
        },
        240_000,
      );
      const text = (await run.logs()).map((l) => l.line).join('\n');
      expect(run.status, text).toBe('success');
      for (const line of [
        'Getting the workspace orchestrationworkspace',
        'Getting the pipeline orchestrationpipeline',
        'Getting arrow table file',
        'Inference time.  Displaying results after.',
      ])
        expect(text).toContain(line);
      // The seed's first predictions (718013.75, 615094.56), in the printed table's out.variable
      // column (pyarrow prints float32 values shortest-first: 718013.7, 615094.6).
      const printed = /^out\.variable: \[\[\[([-\d.e+]+)\],\[([-\d.e+]+)\]/m.exec(text);
      expect(printed, text).not.toBeNull();
      expect(Math.abs(Number(printed?.[1]) - 718013.75)).toBeLessThanOrEqual(1.0);
      expect(Math.abs(Number(printed?.[2]) - 615094.56)).toBeLessThanOrEqual(1.0);
      expect((await (await client.getPipeline('orchestrationpipeline')).status()).status).toBe('Undeployed');
    },
  );
});
