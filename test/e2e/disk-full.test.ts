// A full disk: the server's home is on a small tmpfs (8 MiB) filled to its last byte. Calls
// that must write (model and orchestration uploads) answer 507 storage_full and leave nothing
// behind; inference (which needs no disk to answer: its log rows wait in the writer's queue)
// is still served. Once space is freed, the same calls succeed from the same clients, whose
// kept-alive connections carried the refused uploads. Needs mount(2) (root); skipped with a
// message where it is not permitted, but CI (CI=true) must run it.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuollError, type Client, type Pipeline } from '@quoll/client';
import type { HealthDto } from '../../packages/quoll/src/server/index.js';
import { waitFor } from '../support/orchestration-helpers.js';
import { makeHouseRows } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'quoll-disk-full-'));
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint], {
  encoding: 'utf8',
});
const canMount = mounted.status === 0;
if (!canMount) {
  rmSync(mountPoint, { recursive: true, force: true });
  const why = (mounted.stderr || mounted.error?.message || 'mount failed').trim();
  if (process.env.CI === 'true') throw new Error(`CI must run the disk-full tests, but: ${why}`);
  console.warn(`skipping the disk-full tests (cannot mount a tmpfs here): ${why}`);
}

const home = join(mountPoint, 'home');
const filler = join(mountPoint, 'filler');
let server: TestServer;
let client: Client;
let pipeline: Pipeline;
const model = makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 });

/** Writes zeros to `filler` until the file system refuses (ENOSPC). */
function fillDisk(): void {
  const fd = openSync(filler, 'a');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

async function refusal(call: Promise<unknown>): Promise<QuollError> {
  const outcome = await call.then(
    () => null,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(QuollError);
  return outcome as QuollError;
}

/** A raw upload on its own connection: the status and whether the server closes the connection. */
function rawUpload(path: string, body: Uint8Array): Promise<{ status: number; connection: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.token}`,
        'content-type': 'application/octet-stream',
        'content-length': String(body.byteLength),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, connection: String(res.headers.connection) }),
      );
    });
    // The server may close before it has read the whole body: the sender then sees EPIPE.
    req.on('error', (error: Error & { code?: string }) => {
      if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
    });
    req.end(body);
  });
}

const health = async (): Promise<HealthDto> =>
  (await (await fetch(`${server.url}/v1/health`)).json()) as HealthDto;

beforeAll(async () => {
  if (!canMount) return;
  server = await startTestServer({ home });
  client = server.client();
  const kept = await (await client.uploadModel('kept', model)).configure({ tensorFields: ['tensor'] });
  pipeline = await client.buildPipeline('full');
  await pipeline.addModelStep(kept);
  await pipeline.deploy();
}, 120_000);

afterAll(async () => {
  if (!canMount) return;
  rmSync(filler, { force: true });
  const code = await server?.stop();
  await server?.cleanup();
  spawnSync('umount', [mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
  expect(code).toBe(0);
});

describe.runIf(canMount)('a full disk', () => {
  it('refuses uploads 507 storage_full, changing nothing; after space is freed the same calls succeed', async () => {
    const rows = makeHouseRows(3, 7);
    const records = [0, 1, 2].map((i) => ({ tensor: Array.from(rows.subarray(i * 18, i * 18 + 18)) }));
    const zip = await createZip([{ path: 'main.ts', content: "console.log('kept');\n" }]);
    const models = (await client.listModels()).length;
    const blobs = readdirSync(join(home, 'blobs', 'sha256'), { recursive: true }).sort();
    const ws = (await client.getCurrentWorkspace()).id;

    fillDisk();
    const upload = await refusal(client.uploadModel('refused', model));
    expect([upload.status, upload.code]).toEqual([507, 'storage_full']);
    const orchestration = await refusal(
      client.uploadOrchestration({ bytes: zip, fileName: 'refused.zip' }, { name: 'refused' }),
    );
    expect([orchestration.status, orchestration.code]).toEqual([507, 'storage_full']);
    // Answered before the body was read to its end: the connection is closed, not left holding
    // the unread rest of the body for the client's next request.
    expect(await rawUpload(`/v1/workspaces/${ws}/models?name=refused`, model)).toEqual({
      status: 507,
      connection: 'close',
    });
    // Nothing kept: no model version, no orchestration, no blob, no temporary file.
    expect((await client.listModels()).length).toBe(models);
    expect((await client.listOrchestrations()).map((o) => o.name)).not.toContain('refused');
    expect(readdirSync(join(home, 'blobs', 'sha256'), { recursive: true }).sort()).toEqual(blobs);
    expect(readdirSync(join(home, 'tmp'))).toEqual([]);
    // Serving needs no disk: the answer comes, its log rows wait in the writer's queue.
    expect(await pipeline.infer(records)).toHaveLength(3);

    rmSync(filler);
    // The same clients (and their kept-alive connections) as the refused calls.
    expect((await client.uploadModel('refused', model)).name).toBe('refused');
    const stored = await client.uploadOrchestration({ bytes: zip, fileName: 'kept.zip' }, { name: 'kept' });
    expect(stored.name).toBe('kept');
    expect((await rawUpload(`/v1/workspaces/${ws}/models?name=again`, model)).status).toBe(201);
    // The log writer catches up: the rows inferred while the disk was full are in the log.
    await waitFor('the inference log writer to recover', async () =>
      (await health()).inferenceLogs === 'open' ? true : undefined,
    );
    expect((await pipeline.logs()).length).toBeGreaterThanOrEqual(3);
  }, 120_000);
});
