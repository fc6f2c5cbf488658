import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { makeArrowTensorTable } from '../support/synthetic-data.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// A large answer is written without stalling the server: while a request of a million rows is
// answered (JSON or Arrow, Quoll's /v1 route and the Open Inference /v2 route), /v1/health keeps
// answering. Before answers were encoded in slices that yield to the event loop, one JSON answer
// of a million rows was built and stringified on the HTTP thread in one go and kept /v1/health
// from answering for about 7 s (load 3.4 on two cores).

const ROWS = 1_000_000;
const WIDTH = 2;
/**
 * Far above one slice of encoding (milliseconds), well below the stall of one whole answer. The
 * inference log's hand-off of the rows (a few hundred ms in one go on a loaded machine before) is
 * packed in slices too (`logs/log-hand-off.large-append.test.ts`).
 */
const HEALTH_BOUND_MS = 3_000;

let server: TestServer;
let url: string;

beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_MAX_INFERENCE_BYTES: String(512 * 1024 ** 2) } });
  const model = makeScaleModel({ inputName: 'tensor', width: WIDTH, factor: 2 });
  url = (await deployModelPipeline(server.client(), 'large', 'scale', model)).url();
});

afterAll(() => stopTestServer(server));

/** An answer, and how /v1/health fared while it was written. */
interface AnsweredMeanwhile {
  status: number;
  body: Buffer;
  /** The slowest health answer seen meanwhile. */
  slowestHealthMs: number;
  /** How many health answers were seen. */
  checks: number;
  /** How long the request took, from sending it to its whole answer. */
  answerMs: number;
}

/**
 * Sends one request and polls /v1/health every 20 ms until it is answered: the answer's status
 * and body, and the slowest health answer seen meanwhile.
 */
async function whileAnswered(
  target: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
): Promise<AnsweredMeanwhile> {
  let done = false;
  let slowest = 0;
  let checks = 0;
  const poll = (async () => {
    while (!done) {
      const started = performance.now();
      const res = await fetch(`${server.url}/v1/health`, { signal: AbortSignal.timeout(60_000) });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      slowest = Math.max(slowest, performance.now() - started);
      checks++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const sent = performance.now();
  try {
    const res = await fetch(target, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, ...headers },
      body,
      signal: AbortSignal.timeout(110_000),
    });
    const answer = Buffer.from(await res.arrayBuffer());
    return {
      status: res.status,
      body: answer,
      slowestHealthMs: slowest,
      checks,
      answerMs: performance.now() - sent,
    };
  } finally {
    done = true;
    await poll;
  }
}

/** Logs how /v1/health fared while `what` was answered, and checks the answer is a 200. */
function expectAnswered(what: string, answer: AnsweredMeanwhile): void {
  console.log(
    `${what}: health slowest ${answer.slowestHealthMs.toFixed(0)} ms over ${answer.checks} checks, answer ${answer.answerMs.toFixed(0)} ms`,
  );
  expect(answer.status, answer.body.subarray(0, 300).toString()).toBe(200);
}

/** An Arrow answer holds every row, the last one's input doubled. */
function expectArrowRows(body: Buffer): void {
  const table = tableFromIPC(body);
  expect(table.numRows).toBe(ROWS);
  expect([...(table.getChild('out.scaled')!.get(ROWS - 1) as Iterable<number>)]).toEqual([
    2 * (ROWS - 1),
    2 * ((ROWS - 1) % 7),
  ]);
}

function jsonBody(): string {
  const parts: string[] = [];
  for (let i = 0; i < ROWS; i++) parts.push(`{"tensor":[${i},${i % 7}]}`);
  return `[${parts.join(',')}]`;
}

function tensorValues(): Float32Array {
  const values = new Float32Array(ROWS * WIDTH);
  for (let i = 0; i < ROWS; i++) {
    values[i * WIDTH] = i;
    values[i * WIDTH + 1] = i % 7;
  }
  return values;
}

describe('a million-row answer', () => {
  it('JSON records in, JSON out: /v1/health answers meanwhile', async () => {
    const answer = await whileAnswered(url, jsonBody(), { 'content-type': 'application/json' });
    expectAnswered('json→json', answer);
    const records = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>[];
    expect(records).toHaveLength(ROWS);
    expect(records[ROWS - 1]!['in.tensor']).toEqual([ROWS - 1, (ROWS - 1) % 7]);
    expect(records[ROWS - 1]!['out.scaled']).toEqual([2 * (ROWS - 1), 2 * ((ROWS - 1) % 7)]);
    expect(answer.slowestHealthMs).toBeLessThan(HEALTH_BOUND_MS);
  });

  it('JSON records in, Arrow stream out: /v1/health answers meanwhile', async () => {
    const answer = await whileAnswered(url, jsonBody(), {
      'content-type': 'application/json',
      accept: ARROW_STREAM,
    });
    expectAnswered('json→arrow', answer);
    expectArrowRows(answer.body);
    expect(answer.slowestHealthMs).toBeLessThan(HEALTH_BOUND_MS);
  });

  it('Arrow file in, Arrow file out: /v1/health answers meanwhile', async () => {
    const body = tableToIPC(makeArrowTensorTable(tensorValues(), WIDTH), 'file');
    const answer = await whileAnswered(url, body, { 'content-type': ARROW_FILE });
    expectAnswered('arrow→arrow', answer);
    expectArrowRows(answer.body);
    expect(answer.slowestHealthMs).toBeLessThan(HEALTH_BOUND_MS);
  });

  it('Open Inference JSON in and out: /v1/health answers meanwhile', async () => {
    const values = tensorValues();
    const body = `{"inputs":[{"name":"tensor","shape":[${ROWS},${WIDTH}],"datatype":"FP32","data":[${values.join(',')}]}]}`;
    const answer = await whileAnswered(`${server.url}/v2/models/large/infer`, body, {
      'content-type': 'application/json',
    });
    expectAnswered('v2 json', answer);
    const parsed = JSON.parse(answer.body.toString('utf8')) as {
      outputs: { name: string; shape: number[]; data: number[] }[];
    };
    expect(parsed.outputs[0]!.shape).toEqual([ROWS, WIDTH]);
    expect(parsed.outputs[0]!.data).toHaveLength(ROWS * WIDTH);
    expect(parsed.outputs[0]!.data.slice(-2)).toEqual([2 * (ROWS - 1), 2 * ((ROWS - 1) % 7)]);
    expect(answer.slowestHealthMs).toBeLessThan(HEALTH_BOUND_MS);
  });
});

const ARROW_FILE = 'application/vnd.apache.arrow.file';
const ARROW_STREAM = 'application/vnd.apache.arrow.stream';
