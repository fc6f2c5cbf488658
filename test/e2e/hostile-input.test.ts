import { readFileSync, writeFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { tableToIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody, ErrorCode } from '@quoll/client/wire';
import { withRecordBatchBlocks } from '../support/arrow-file-footer.js';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { errorCodeOf } from '../support/error-code-of.js';
import { makeArrowTensorTable, makeHouseRows } from '../support/synthetic-data.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Hostile bodies over HTTP: every request is answered 2xx (a still-valid body) or 4xx, none
// stalls the server (a liveness guard aborts a request after 30 s), /v1/health keeps
// answering between batches, and the server's peak resident memory over a fuzz run grows by
// no more than its in-flight body budget. The count is fixed (about 300 requests), so the run is bounded.

const MAX_BODY = 2 * 1024 * 1024;
const INFLIGHT_BUDGET = 64 * 1024 * 1024;
const BURST = 64;
let server: TestServer;
let url: string;

/** A server with the limits above and the model deployed, and its inference URL. */
async function startHostileServer(): Promise<{ server: TestServer; url: string }> {
  const started = await startTestServer({
    env: {
      QUOLL_MAX_INFERENCE_BYTES: String(MAX_BODY),
      QUOLL_MAX_INFLIGHT_BODY_BYTES: String(INFLIGHT_BUDGET),
      QUOLL_DECODE_DEADLINE_MS: '3000',
      QUOLL_INFERENCE_LOGS: 'off',
    },
  });
  const model = makeScaleModel({ inputName: 'tensor', width: 18, factor: 2 });
  return {
    server: started,
    url: (await deployModelPipeline(started.client(), 'hostile', 'scale', model)).url(),
  };
}

beforeAll(async () => {
  ({ server, url } = await startHostileServer());
});

afterAll(() => stopTestServer(server));

async function post(
  body: Uint8Array | string,
  contentType: string | null,
  target = url,
  token = server.token,
): Promise<{ status: number; code?: string; message?: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (contentType !== null) headers['content-type'] = contentType;
  const res = await fetch(target, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (res.status < 400) return { status: res.status };
  const parsed = JSON.parse(text) as ErrorBody | { error: string; code: ErrorCode };
  // Quoll's errors nest { code, message }; the Open Inference Protocol's put the message first.
  return typeof parsed.error === 'string'
    ? { status: res.status, code: (parsed as { code: ErrorCode }).code, message: parsed.error }
    : { status: res.status, code: parsed.error.code, message: parsed.error.message };
}

/**
 * Streams a body without a length (chunked), 64 KiB every few milliseconds up to `limit` bytes,
 * until the server answers: its status, the bytes sent by then, and its Connection header.
 */
function chunkedUntilAnswered(
  target: string,
  type: string,
  limit: number,
): Promise<{ status: number; sent: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = request(target, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': type },
    });
    req.on('response', (res) => {
      answered = true;
      res.resume();
      resolve({ status: res.statusCode ?? 0, sent, connection: res.headers.connection });
      req.destroy();
    });
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const chunk = Buffer.alloc(64 * 1024, 0x5b); // '[' over and over: never a complete body
    const pump = (): void => {
      if (answered) return;
      if (sent >= limit) {
        req.end();
        return;
      }
      sent += chunk.length;
      req.write(chunk, () => setTimeout(pump, 2));
    };
    pump();
  });
}

/**
 * `count` POSTs of `body` at once, in two steps: the headers of all of them first, which the
 * server admits or refuses 503 before it reads a body (an admitted request holds its share of
 * the budget until it is answered, and none is answered before its body is sent, so what is
 * admitted cannot change meanwhile); once no refusal has come for 500 ms, the bodies of all the
 * admitted ones at once. The requests then in flight together are exactly those the budget
 * admitted, whatever the timing: a few under the budget, all of them without it.
 */
async function admittedBurst(
  target: string,
  token: string,
  type: string,
  body: Uint8Array,
  count: number,
): Promise<{ status: number; code?: string }[]> {
  let lastAnswer = Date.now();
  const requests = Array.from({ length: count }, () => {
    const req = request(target, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': type,
        'content-length': String(body.length),
      },
    });
    let answered = false;
    const answer = new Promise<{ status: number; code?: string }>((resolve, reject) => {
      req.on('response', (res) => {
        answered = true;
        lastAnswer = Date.now();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString();
          resolve(status < 400 ? { status } : { status, code: (JSON.parse(text) as ErrorBody).error.code });
          req.destroy();
        });
      });
      req.on('error', (error) => {
        if (!answered) reject(error);
      });
    });
    const sent = { req, answer, answered: (): boolean => answered };
    req.flushHeaders();
    return sent;
  });
  const started = Date.now();
  // Refusals come within milliseconds (seconds on a loaded machine); without a budget none
  // comes, and the bodies go after 5 s.
  while (
    Date.now() - lastAnswer < 500 ||
    (!requests.some((r) => r.answered()) && Date.now() - started < 5_000)
  ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const sent of requests) if (!sent.answered()) sent.req.end(body);
  return Promise.all(requests.map((sent) => sent.answer));
}

/** Sends only the headers of a POST declaring `length` bytes; resolves with the status answered. */
function declaredOnly(target: string, type: string, length: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request(target, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${server.token}`,
        'content-type': type,
        'content-length': String(length),
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

/** A /proc/<pid>/status field in bytes (VmRSS now, VmHWM the peak since the last reset). */
function memoryOf(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
}

/**
 * Runs `send` and checks that the server process's peak resident memory over it (the kernel's
 * VmHWM, reset just before) grew by no more than the in-flight body budget over its resident
 * memory before: the bodies it holds at once are what the budget bounds.
 *
 * In the two fuzz runs the budget refuses nothing (four bodies of at most 1.5 MB at a time cost
 * under 64 MiB): there the bound checks that no hostile body makes the server allocate far more
 * than its size (their growth, 8–22 MiB Arrow and 16–47 MiB JSON, is alike with the budget
 * raised to 1 GiB: 16–20 and 23–36 MiB). The burst test is the one whose growth the budget
 * decides.
 */
async function underMemoryBudget<T>(
  label: string,
  send: () => Promise<T>,
  pid = server.process.pid!,
): Promise<T> {
  const before = memoryOf(pid, 'VmRSS');
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const result = await send();
  const grown = memoryOf(pid, 'VmHWM') - before;
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(
    `${label}: the server's peak RSS grew ${mib(grown)} over ${mib(before)} (budget ${mib(INFLIGHT_BUDGET)})`,
  );
  expect(grown, `${label}: peak RSS growth`).toBeLessThanOrEqual(INFLIGHT_BUDGET);
  return result;
}

async function healthy(): Promise<void> {
  const res = await fetch(`${server.url}/v1/health`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
}

const ARROW_FILE = 'application/vnd.apache.arrow.file';
const ARROW_STREAM = 'application/vnd.apache.arrow.stream';
const JSON_TYPE = 'application/json';

const table = makeArrowTensorTable(makeHouseRows(64, 3), 18);
const arrowFile = tableToIPC(table, 'file');
const arrowStream = tableToIPC(table, 'stream');
const rows = (n: number): number[][] =>
  Array.from({ length: n }, (_, i) => Array.from({ length: 18 }, (_, j) => i + j / 4));
const jsonSmall = Buffer.from(JSON.stringify(rows(16).map((tensor) => ({ tensor }))));
// Over the 64 KiB that are parsed inline: this one goes to a decode worker.
const jsonLarge = Buffer.from(JSON.stringify(rows(2000).map((tensor) => ({ tensor }))));

function flipped(body: Uint8Array, stride: number, from: number): Buffer {
  const out = Buffer.from(body);
  for (let i = from; i < out.length; i += stride) out[i]! ^= 0xff;
  return out;
}

/** Every 4-byte-aligned int32 in the first `span` bytes set to a huge value, one at a time. */
function hugeFields(body: Uint8Array, span: number, step: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 8 <= Math.min(span, body.length); at += step) {
    const copy = Buffer.from(body);
    copy.writeInt32LE(0x7fffffff, at);
    out.push(copy);
    const negative = Buffer.from(body);
    negative.writeInt32LE(-0x7fffffff, at);
    out.push(negative);
  }
  return out;
}

function truncations(body: Uint8Array): Buffer[] {
  return [1, 7, 8, 64, 200, Math.floor(body.length / 2), body.length - 10, body.length - 1].map((n) =>
    Buffer.from(body.subarray(0, Math.max(0, n))),
  );
}

/** Sends the cases four at a time; checks health after every batch. */
async function sendAll(
  cases: { body: Uint8Array | string; type: string }[],
  label: string,
): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4);
    const answers = await Promise.all(batch.map((c) => post(c.body, c.type)));
    for (const [k, answer] of answers.entries()) {
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const what = `${label} case ${i + k}: ${answer.status} ${answer.code ?? ''} ${answer.message ?? ''}`;
      expect(answer.status >= 200 && answer.status < 500, what).toBe(true);
      if (answer.status >= 400) expect(answer.message!.length, what).toBeLessThanOrEqual(1024);
    }
    await healthy();
  }
  return statuses;
}

describe('hostile inference bodies', () => {
  it('the untouched bodies are served', async () => {
    for (const [body, type] of [
      [arrowFile, ARROW_FILE],
      [arrowStream, ARROW_STREAM],
      [jsonSmall, JSON_TYPE],
      [jsonLarge, JSON_TYPE],
    ] as const) {
      expect((await post(body, type)).status).toBe(200);
    }
  });

  it('Arrow files and streams with bytes flipped, cut short or with huge length fields: 2xx or 4xx, never a stall', async () => {
    const cases: { body: Uint8Array; type: string }[] = [];
    for (const [body, type] of [
      [arrowFile, ARROW_FILE],
      [arrowStream, ARROW_STREAM],
    ] as const) {
      for (const stride of [1, 3, 7, 13, 31, 61, 97, 127, 257, 1021]) {
        for (const from of [0, 8, 100, 200, 500]) cases.push({ body: flipped(body, stride, from), type });
      }
      for (const cut of truncations(body)) cases.push({ body: cut, type });
      for (const huge of hugeFields(body, 512, 16)) cases.push({ body: huge, type });
    }
    // Bounds what hostile bodies make the server allocate; the budget does not bite here.
    const statuses = await underMemoryBudget('arrow', () => sendAll(cases, 'arrow'));
    // Most mutations break the body; the guard above already checked none was a 5xx or a stall.
    expect(statuses.get(400) ?? 0).toBeGreaterThan(cases.length / 2);
  });

  it('JSON bodies flipped, cut short, deeply nested or holding absurd values: 2xx or 4xx', async () => {
    const deep = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    const cases: { body: Uint8Array | string; type: string }[] = [
      { body: `[{"tensor": ${deep}}]`, type: JSON_TYPE },
      { body: `{"tensor": ${'['.repeat(500_000)}`, type: JSON_TYPE },
      { body: `[{"tensor": [${'1e999,'.repeat(17)}1e999]}]`, type: JSON_TYPE },
      { body: `[{"tensor": [${'true,'.repeat(17)}true]}]`, type: JSON_TYPE },
      { body: `[{"tensor": [${'1e39,'.repeat(17)}1e39]}]`, type: JSON_TYPE },
      { body: `[{"tensor": "${'x'.repeat(1_500_000)}"}]`, type: JSON_TYPE },
      { body: `[{"${'k'.repeat(1_000_000)}": [1]}]`, type: JSON_TYPE },
      { body: `[${'{"tensor":[1]},'.repeat(100_000)}{"tensor":[1]}]`, type: JSON_TYPE },
    ];
    // The same absurd values in a body over the inline size: the decode worker's byte scanner
    // meets them and leaves the body to the general parse, which refuses it.
    const large = jsonLarge.toString();
    const lastRow = large.lastIndexOf('[') + 1;
    for (const value of ['1e999', 'true', '1e39', 'null', '"1"', `1${'0'.repeat(400)}`, '[[[1]]]']) {
      cases.push({ body: `${large.slice(0, lastRow)}${value},${large.slice(lastRow)}`, type: JSON_TYPE });
      cases.push({ body: `${large.slice(0, lastRow)}${value}`, type: JSON_TYPE });
    }
    // Nesting in a body over the inline size, four at once (sendAll's batch): refused from its
    // bytes before the decode worker's parse would build 100 000 levels (≈ 18 MiB each, far over
    // the body's share of the budget).
    for (const value of [deep, '['.repeat(500_000)]) {
      for (let copy = 0; copy < 2; copy++) {
        cases.unshift({
          body: `${large.slice(0, lastRow)}${value},${large.slice(lastRow)}`,
          type: JSON_TYPE,
        });
      }
    }
    for (const body of [jsonSmall, jsonLarge]) {
      for (const stride of [7, 31, 97, 1021]) {
        for (const from of [0, 10, 300]) cases.push({ body: flipped(body, stride, from), type: JSON_TYPE });
      }
      for (const cut of truncations(body)) cases.push({ body: cut, type: JSON_TYPE });
    }
    // Once outside the measurement, as the burst test below does: the first pass of these bodies
    // grows the committed heaps of the HTTP thread and both workers (≈ 25 MB each, mostly young
    // generations widening, which V8 keeps), 53–67 MiB of RSS in all, and the second pass grows
    // 25–32 MiB. What the budget bounds is what the bodies in flight hold, so the measured pass
    // is the second; both passes check every answer.
    await sendAll(cases, 'json, first pass');
    await underMemoryBudget('json', () => sendAll(cases, 'json'));
  });

  it('refuses non-finite, boolean and out-of-range numbers naming the column and row', async () => {
    // 2 rows are parsed on the HTTP thread; 2 000 (over 64 KiB) by the decode worker's scanner.
    for (const rowCount of [2, 2000]) {
      const before = `{"tensor": [${Array(18).fill(0.125).join(',')}]}, `.repeat(rowCount - 1);
      for (const value of ['1e999', '-1e999', 'true', 'false', '1e39', '-1e39']) {
        const body = `[${before}{"tensor": [${Array(17).fill(1).join(',')}, ${value}]}]`;
        const answer = await post(body, JSON_TYPE);
        expect(answer.code, value).toBe('invalid_inference_input');
        expect(answer.message, value).toContain(`Column "tensor" row ${rowCount - 1}`);
      }
    }
  });

  it('per content type: over the cap 413, wrong or missing type 415, empty 400', async () => {
    for (const type of [ARROW_FILE, ARROW_STREAM, JSON_TYPE]) {
      // Declared only: the server answers before the body is sent (so a sender may see EPIPE).
      expect(await declaredOnly(url, type, MAX_BODY + 1), type).toBe(413);
      const empty = await post(Buffer.alloc(0), type);
      expect(empty.status, type).toBe(400);
    }
    expect((await post(arrowFile, 'text/plain')).status).toBe(415);
    expect((await post(arrowFile, 'application/octet-stream')).status).toBe(415);
    expect((await post(arrowFile, null)).status).toBe(415);
    await healthy();
  });

  it('a declared body over the cap of an upload route is refused 413 before it is sent', async () => {
    const workspaces = (await (
      await fetch(`${server.url}/v1/workspaces`, { headers: { authorization: `Bearer ${server.token}` } })
    ).json()) as { id: number }[] | { workspaces: { id: number }[] };
    const list = Array.isArray(workspaces) ? workspaces : workspaces.workspaces;
    const id = list[0]!.id;
    for (const [path, type] of [
      [`/v1/workspaces/${id}/models?name=big`, 'application/octet-stream'],
      [`/v1/workspaces/${id}/orchestrations?name=big`, 'application/zip'],
    ] as const) {
      const status = await declaredOnly(`${server.url}${path}`, type, 2 ** 40);
      expect(status, path).toBe(413);
    }
  });

  it('Open Inference bodies, large or hostile, are read off the HTTP thread: 2xx or 4xx, never a stall', async () => {
    const v2 = `${server.url}/v2/models/hostile/infer`;
    const body = (n: number, extra = ''): string =>
      JSON.stringify({
        inputs: [{ name: 'tensor', shape: [n, 18], datatype: 'FP32', data: rows(n) }],
      }).replace(/}$/, `${extra}}`);
    // Over the 64 KiB read inline: this one goes to a decode worker.
    const large = Buffer.from(body(2000));
    expect(large.length).toBeGreaterThan(64 * 1024);
    expect((await post(large, JSON_TYPE, v2)).status).toBe(200);
    const deep = `${'['.repeat(300_000)}1${']'.repeat(300_000)}`;
    const cases: { body: Uint8Array | string; type: string }[] = [
      {
        body: `{"inputs": [{"name": "tensor", "shape": [1, 18], "datatype": "FP32", "data": ${deep}}]}`,
        type: JSON_TYPE,
      },
      { body: `{"inputs": ${'['.repeat(500_000)}`, type: JSON_TYPE },
      {
        body: body(1, `, "outputs": [${'{"name": "scaled"},'.repeat(100_000)}{"name": "scaled"}]`),
        type: JSON_TYPE,
      },
      { body: body(1).replace('[1,18]', '[1000000000,1000]'), type: JSON_TYPE },
      {
        body: `{"inputs": [{"name": "tensor", "shape": [1, 18], "datatype": "FP32", "data": [${'1e999,'.repeat(17)}1]}]}`,
        type: JSON_TYPE,
      },
      { body: large, type: 'application/octet-stream' },
    ];
    for (const stride of [7, 31, 97, 1021]) {
      for (const from of [0, 10, 300]) cases.push({ body: flipped(large, stride, from), type: JSON_TYPE });
    }
    for (const cut of truncations(large)) cases.push({ body: cut, type: JSON_TYPE });
    for (let i = 0; i < cases.length; i += 4) {
      const answers = await Promise.all(cases.slice(i, i + 4).map((c) => post(c.body, c.type, v2)));
      for (const [k, answer] of answers.entries()) {
        const what = `v2 case ${i + k}: ${answer.status} ${answer.code ?? ''} ${answer.message ?? ''}`;
        expect(answer.status >= 200 && answer.status < 500, what).toBe(true);
        if (answer.status >= 400) expect(answer.message!.length, what).toBeLessThanOrEqual(1024);
      }
      await healthy();
    }
    expect(await declaredOnly(v2, JSON_TYPE, MAX_BODY + 1)).toBe(413);
  });

  it('a chunked body (no length) past the cap is refused 413 while it is read, and its connection closed', async () => {
    for (const target of [url, `${server.url}/v2/models/hostile/infer`]) {
      const answer = await chunkedUntilAnswered(target, JSON_TYPE, 64 * MAX_BODY);
      expect(answer.status, target).toBe(413);
      // Answered once the cap was passed, long before the sender would have stopped.
      expect(answer.sent, target).toBeLessThan(16 * MAX_BODY);
      expect(answer.connection, target).toBe('close');
    }
    await healthy();
  });

  it('a burst of 64 concurrent large bodies per format: 200 or 503, health answers throughout, RSS under the budget', async () => {
    // Bodies just under the 2 MiB cap. What the budget must count is not only the body: its
    // decode (columns, parsed JSON), the model's input copy and the answer are held too.
    const bigArrow = tableToIPC(makeArrowTensorTable(makeHouseRows(28_000, 5), 18), 'file');
    const bigJson = Buffer.from(JSON.stringify(rows(12_000).map((tensor) => ({ tensor }))));
    expect(bigArrow.length).toBeGreaterThan(MAX_BODY * 0.9);
    expect(bigJson.length).toBeGreaterThan(MAX_BODY * 0.75);
    expect(Math.max(bigArrow.length, bigJson.length)).toBeLessThanOrEqual(MAX_BODY);
    const checkAnswers = (answers: Array<{ status: number; code?: string }>, type: string): number => {
      const served = answers.filter((answer) => answer.status === 200).length;
      for (const answer of answers) {
        if (answer.status !== 200) expect([answer.status, answer.code], type).toEqual([503, 'server_busy']);
      }
      expect(served, type).toBeGreaterThan(0);
      return served;
    };
    for (const [body, type] of [
      [bigArrow, ARROW_FILE],
      [bigJson, JSON_TYPE],
    ] as const) {
      // The measured burst sends the 64 requests' headers first and the admitted ones' bodies
      // together (admittedBurst): with the 64 MiB budget 4 Arrow or 5 JSON bodies are in flight
      // at once, without it all 64. Its peak RSS grew 1–37 MiB with the budget (every run green)
      // and 193–399 MiB with the server's budget raised to 1 GiB (every run red), 5 December. Sent as plain
      // concurrent fetches, as before, the budget admits a request whenever an earlier one has
      // been answered, the answered ones' garbage piles up until a collection, and the growth
      // was 6–63 MiB (66 in CI) for Arrow and 1–147 MiB for JSON with the budget, 45–257 and
      // 1–235 MiB without it: no bound told them apart.
      // A server of its own per format: the memory one burst leaves committed (V8 heaps, malloc
      // arenas) would take in the next format's bodies unseen (a JSON burst of 64 without the
      // budget grew 1–43 MiB after the Arrow one).
      const own = await startHostileServer();
      const send = (): Promise<{ status: number; code?: string }> =>
        post(body, type, own.url, own.server.token);
      try {
        // One body, then a first burst of 16, outside the measurement: the decode worker and
        // the model's arena start, and the young generations of the HTTP thread and the workers
        // widen, which V8 keeps, whatever the bodies hold. What the budget bounds is what the
        // bodies in flight hold, so the measured burst is the next.
        expect((await send()).status, type).toBe(200);
        checkAnswers(await Promise.all(Array.from({ length: 16 }, send)), `first burst ${type}`);
        let bursting = true;
        const health: number[] = [];
        let slowest = 0;
        // /v1/health every 50 ms while the burst runs: each must answer 200 within 5 s.
        const probe = (async () => {
          while (bursting) {
            const started = Date.now();
            try {
              const res = await fetch(`${own.server.url}/v1/health`, { signal: AbortSignal.timeout(5_000) });
              await res.arrayBuffer();
              health.push(res.status);
            } catch {
              health.push(0); // no answer within 5 s
            }
            slowest = Math.max(slowest, Date.now() - started);
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (Date.now() - started))));
          }
        })();
        const answers = await underMemoryBudget(
          `burst ${type}`,
          async () => {
            try {
              return await admittedBurst(own.url, own.server.token, type, body, BURST);
            } finally {
              bursting = false;
              await probe;
            }
          },
          own.server.process.pid,
        );
        const served = checkAnswers(answers, type);
        console.log(
          `burst ${type}: ${served}/${BURST} served, ${BURST - served} busy, ${health.length} health checks (slowest ${slowest} ms)`,
        );
        expect(health.length, type).toBeGreaterThan(0);
        expect(
          health.every((status) => status === 200),
          `${type}: ${health.join(',')}`,
        ).toBe(true);
      } finally {
        await stopTestServer(own.server);
      }
    }
  });

  it('bodies past the per-server budget are refused 503 server_busy, and the budget is given back', async () => {
    // Four JSON bodies declaring 2 MiB each count 4 × 16 MiB = the whole 64 MiB budget.
    const held: ClientRequest[] = [];
    for (let i = 0; i < 4; i++) {
      const req = request(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${server.token}`,
          'content-type': JSON_TYPE,
          'content-length': String(MAX_BODY),
        },
      });
      req.on('error', () => undefined);
      req.write('[');
      held.push(req);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const refused = await post(jsonSmall, JSON_TYPE);
    expect(refused.status).toBe(503);
    expect(refused.code).toBe('server_busy');
    for (const req of held) req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await post(jsonSmall, JSON_TYPE)).status).toBe(200);
  });
});

describe('hostile Arrow file footers', () => {
  it('a file listing one record batch 1 000 or 10 000 times is refused 400 invalid_inference_input, health answering meanwhile', async () => {
    // 24 bytes of footer per block: each would count the batch's 64 rows once more.
    const aliased = (blocks: number): Buffer =>
      withRecordBatchBlocks(arrowFile, ([first]) => Array.from({ length: blocks }, () => first!));
    const [few, many] = await Promise.all([
      post(aliased(1_000), ARROW_FILE),
      post(aliased(10_000), ARROW_FILE),
      healthy(),
    ]);
    expect([few.status, few.code], few.message).toEqual([400, 'invalid_inference_input']);
    expect(few.message).toContain('overlaps the block before it');
    expect([many.status, many.code], many.message).toEqual([400, 'invalid_inference_input']);
    expect(many.message).toContain('record batches');
    await healthy();
  });
});

describe('hostile Open Inference shapes', () => {
  it('a shape of 8 000 dimensions is refused 400 invalid_tensor_shape, not a stack overflow', async () => {
    const v2 = `${server.url}/v2/models/hostile/infer`;
    const shape = Array<number>(8000).fill(1);
    const answer = await post(
      JSON.stringify({ inputs: [{ name: 'tensor', shape, datatype: 'FP32', data: [1] }] }),
      JSON_TYPE,
      v2,
    );
    expect([answer.status, answer.code], answer.message).toEqual([400, 'invalid_tensor_shape']);
    await healthy();
  });
});

describe('hostile content types', () => {
  it('a text/plain (or other unsupported) body is refused 415 before it is read', async () => {
    // Declared only, within the caps: a parser for the type would wait for the body; none answers.
    const answerTo = (type: string): Promise<number | string> =>
      new Promise((resolve, reject) => {
        const req = request(url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${server.token}`,
            'content-type': type,
            'content-length': String(MAX_BODY),
          },
        });
        const timer = setTimeout(() => {
          resolve('no answer within 5 s');
          req.destroy();
        }, 5_000);
        req.on('response', (res) => {
          clearTimeout(timer);
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        req.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        req.flushHeaders();
      });
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/octet-stream']) {
      expect(await answerTo(type), type).toBe(415);
    }
    await healthy();
  });
});

describe('bodies that trickle', () => {
  // A server of its own with a 1 s idle timeout (the grace before the 16 KiB/s minimum rate too)
  // and a budget one declared 2 MiB JSON body fills (2 MiB × 8 = 16 MiB).
  const IDLE_MS = 1000;
  let slow: TestServer;
  let slowUrl: string;

  beforeAll(async () => {
    slow = await startTestServer({
      env: {
        QUOLL_MAX_INFERENCE_BYTES: String(MAX_BODY),
        QUOLL_MAX_INFLIGHT_BODY_BYTES: String(8 * MAX_BODY),
        QUOLL_BODY_IDLE_TIMEOUT_MS: String(IDLE_MS),
        QUOLL_BODY_MIN_RATE: '16 KiB',
        QUOLL_INFERENCE_LOGS: 'off',
      },
    });
    const model = makeScaleModel({ inputName: 'tensor', width: 18, factor: 2 });
    slowUrl = (await deployModelPipeline(slow.client(), 'trickle', 'scale', model)).url();
  });

  afterAll(() => stopTestServer(slow));

  async function postTo(body: Uint8Array): Promise<{ status: number; code?: string }> {
    const res = await fetch(slowUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${slow.token}`, 'content-type': JSON_TYPE },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return res.status < 400
      ? { status: res.status }
      : { status: res.status, code: (JSON.parse(text) as ErrorBody).error.code };
  }

  /**
   * Declares `declared` bytes, then sends `chunk` every `everyMs` until the server answers or
   * closes the connection, or `giveUpMs` passes: the status (0 = closed unanswered, -1 = neither)
   * and how long it took.
   */
  function trickle(
    target: string,
    type: string,
    declared: number,
    chunk: Buffer,
    everyMs: number,
    giveUpMs: number,
  ): Promise<{ status: number; code?: string; ms: number }> {
    return new Promise((resolve) => {
      const start = performance.now();
      let settled = false;
      const settle = (status: number, code?: string): void => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        clearTimeout(giveUp);
        req.destroy();
        resolve({ status, ...(code === undefined ? {} : { code }), ms: performance.now() - start });
      };
      const giveUp = setTimeout(() => settle(-1), giveUpMs);
      const req = request(target, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${slow.token}`,
          'content-type': type,
          'content-length': String(declared),
        },
      });
      req.on('response', (res) => {
        errorCodeOf(res).then(
          (code) => settle(res.statusCode ?? 0, code),
          () => settle(0),
        );
      });
      req.on('error', () => settle(0));
      req.on('close', () => setTimeout(() => settle(0), 200));
      let sent = 0;
      const send = (): void => {
        const part = chunk.subarray(0, Math.min(chunk.length, declared - sent));
        if (part.length === 0) return;
        sent += part.length;
        req.write(part);
      };
      send();
      // Declared last: `settle` reads it only from events, which come later.
      const timer = setInterval(send, everyMs);
    });
  }

  it('a body trickling one byte at a time holding the whole budget is cut 408, and inference is served again', async () => {
    // Like the live probe: a 2 MiB JSON body declared (the whole budget), then one byte at a time.
    const trickling = trickle(slowUrl, JSON_TYPE, MAX_BODY, Buffer.from('['), 300, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const meanwhile = await postTo(jsonSmall);
    expect(meanwhile.code, 'the trickler holds the budget at first').toBe('server_busy');
    const cut = await trickling;
    expect(cut.status, `answered after ${Math.round(cut.ms)} ms`).toBe(408);
    expect(cut.code).toBe('request_timeout');
    // Grace (1 s) + a sweep (250 ms) + the answer, with room for a loaded machine.
    expect(cut.ms).toBeLessThan(6000);
    expect((await postTo(jsonSmall)).status).toBe(200);
  });

  it('a body that stops sending is cut 408 after the idle timeout, on an upload route too', async () => {
    const workspaces = (await (
      await fetch(`${slow.url}/v1/workspaces`, { headers: { authorization: `Bearer ${slow.token}` } })
    ).json()) as { id: number }[] | { workspaces: { id: number }[] };
    const id = (Array.isArray(workspaces) ? workspaces : workspaces.workspaces)[0]!.id;
    for (const [target, type] of [
      [slowUrl, JSON_TYPE],
      [`${slow.url}/v2/models/trickle/infer`, JSON_TYPE],
      [`${slow.url}/v1/workspaces/${id}/models?name=stalled`, 'application/octet-stream'],
      [`${slow.url}/v1/workspaces/${id}/orchestrations?name=stalled`, 'application/zip'],
    ] as const) {
      // 64 KiB at once, then nothing (the interval outlives the deadline).
      const cut = await trickle(target, type, 1024 * 1024, Buffer.alloc(64 * 1024, 0x5b), 60_000, 15_000);
      expect(cut.status, `${target}: after ${Math.round(cut.ms)} ms`).toBe(408);
      expect(cut.ms, target).toBeLessThan(6000);
    }
    expect((await postTo(jsonSmall)).status).toBe(200);
  });

  it('a slow but steady body above the minimum rate is served', async () => {
    // About 300 KiB in 8 KiB parts every 100 ms (≈ 80 KiB/s, 5× the minimum): some 4 s, past the grace.
    const body = jsonLarge;
    const answer = await new Promise<{ status: number; ms: number }>((resolve, reject) => {
      const start = performance.now();
      const req = request(slowUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${slow.token}`,
          'content-type': JSON_TYPE,
          'content-length': String(body.length),
        },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
      });
      req.on('error', reject);
      let at = 0;
      const send = (): void => {
        const part = body.subarray(at, at + 8 * 1024);
        at += part.length;
        if (at >= body.length) req.end(part);
        else req.write(part, () => setTimeout(send, 100));
      };
      send();
    });
    expect(answer.ms, 'took longer than the grace').toBeGreaterThan(2 * IDLE_MS);
    expect(answer.status).toBe(200);
  });
});

describe('answers read too slowly', () => {
  // A server of its own with a 2 s answer idle timeout (the grace before the minimum rate too)
  // and a budget one Arrow body of some 8 MiB fills; its answer (inputs and outputs, some 16 MiB)
  // is more than the kernel's buffers of a loopback connection take. The minimum rate is raised
  // to 8 MiB/s: on loopback the kernel takes a reader's bytes a megabyte or so at a time, so a
  // reader that moves the answer at all within the idle timeout is faster than the default.
  const IDLE_MS = 2000;
  const body = tableToIPC(makeArrowTensorTable(makeHouseRows(120_000, 7), 18), 'file');
  let slow: TestServer;
  let slowUrl: URL;

  beforeAll(async () => {
    slow = await startTestServer({
      env: {
        QUOLL_MAX_INFERENCE_BYTES: String(16 * 1024 * 1024),
        QUOLL_MAX_INFLIGHT_BODY_BYTES: String(8 * body.length),
        QUOLL_ANSWER_IDLE_TIMEOUT_MS: String(IDLE_MS),
        QUOLL_ANSWER_MIN_RATE: '8 MiB',
        QUOLL_INFERENCE_LOGS: 'off',
      },
    });
    const model = makeScaleModel({ inputName: 'tensor', width: 18, factor: 2 });
    slowUrl = new URL((await deployModelPipeline(slow.client(), 'sipping', 'scale', model)).url());
  });

  afterAll(() => stopTestServer(slow));

  async function postSmall(): Promise<{ status: number; code?: string }> {
    const res = await fetch(slowUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${slow.token}`, 'content-type': JSON_TYPE },
      body: jsonSmall,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return res.status < 400
      ? { status: res.status }
      : { status: res.status, code: (JSON.parse(text) as ErrorBody).error.code };
  }

  /**
   * Posts the large body on a raw connection, then reads at most `bytes` of the answer every
   * `everyMs`. Checks the answer holds the budget at first, that it is cut (a small inference
   * served again within a bound) and what the server logged about it: that log's new lines.
   */
  async function sippedUntilCut(everyMs: number, bytes: number): Promise<string> {
    const logFrom = slow.output().length;
    const client = connect(Number(slowUrl.port), slowUrl.hostname);
    client.on('error', () => undefined);
    client.pause();
    client.write(
      `POST ${slowUrl.pathname} HTTP/1.1\r\nHost: ${slowUrl.host}\r\nAuthorization: Bearer ${slow.token}\r\n` +
        `Content-Type: ${ARROW_FILE}\r\nAccept: ${ARROW_FILE}\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    client.write(body);
    // The answer has begun (its first bytes have come): the budget is held by it.
    await new Promise((resolve) => client.once('readable', resolve));
    let read = '';
    const sipping = setInterval(() => {
      const chunk = client.read(Math.min(bytes, client.readableLength)) as Buffer | null;
      if (chunk !== null && read.length < 15) read += chunk.toString('latin1', 0, 15);
    }, everyMs);
    try {
      expect(await postSmall(), 'the slow reader holds the budget at first').toEqual({
        status: 503,
        code: 'server_busy',
      });
      // Cut: the grace (2 s) + a sweep (500 ms), with room for a loaded machine.
      const start = performance.now();
      let served = await postSmall();
      while (served.status !== 200 && performance.now() - start < 20_000) {
        await new Promise((r) => setTimeout(r, 200));
        served = await postSmall();
      }
      const ms = Math.round(performance.now() - start);
      expect(served.status, `still ${served.code ?? served.status} after ${ms} ms`).toBe(200);
      // It was being read from the start of a 200.
      expect(read.length).toBeGreaterThan(0);
      expect('HTTP/1.1 200 OK'.slice(0, read.length)).toBe(read.slice(0, 15));
      return slow.output().slice(logFrom);
    } finally {
      clearInterval(sipping);
      client.destroy();
    }
  }

  it('a client reading one byte of a large answer every 300 ms is cut, and inference is served again', async () => {
    // On loopback the kernel takes nothing more of the answer from such a reader, so the idle
    // timeout or the minimum rate cuts it, whichever comes first.
    expect(await sippedUntilCut(300, 1)).toMatch(/answer (unread|read too slowly)/);
  });

  it('a client that takes some of the answer every idle period, below the minimum rate, is cut', async () => {
    // 64 KiB every 50 ms (under 1.25 MiB/s, well under the 8 MiB/s minimum): the kernel takes
    // more of the answer every second or so, so the idle timeout never comes. Before the minimum
    // rate, such a reader held the answer and the budget for as long as its reading took.
    const log = await sippedUntilCut(50, 64 * 1024);
    expect(log).toMatch(/"why":"slow"[^\n]*answer read too slowly/);
  });
});
