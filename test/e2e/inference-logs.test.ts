import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  parseDataSize,
  ValidationError,
  type Client,
  type InferenceRecord,
  type LogRecord,
  type Pipeline,
} from '@quoll/client';
import { makeArrowTensorTable, makeHouseRows } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { CLI, startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

const MODEL = makeTreeEnsembleRegressor({ features: 18, trees: 3, depth: 3, seed: 4 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let server: TestServer;
let client: Client;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  dir = await mkdtemp(join(tmpdir(), 'quoll-logs-e2e-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await stopTestServer(server);
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Captures what the SDK prints to stderr while `fn` runs. */
async function stderrOf<T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> {
  let text = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  });
  try {
    return { value: await fn(), stderr: text };
  } finally {
    spy.mockRestore();
  }
}

async function deploy(c: Client, name: string, tensorFields?: string[]): Promise<Pipeline> {
  let model = await c.uploadModel(`${name}-model`, MODEL);
  if (tensorFields) model = await model.configure({ tensorFields });
  const pipeline = await c.buildPipeline(name);
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  return pipeline;
}

let newest: Promise<Pipeline> | null = null;

/**
 * The pipeline several tests read: 150 logged rows tagged 0 … 149, made by whichever test asks
 * first, so no test depends on another having run before it.
 */
function newestPipeline(): Promise<Pipeline> {
  newest ??= (async () => {
    const p = await deploy(client, 'newest', ['tensor']);
    for (let r = 0; r < 3; r++) await p.infer(tagged(r * 50, 50));
    return p;
  })();
  return newest;
}

let ranges: Promise<{ p: Pipeline; times: number[] }> | null = null;

/** Fifteen rows in five requests of three (tags 0 … 14), each request at its own time. */
function rangesPipeline(): Promise<{ p: Pipeline; times: number[] }> {
  ranges ??= (async () => {
    const p = await deploy(client, 'ranges', ['tensor']);
    // A few ms apart so each request has its own time.
    for (let r = 0; r < 5; r++) {
      await p.infer(tagged(r * 3, 3));
      await sleep(15);
    }
    const all = await p.logs({ limit: 1000 });
    return { p, times: [...new Set(all.map((r) => r.time as number))].sort((a, b) => a - b) };
  })();
  return ranges;
}

let schemas: Promise<{ p: Pipeline; start: number; end: number }> | null = null;

/** Two JSON rows (tags 0, 1), then five Arrow rows of another schema (features 100 … 104). */
function schemasPipeline(): Promise<{ p: Pipeline; start: number; end: number }> {
  schemas ??= (async () => {
    // No tensorFields: a single-input model takes its single column whatever its name.
    const p = await deploy(client, 'schemas');
    const start = Date.now() - 1;
    await p.infer(tagged(0, 1));
    await p.infer(tagged(1, 1));
    const values = makeHouseRows(5, 9);
    for (let i = 0; i < 5; i++) values[i * 18] = 100 + i;
    await p.infer(makeArrowTensorTable(values, 18, 'features'));
    return { p, start, end: Date.now() + 1 };
  })();
  return schemas;
}

/** `n` JSON records whose first feature is `first`, `first + 1`, … (a row id the test can find again). */
function tagged(first: number, n: number): InferenceRecord[] {
  const base = Array.from(makeHouseRows(1, 3));
  return Array.from({ length: n }, (_, i) => ({ tensor: [first + i, ...base.slice(1)] }));
}

const tagOf = (r: LogRecord): number => (r['in.tensor'] as number[])[0] ?? NaN;
const tagsOfTable = (t: Table, column = 'in.tensor'): number[] =>
  Array.from({ length: t.numRows }, (_, i) =>
    Number((t.getChild(column)?.get(i) as { get(j: number): number } | null)?.get(0)),
  );

async function httpLogs(
  p: Pipeline,
  query: Record<string, string>,
  accept = 'application/json',
): Promise<Response> {
  const u = new URL(`${server.url}/v1/workspaces/${p.workspaceId}/pipelines/${p.name}/logs`);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return fetch(u, { headers: { authorization: `Bearer ${server.token}`, accept } });
}

describe('logs() without a range', () => {
  it('returns the newest 100 rows newest first, says more exist, and honours limit', async () => {
    const p = await newestPipeline();

    const { value: logs, stderr } = await stderrOf(() => p.logs());
    expect(logs).toHaveLength(100);
    expect(logs.map(tagOf)).toEqual(Array.from({ length: 100 }, (_, i) => 149 - i));
    expect(Object.keys(logs[0] ?? {})).toEqual(['time', 'in.tensor', 'out.variable', 'check_failures']);
    expect(typeof logs[0]?.time).toBe('number');
    expect(logs.moreAvailable).toBe(true);
    expect(logs.truncated).toBe(false);
    expect(stderr).toContain('There are more logs available');
    expect(stderr).toContain('exportLogs');

    const ten = await p.logs({ limit: 10 });
    expect(ten.map(tagOf)).toEqual([149, 148, 147, 146, 145, 144, 143, 142, 141, 140]);

    const { value: all, stderr: quiet } = await stderrOf(() => p.logs({ limit: 1000 }));
    expect(all).toHaveLength(150);
    expect(all.moreAvailable).toBe(false);
    expect(quiet).toBe('');

    const table = await p.logs({ limit: 5, arrow: true });
    expect(table.numRows).toBe(5);
    expect(table.schema.fields.map((f) => f.name)).toEqual([
      'time',
      'in.tensor',
      'out.variable',
      'check_failures',
    ]);
    expect(tagsOfTable(table)).toEqual([149, 148, 147, 146, 145]);
  });
});

describe('logs({ start, end })', () => {
  let p: Pipeline;
  let times: number[];

  beforeAll(async () => {
    ({ p, times } = await rangesPipeline());
  });

  it('includes both ends of the range and returns rows oldest first', async () => {
    expect(times).toHaveLength(5);
    const [t0, t1, t2, t3, t4] = times as [number, number, number, number, number];
    const mid = await p.logs({ start: t1, end: t3 });
    expect(mid.map(tagOf)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(mid.every((r) => (r.time as number) >= t1 && (r.time as number) <= t3)).toBe(true);
    // A range of one instant is that request's rows.
    expect((await p.logs({ start: t2, end: t2 })).map(tagOf)).toEqual([6, 7, 8]);
    // Dates and RFC 3339 strings mean the same instants.
    const asDates = await p.logs({ start: new Date(t1), end: new Date(t3).toISOString() });
    expect(asDates.map(tagOf)).toEqual(mid.map(tagOf));
    // Just inside the neighbours' times excludes them.
    expect((await p.logs({ start: t0 + 1, end: t4 - 1 })).map(tagOf)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // limit keeps the oldest rows of the range.
    expect((await p.logs({ start: t0, end: t4, limit: 4 })).map(tagOf)).toEqual([0, 1, 2, 3]);
  });

  it('returns an empty result for a window without rows', async () => {
    const empty = await p.logs({ start: 0, end: 1000 });
    expect(empty).toEqual([]);
    expect(empty.truncated).toBe(false);
    const emptyTable = await p.logs({ start: 0, end: 1000, arrow: true });
    expect(emptyTable.numRows).toBe(0);
  });

  it('refuses start without end (and the reverse) in the SDK, before any request', async () => {
    for (const opts of [{ start: 0 }, { end: Date.now() }]) {
      const err = await p.logs(opts).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      // Status 0: the SDK refused it; the server never saw the request.
      expect(err).toMatchObject({ code: 'invalid_time_range', status: 0 });
      await expect(p.exportLogs({ ...opts, directory: join(dir, 'never') })).rejects.toMatchObject({
        code: 'invalid_time_range',
        status: 0,
      });
    }
    await expect(p.logs({ start: 'yesterday-ish', end: Date.now() })).rejects.toMatchObject({
      code: 'invalid_time_range',
    });
    await expect(p.logs({ start: 10, end: 5 })).rejects.toMatchObject({ code: 'invalid_time_range' });
  });

  it('HTTP: pages with the cursor in both orders, answers Arrow or JSON, and reports its flags in headers', async () => {
    const [t0, , , , t4] = times as [number, number, number, number, number];
    for (const order of ['asc', 'desc'] as const) {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await httpLogs(p, {
          start: String(t0),
          end: new Date(t4).toISOString(),
          order,
          limit: '4',
          ...(cursor ? { cursor } : {}),
        });
        expect(res.status).toBe(200);
        const body = (await res.json()) as {
          records: LogRecord[];
          rows: number;
          truncated: boolean;
          nextCursor: string | null;
        };
        expect(res.headers.get('x-quoll-rows')).toBe(String(body.rows));
        expect(res.headers.get('x-quoll-next-cursor')).toBe(body.nextCursor);
        seen.push(...body.records.map(tagOf));
        cursor = body.nextCursor;
        pages++;
      } while (cursor !== null && pages < 20);
      const want = Array.from({ length: 15 }, (_, i) => i);
      expect(seen).toEqual(order === 'asc' ? want : want.reverse());
    }

    const arrowRes = await httpLogs(
      p,
      { start: String(t0), end: String(t4) },
      'application/vnd.apache.arrow.stream',
    );
    expect(arrowRes.headers.get('content-type')).toContain('application/vnd.apache.arrow.stream');
    expect(arrowRes.headers.get('x-quoll-truncated')).toBe('false');
    expect(arrowRes.headers.get('x-quoll-next-cursor')).toBeNull();
    const table = tableFromIPC(new Uint8Array(await arrowRes.arrayBuffer()));
    expect(tagsOfTable(table)).toEqual(Array.from({ length: 15 }, (_, i) => i));

    // A byte cap of one row's worth cuts the page and says so.
    const cut = await httpLogs(p, { start: String(t0), end: String(t4), maxBytes: '200' });
    const cutBody = (await cut.json()) as { rows: number; truncated: boolean; nextCursor: string | null };
    expect(cut.headers.get('x-quoll-truncated')).toBe('true');
    expect(cutBody.truncated).toBe(true);
    expect(cutBody.rows).toBeGreaterThanOrEqual(1);
    expect(cutBody.rows).toBeLessThan(15);
    expect(cutBody.nextCursor).not.toBeNull();
  });

  it('HTTP: columns answers only the named columns and prefixes, in the page order, as Arrow and JSON', async () => {
    const [t0, , , , t4] = times as [number, number, number, number, number];
    const all = tableFromIPC(
      new Uint8Array(
        await (
          await httpLogs(p, { start: String(t0), end: String(t4) }, 'application/vnd.apache.arrow.stream')
        ).arrayBuffer(),
      ),
    );
    const names = all.schema.fields.map((f) => f.name);
    expect(names).toContain('in.tensor');
    const outs = names.filter((n) => n.startsWith('out.'));
    expect(outs.length).toBeGreaterThan(0);
    // Asked out of order, with a name this schema lacks: page order, the unknown name skipped.
    const res = await httpLogs(
      p,
      { start: String(t0), end: String(t4), columns: 'out.*, nosuch,time' },
      'application/vnd.apache.arrow.stream',
    );
    expect(res.status).toBe(200);
    const narrow = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    expect(narrow.schema.fields.map((f) => f.name)).toEqual(['time', ...outs]);
    expect(narrow.numRows).toBe(all.numRows);
    expect(res.headers.get('x-quoll-rows')).toBe(String(all.numRows));
    const json = (await (
      await httpLogs(p, { start: String(t0), end: String(t4), columns: 'in.tensor' })
    ).json()) as { records: LogRecord[] };
    expect(json.records.map((r) => Object.keys(r))).toEqual(json.records.map(() => ['in.tensor']));
    expect(json.records.map(tagOf)).toEqual(Array.from({ length: 15 }, (_, i) => i));
  });

  it('HTTP: refuses bad parameters with catalogue codes', async () => {
    const cases: [Record<string, string>, number, string][] = [
      [{ start: '1' }, 400, 'invalid_time_range'],
      [{ start: 'noon', end: '2' }, 400, 'invalid_time_range'],
      [{ start: '10', end: '5' }, 400, 'invalid_time_range'],
      [{ limit: '0' }, 400, 'invalid_request'],
      [{ order: 'sideways' }, 400, 'invalid_request'],
      [{ cursor: 'not-a-cursor' }, 400, 'invalid_request'],
      [{ maxBytes: '-3' }, 400, 'invalid_request'],
      [{ columns: 'time,,out.*' }, 400, 'invalid_request'],
      [{ columns: '*' }, 400, 'invalid_request'],
    ];
    for (const [query, status, code] of cases) {
      const res = await httpLogs(p, query);
      expect(res.status, JSON.stringify(query)).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    const missing = await fetch(
      `${server.url}/v1/workspaces/${p.workspaceId}/pipelines/nosuchpipeline/logs`,
      {
        headers: { authorization: `Bearer ${server.token}` },
      },
    );
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('pipeline_not_found');
    const notAcceptable = await httpLogs(p, {}, 'text/csv');
    expect(notAcceptable.status).toBe(406);
  });

  it('HTTP: maxBytes above 64 MiB is invalid_request naming the cap', async () => {
    const res = await httpLogs(p, { maxBytes: String(64 * 1024 * 1024 + 1) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.message).toContain('67108864');
    expect((await httpLogs(p, { maxBytes: String(64 * 1024 * 1024) })).status).toBe(200);
  });

  it('HTTP: Accept is matched case-insensitively, by q-value, then by order', async () => {
    const typeOf = async (accept: string): Promise<string | null> =>
      (await httpLogs(p, { limit: '1' }, accept)).headers.get('content-type');
    expect(await typeOf('Application/Vnd.Apache.Arrow.Stream')).toContain(
      'application/vnd.apache.arrow.stream',
    );
    expect(await typeOf('application/json;q=0.5, application/vnd.apache.arrow.file')).toContain(
      'application/vnd.apache.arrow.file',
    );
    expect(await typeOf('application/vnd.apache.arrow.stream, */*')).toContain(
      'application/vnd.apache.arrow.stream',
    );
  });
});

describe('the 10 MB size cap', () => {
  it('cuts a large result, flags it and warns naming exportLogs; exportLogs gets every row', async () => {
    const p = await deploy(client, 'bigpipe', ['tensor']);
    const start = Date.now() - 1;
    const batches = 7;
    const perBatch = 20_000;
    for (let b = 0; b < batches; b++) {
      const values = makeHouseRows(perBatch, b + 1);
      for (let i = 0; i < perBatch; i++) values[i * 18] = b * perBatch + i;
      await p.infer(makeArrowTensorTable(values, 18));
    }
    const end = Date.now() + 1;
    const { value: cut, stderr } = await stderrOf(() => p.logs({ start, end, arrow: true }));
    expect(cut.truncated).toBe(true);
    expect(cut.numRows).toBeGreaterThan(0);
    expect(cut.numRows).toBeLessThan(batches * perBatch);
    // Oldest first, from the first row, without gaps.
    const tags = tagsOfTable(cut);
    expect(tags[0]).toBe(0);
    expect(tags.at(-1)).toBe(cut.numRows - 1);
    expect(stderr).toContain('Pipeline log size limit exceeded');
    expect(stderr).toContain('exportLogs');

    const { value: summary } = await stderrOf(() =>
      p.exportLogs({ directory: join(dir, 'big'), start, end, arrow: true }),
    );
    expect(summary).toMatchObject({
      rows: batches * perBatch,
      truncated: false,
      files: [join(dir, 'big', 'bigpipe-1.arrow')],
    });
    const exported = tableFromIPC(await readFile(join(dir, 'big', 'bigpipe-1.arrow')));
    expect(exported.numRows).toBe(batches * perBatch);
    const exportedTags = tagsOfTable(exported);
    expect(exportedTags.every((t, i) => t === i)).toBe(true);
  });
});

describe('JSON bodies decoded in the model worker (64 KiB to 1 MiB)', () => {
  it('answers every row exactly as sent, logs the float32 values the model received, while the echoed columns go back to the worker between requests', async () => {
    const p = await deploy(client, 'lent', ['tensor']);
    const base = Array.from(makeHouseRows(1, 5)).slice(1);
    // Request r: 600 rows tagged r * 1000 + row (+ 0.1: float32 cannot hold it, so the answer's
    // echo shows the number as sent and the log the model's float32), the rest per request.
    const body = (r: number): { tensor: number[] }[] =>
      Array.from({ length: 600 }, (_, row) => ({
        tensor: [r * 1000 + row + 0.1, ...base.map((v) => v + r / 7)],
      }));
    expect(JSON.stringify(body(0)).length).toBeGreaterThan(64 * 1024);
    const start = Date.now() - 1;
    const requests = 32;
    // Eight at a time, so answers, log hand-offs and the reuse of released buffers interleave.
    for (let wave = 0; wave < requests; wave += 8) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, k) => {
          const sent = body(wave + k);
          const answer = await p.infer(sent);
          expect(answer.map((r) => r['in.tensor'])).toEqual(sent.map((r) => r.tensor));
        }),
      );
    }
    const logged = await p.logs({ start, end: Date.now() + 1, arrow: true });
    expect(logged.numRows).toBe(requests * 600);
    const column = logged.getChild('in.tensor')!;
    expect(String(column.type)).toBe('FixedSizeList[18]<Float32>');
    const byTag = new Map<number, number[]>();
    for (let i = 0; i < logged.numRows; i++) {
      const row = [...(column.get(i) as { toArray(): Float32Array }).toArray()];
      byTag.set(row[0]!, row);
    }
    // Every tag is still its own in float32 (under 2^15, to 1/512).
    expect(byTag.size).toBe(requests * 600);
    for (let r = 0; r < requests; r++)
      for (const record of body(r))
        expect(byTag.get(Math.fround(record.tensor[0]!))).toEqual(record.tensor.map((v) => Math.fround(v)));
  });
});

describe('the logged inputs are what the float32 model received', () => {
  it('JSON records read on the request thread and decoded in the model worker log one Float32 schema', async () => {
    const p = await deploy(client, 'onefloat', ['tensor']);
    const start = Date.now() - 1;
    const row = (tag: number): number[] => [tag + 0.1, ...Array.from(makeHouseRows(1, 11)).slice(1)];
    // Small (read on the request thread), then 64 KiB to 1 MiB (decoded in the model worker).
    await p.infer([{ tensor: row(1) }]);
    const big = Array.from({ length: 700 }, (_, i) => ({ tensor: row(1000 + i) }));
    expect(JSON.stringify(big).length).toBeGreaterThan(64 * 1024);
    await p.infer(big);
    const end = Date.now() + 1;
    const { value: logged, stderr } = await stderrOf(() => p.logs({ start, end, limit: 1000 }));
    expect(logged.schemaChanged).toBe(false);
    expect(stderr).not.toContain('schema has changed');
    expect(logged.length).toBe(701);
    expect(logged[0]!['in.tensor']).toEqual(row(1).map((v) => Math.fround(v)));
    expect(logged[1]!['in.tensor']).toEqual(row(1000).map((v) => Math.fround(v)));
    expect(logged[700]!['in.tensor']).toEqual(row(1699).map((v) => Math.fround(v)));
    const table = await p.logs({ start, end, limit: 1000, arrow: true });
    expect(String(table.getChild('in.tensor')!.type)).toBe('FixedSizeList[18]<Float32>');
  });
});

describe('schema changes', () => {
  let p: Pipeline;
  let start: number;
  let end: number;

  beforeAll(async () => {
    ({ p, start, end } = await schemasPipeline());
  });

  it('keeps schemas apart and says when a query crosses a change', async () => {
    const { value: newest, stderr } = await stderrOf(() => p.logs());
    // Newest first: the Arrow rows, then the change to the JSON rows' schema.
    expect(newest.map((r) => (r['in.features'] as number[])[0])).toEqual([104, 103, 102, 101, 100]);
    expect(newest.schemaChanged).toBe(true);
    expect(stderr).toContain('schema has changed');

    const oldest = await stderrOf(() => p.logs({ start, end }));
    expect(oldest.value.map(tagOf)).toEqual([0, 1]);
    expect(oldest.value.schemaChanged).toBe(true);
    expect(oldest.stderr).toContain('schema has changed');
  });

  it('exportLogs writes one numbered JSON Lines file per schema with time in epoch ms', async () => {
    const out = join(dir, 'schema-json');
    const { value: summary, stderr } = await stderrOf(() => p.exportLogs({ directory: out, start, end }));
    expect(summary.rows).toBe(7);
    expect(summary.files).toEqual([join(out, 'schemas-1.json'), join(out, 'schemas-2.json')]);
    expect(stderr).toContain('different schemas are written to separate files');
    const lines1 = (await readFile(join(out, 'schemas-1.json'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogRecord);
    const lines2 = (await readFile(join(out, 'schemas-2.json'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogRecord);
    expect(lines1.map(tagOf)).toEqual([0, 1]);
    expect(lines2.map((r) => (r['in.features'] as number[])[0])).toEqual([100, 101, 102, 103, 104]);
    for (const r of [...lines1, ...lines2]) {
      expect(Number.isInteger(r.time)).toBe(true);
      expect(r.time as number).toBeGreaterThanOrEqual(start);
      expect(r.time as number).toBeLessThanOrEqual(end);
      expect(Object.keys(r).at(-1)).toBe('check_failures');
    }
    expect(Object.keys(lines1[0] ?? {})).toEqual(['time', 'in.tensor', 'out.variable', 'check_failures']);
  });

  it('exportLogs with arrow writes readable Arrow IPC files, numbered per schema, with a custom prefix', async () => {
    const out = join(dir, 'schema-arrow');
    const { value: summary } = await stderrOf(() =>
      p.exportLogs({ directory: out, filePrefix: 'x', start, end, arrow: true }),
    );
    expect(summary.files).toEqual([join(out, 'x-1.arrow'), join(out, 'x-2.arrow')]);
    const a = tableFromIPC(await readFile(join(out, 'x-1.arrow')));
    const b = tableFromIPC(await readFile(join(out, 'x-2.arrow')));
    expect(tagsOfTable(a)).toEqual([0, 1]);
    expect(tagsOfTable(b, 'in.features')).toEqual([100, 101, 102, 103, 104]);
    expect(b.schema.fields.map((f) => f.name)).toEqual([
      'time',
      'in.features',
      'out.variable',
      'check_failures',
    ]);
  });
});

describe('exportLogs sizes and limits', () => {
  it('refuses data sizes that are not "<number> KiB|MiB|GiB|TiB" or not positive', async () => {
    expect(parseDataSize('1.5 MiB')).toBe(1_572_864);
    expect(parseDataSize('10MiB')).toBe(10 * 1024 ** 2);
    expect(parseDataSize('1 gib')).toBe(1024 ** 3);
    const p = await newestPipeline();
    for (const bad of ['10 MB', '0 MiB', 'abc', '-1 MiB', '1.5', '']) {
      await expect(p.exportLogs({ dataSizeLimit: bad, directory: join(dir, 'never') })).rejects.toMatchObject(
        {
          name: 'ValidationError',
          code: 'invalid_data_size',
        },
      );
    }
  });

  it('stops at the data size limit and at the row limit, and warns', async () => {
    const p = await newestPipeline();
    const out = join(dir, 'small');
    const { value: small, stderr } = await stderrOf(() =>
      p.exportLogs({ directory: out, dataSizeLimit: '2 KiB', limit: 150 }),
    );
    expect(small.truncated).toBe(true);
    expect(small.rows).toBeGreaterThan(0);
    expect(small.rows).toBeLessThan(150);
    expect((await stat(join(out, 'newest-1.json'))).size).toBeLessThanOrEqual(2048);
    expect(stderr).toContain('data size limit of 2 KiB exceeded');
    const lines = (await readFile(join(out, 'newest-1.json'), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(small.rows);
    // Without a range: newest first, like logs().
    expect(tagOf(JSON.parse(lines[0] ?? '{}') as LogRecord)).toBe(149);

    const { value: limited, stderr: more } = await stderrOf(() =>
      p.exportLogs({ directory: out, limit: 20 }),
    );
    expect(limited).toMatchObject({ rows: 20, moreAvailable: true, truncated: false });
    expect(more).toContain('There are more logs available');
    expect((await readFile(join(out, 'newest-1.json'), 'utf8')).trim().split('\n')).toHaveLength(20);
  });
});

describe('the CLI', () => {
  const run = promisify(execFile);
  const cli = async (args: string[]): Promise<{ stdout: Buffer; stderr: string }> => {
    const { stdout, stderr } = await run(process.execPath, [CLI, '--home', server.home, ...args], {
      env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
      encoding: 'buffer',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr: stderr.toString() };
  };

  it('quoll pipeline logs prints a table, JSON, Arrow on stdout, and exports files', async () => {
    await Promise.all([newestPipeline(), rangesPipeline(), schemasPipeline()]);
    const table = (await cli(['pipeline', 'logs', 'newest', '--limit', '3'])).stdout.toString();
    const header = table.split('\n')[0] ?? '';
    expect(header.indexOf('time')).toBeLessThan(header.indexOf('in.tensor'));
    expect(header.indexOf('out.variable')).toBeLessThan(header.indexOf('check_failures'));
    expect(table).toContain('(3 rows)');

    const json = JSON.parse(
      (await cli(['pipeline', 'logs', 'newest', '--limit', '3', '--json'])).stdout.toString(),
    ) as LogRecord[];
    expect(json.map(tagOf)).toEqual([149, 148, 147]);

    const arrow = tableFromIPC((await cli(['pipeline', 'logs', 'newest', '--limit', '4', '--arrow'])).stdout);
    expect(tagsOfTable(arrow)).toEqual([149, 148, 147, 146]);

    const ranged = await cli([
      'pipeline',
      'logs',
      'ranges',
      '--start',
      '0',
      '--end',
      new Date(Date.now() + 1000).toISOString(),
      '--json',
    ]);
    expect((JSON.parse(ranged.stdout.toString()) as LogRecord[]).map(tagOf)).toEqual(
      Array.from({ length: 15 }, (_, i) => i),
    );

    const out = join(dir, 'cli-export');
    const exported = await cli([
      'pipeline',
      'logs',
      'schemas',
      '--export',
      out,
      '--prefix',
      'cli',
      '--start',
      '0',
      '--end',
      String(Date.now() + 1000),
    ]);
    expect(exported.stdout.toString()).toContain('wrote 7 rows');
    expect((await readdir(out)).sort()).toEqual(['cli-1.json', 'cli-2.json']);

    const bad = await cli(['pipeline', 'logs', 'newest', '--start', '0']).catch(
      (e: { code: number; stderr: Buffer }) => e,
    );
    expect((bad as { code: number }).code).toBeGreaterThan(0);
    expect((bad as { stderr: Buffer }).stderr.toString()).toContain('invalid_time_range');
  });
});

describe('retention', () => {
  it('drops the oldest segments first when a pipeline passes its byte cap', async () => {
    const s = await startTestServer({
      env: { QUOLL_LOG_SEGMENT_MAX_BYTES: '20000', QUOLL_LOG_MAX_BYTES_PER_PIPELINE: '60000' },
    });
    try {
      const c = s.client();
      const p = await deploy(c, 'retained', ['tensor']);
      const requests = 40;
      for (let r = 0; r < requests; r++) {
        const values = makeHouseRows(50, r + 1);
        for (let i = 0; i < 50; i++) values[i * 18] = r * 50 + i;
        await p.infer(makeArrowTensorTable(values, 18));
      }
      const kept = await p.logs({ start: 0, end: Date.now() + 1000, arrow: true });
      const tags = tagsOfTable(kept);
      // The newest rows are all there, contiguous back to the oldest kept one; the oldest are gone.
      expect(tags.at(-1)).toBe(requests * 50 - 1);
      expect(tags[0]).toBeGreaterThan(0);
      expect(tags.every((t, i) => t === (tags[0] ?? 0) + i)).toBe(true);
      if (s.database !== null) {
        // A node of a cluster keeps the log as batches in the database: within the cap there.
        const db = new pg.Client({ connectionString: s.database });
        await db.connect();
        const { rows } = await db
          .query<{ bytes: string; batches: string }>(
            'SELECT sum(bytes) AS bytes, count(*) AS batches FROM inference_log_batches WHERE pipeline_id = $1',
            [p.id],
          )
          .finally(() => db.end());
        expect(Number(rows[0]?.bytes)).toBeLessThanOrEqual(60000);
        expect(Number(rows[0]?.batches)).toBeLessThan(requests);
        return;
      }
      const segDir = join(s.home, 'inference-logs', String(p.id));
      const segs = (await readdir(segDir)).filter((f) => f.endsWith('.arrows'));
      let bytes = 0;
      for (const f of segs) bytes += (await stat(join(segDir, f))).size;
      // Within the cap plus the one segment that is never deleted (the newest).
      expect(bytes).toBeLessThanOrEqual(60000 + 20000 + 8000);
      expect(segs.length).toBeLessThan(requests);
    } finally {
      await s.stop();
      await s.cleanup();
    }
  });
});

describe('durability', () => {
  it('after SIGKILL during steady inference, a restarted server has every row answered 1.5 s before the kill, and keeps working', async () => {
    const s = await startTestServer();
    let restarted: TestServer | null = null;
    try {
      const p = await deploy(s.client(), 'crashy', ['tensor']);
      const answered: { tag: number; at: number }[] = [];
      let next = 0;
      let stop = false;
      const loop = async (): Promise<void> => {
        while (!stop) {
          const tag = next;
          next += 10;
          try {
            await p.infer(tagged(tag, 10));
          } catch {
            return; // the server is gone
          }
          answered.push({ tag, at: Date.now() });
        }
      };
      const loops = [loop(), loop()];
      await sleep(3000);
      const killedAt = Date.now();
      await s.kill();
      stop = true;
      await Promise.all(loops);
      expect(answered.filter((a) => a.at <= killedAt - 1500).length).toBeGreaterThan(10);

      restarted = await startTestServer({ home: s.home });
      const c = restarted.client();
      const again = await c.getPipeline('crashy');
      const logged = new Set(
        tagsOfTable(await again.logs({ start: 0, end: Date.now() + 1000, arrow: true })),
      );
      const missing = answered
        .filter((a) => a.at <= killedAt - 1500)
        .filter((a) => {
          for (let i = 0; i < 10; i++) if (!logged.has(a.tag + i)) return true;
          return false;
        });
      expect(missing).toEqual([]);

      // The store answers and takes new rows once the restarted server has loaded the pipeline
      // again (it answers Starting, and refuses inference, until then).
      await vi.waitFor(async () => expect((await again.status()).status).toBe('Running'), {
        timeout: 30_000,
        interval: 100,
      });
      const before = (await again.logs({ limit: 1 }))[0];
      await again.infer(tagged(1_000_000, 3));
      const after = await again.logs({ limit: 3 });
      expect(after.map(tagOf)).toEqual([1_000_002, 1_000_001, 1_000_000]);
      expect(after[0]?.time as number).toBeGreaterThanOrEqual(before?.time as number);
    } finally {
      await restarted?.stop();
      await s.kill();
      await s.cleanup();
    }
  });

  it('after SIGTERM every inference answered before the stop is in the log', async () => {
    const s = await startTestServer();
    let restarted: TestServer | null = null;
    try {
      const p = await deploy(s.client(), 'graceful', ['tensor']);
      const n = 25;
      for (let r = 0; r < n; r++) await p.infer(tagged(r * 4, 4));
      expect(await s.stop()).toBe(0);
      restarted = await startTestServer({ home: s.home });
      const logs = await (await restarted.client().getPipeline('graceful')).logs({ limit: 1000 });
      expect(logs.map(tagOf).sort((a, b) => a - b)).toEqual(Array.from({ length: n * 4 }, (_, i) => i));
    } finally {
      await restarted?.stop();
      await s.cleanup();
    }
  });

  it('with inference logging off (QUOLL_INFERENCE_LOGS=off) inferences are served and not logged', async () => {
    const s = await startTestServer({ env: { QUOLL_INFERENCE_LOGS: 'off' } });
    try {
      const p = await deploy(s.client(), 'unlogged', ['tensor']);
      expect(await p.infer(tagged(0, 2))).toHaveLength(2);
      expect(await p.logs()).toEqual([]);
    } finally {
      await s.stop();
      await s.cleanup();
    }
  });
});
