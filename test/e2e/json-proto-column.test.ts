import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Found by the json1 review (pre-existing): a JSON body of columns holding a "__proto__"
// column is read differently by the inline parse (≤ 64 KiB, parseRecords on the HTTP thread,
// now DecodePool.decodeJsonInline) and by the model worker's decode (larger bodies). Inline,
// `record["__proto__"] = value` sets each record's prototype: the column vanishes and the
// request is answered 200; the same body over 64 KiB is refused 400. The records form
// `[{"__proto__": …, "tensor": …}]` is refused inline as unknown_input_column.
let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_INFERENCE_LOGS: 'off' } });
  const model = makeScaleModel({ inputName: 'tensor', width: 18, factor: 2 });
  url = (await deployModelPipeline(server.client(), 'proto', 'scale', model)).url();
});
afterAll(() => stopTestServer(server));

async function post(body: string): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : undefined;
  return { status: res.status, code };
}

const row = `[${Array(18).fill(0.5).join(',')}]`;
const columns = (rows: number): string => {
  const many = Array(rows).fill(row).join(',');
  return `{"tensor": [${many}], "__proto__": [${many}]}`;
};

describe('a "__proto__" column in a JSON body of columns', () => {
  it('is answered the same inline (≤ 64 KiB) as in the model worker, and refused like the records form', async () => {
    const small = columns(1);
    const large = columns(1000);
    expect(Buffer.byteLength(small)).toBeLessThanOrEqual(64 * 1024);
    expect(Buffer.byteLength(large)).toBeGreaterThan(64 * 1024);
    const inline = await post(small);
    const worker = await post(large);
    const recordsForm = await post(`[{"tensor": ${row}, "__proto__": ${row}}]`);
    expect(recordsForm.status).toBe(400);
    // Was: inline answered 200 (the column silently dropped), the worker 400.
    expect(inline).toEqual(worker);
    expect(inline.status).toBe(400);
  });
});
