import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../errors/index.js';
import type { Deployment, InferenceCodec, RawInferenceBody } from '../inference/index.js';
import type { DeploymentManager, PipelineService, ServingLookup } from '../pipelines/index.js';
import { InferenceService } from '../serving/index.js';
import type { InferenceLogSink } from '../serving/index.js';
import { openStore } from '../store/open-store.js';
import { recordsLogCases } from '../store/conformance/records-log-cases.js';
import type { WorkspaceService } from '../workspaces/index.js';
import { InferenceLogStore, LOG_APPEND_ADMITTED, admitLogRows } from './index.js';
import type { LogRowSource } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-review-logstage-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

async function open() {
  const stores = await openStore({ kind: 'sqlite', path: join(root, `${++n}.db`) });
  const logs = await InferenceLogStore.open({
    dir: mkdtempSync(join(root, 'logs-')),
    index: stores.logIndex,
  });
  return { logs, stores };
}

const raw: RawInferenceBody = {
  contentType: 'application/json',
  body: Buffer.from('[]'),
  header: () => undefined,
};
const member = { kind: 'workspace' as const, workspaceId: 1, subject: 'm', tokenId: 't' };

/** An inference service over stubs whose one pipeline's result is `records`' first case, logging to `sink`. */
function service(sink: InferenceLogSink) {
  const result = recordsLogCases()[0]!.make();
  const release = vi.spyOn(result, 'release');
  const deployment = {
    steps: [{ config: {}, inputs: [], outputs: [] }],
    infer: () => Promise.resolve(result),
  } as unknown as Deployment;
  const lookup = (): ServingLookup => ({ state: 'serving', pipelineId: 7, version: 'v1', deployment });
  const svc = new InferenceService({
    deployments: { lookup } as unknown as DeploymentManager,
    pipelines: { get: () => Promise.resolve({}) } as unknown as PipelineService,
    workspaces: { getById: () => Promise.resolve({ id: 1 }) } as unknown as WorkspaceService,
    logs: sink,
  });
  const codec: InferenceCodec<null> = {
    decode: () => ({ input: {} as never, request: null }),
    encode: () => ({ contentType: 'application/json', body: '[]' }),
  };
  return { infer: () => svc.infer(member, { workspaceId: 1, pipeline: 'p' }, codec, raw), release, result };
}

describe('review of logstage: the inference service and the append it no longer awaits', () => {
  it('a refused or failed append still rejects the request with its own error, after the rows were offered', async () => {
    for (const code of ['log_rows_refused', 'log_store_unavailable', 'shutting_down'] as const) {
      const err = new ApiError(code, 'x');
      const { infer, release } = service({ append: () => Promise.reject(err) });
      await expect(infer()).rejects.toBe(err);
      expect(release).toHaveBeenCalledTimes(1);
    }
  });

  it('an append waiting for room (backpressure) holds the answer until it is admitted', async () => {
    let admit!: () => void;
    const { infer, release } = service({ append: () => new Promise<void>((r) => (admit = r)) });
    let answered = false;
    const answer = infer().then(() => (answered = true));
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(false);
    expect(release).not.toHaveBeenCalled();
    admit();
    await answer;
    expect(release).toHaveBeenCalledTimes(1);
  });

  it('read-your-writes through a real store: rows of an answer are in a logs() read right after it', async () => {
    const { logs, stores } = await open();
    try {
      let got: Promise<void> | undefined;
      const { infer, result } = service({
        append: (id, rows) => (got = logs.append(id, rows)),
      });
      await infer();
      expect(got).toBe(LOG_APPEND_ADMITTED);
      // As the logs route does (log-routes.ts): flush what was appended so far, then read.
      await logs.flush();
      const page = await logs.query(7);
      expect(page.rows).toBe(result.rowCount);
    } finally {
      await logs.stop();
      await stores.close();
    }
  });
});

describe('review of logstage: a row source whose getters misbehave at admission', () => {
  const good = (): LogRowSource => recordsLogCases()[0]!.make().logRows() as LogRowSource;

  it('a source whose leaves getter throws is refused alone with log_rows_refused (the documented contract)', async () => {
    const { logs, stores } = await open();
    try {
      const g = good();
      const hostile: LogRowSource = {
        kind: 'log-row-source',
        schema: g.schema,
        numRows: g.numRows,
        get leaves(): never {
          throw new Error('boom');
        },
        byteLength: g.byteLength,
        writeLeaf: (i, t) => g.writeLeaf(i, t),
        toTable: () => g.toTable(),
      };
      await expect(logs.append(7, hostile)).rejects.toMatchObject({ code: 'log_rows_refused' });
      expect(logs.refusedAppends).toBe(1);
    } finally {
      await logs.stop();
      await stores.close();
    }
  });

  it('a source with a hole in its leaves is refused alone with log_rows_refused, not a TypeError', async () => {
    const { logs, stores } = await open();
    try {
      const g = good();
      const leaves = [...g.leaves!];
      leaves[1] = null as never;
      const hostile: LogRowSource = {
        ...g,
        leaves,
        writeLeaf: (i, t) => g.writeLeaf(i, t),
        toTable: () => g.toTable(),
      };
      await expect(logs.append(7, hostile)).rejects.toMatchObject({ code: 'log_rows_refused' });
      expect(logs.refusedAppends).toBe(1);
    } finally {
      await logs.stop();
      await stores.close();
    }
  });

  it('admission reads the source’s leafWriter once: the packer is handed the writer seen at admission', () => {
    const g = good();
    let reads = 0;
    const hostile = {
      kind: 'log-row-source' as const,
      schema: g.schema,
      numRows: g.numRows,
      leaves: g.leaves,
      byteLength: g.byteLength,
      get leafWriter() {
        reads++;
        return (i: number, t: ArrayBufferView) => (g as Required<LogRowSource>).leafWriter(i, t);
      },
      writeLeaf: (i: number, t: ArrayBufferView) => g.writeLeaf(i, t),
      toTable: () => g.toTable(),
    } as LogRowSource;
    const admitted = admitLogRows(7, hostile).batches[0] as LogRowSource;
    const readsAtAdmission = reads;
    admitted.leafWriter!(0, new BigInt64Array(g.numRows))(g.numRows);
    expect(reads).toBe(readsAtAdmission);
  });
});

const j = (v: unknown): string =>
  JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? String(x) : x));

describe('review of logstage: a source whose getters answer otherwise after admission (probe)', () => {
  it('big or small, what is logged is what the getters answered at admission', async () => {
    for (const c of recordsLogCases().filter((x) => x.source)) {
      const { logs, stores } = await open();
      try {
        const g = c.make().logRows() as LogRowSource;
        let admitted = false;
        const later = <T>(first: T, then: T): T => (admitted ? then : first);
        const flipping: LogRowSource = {
          kind: 'log-row-source',
          get schema() {
            return g.schema;
          },
          get numRows() {
            return later(g.numRows, g.numRows + 3);
          },
          get leaves() {
            return later(g.leaves, []);
          },
          get byteLength() {
            return later(g.byteLength, 1);
          },
          writeLeaf: (i, t) => g.writeLeaf(i, t),
          ...(g.leafWriter ? { leafWriter: (i: number, t: ArrayBufferView) => g.leafWriter!(i, t) } : {}),
          toTable: () => g.toTable(),
        };
        const queued = logs.append(7, flipping);
        admitted = true;
        await queued;
        await logs.flush();
        const page = await logs.query(7, { start: 0, end: Number.MAX_SAFE_INTEGER });
        expect(page.rows, c.name).toBe(g.numRows);
        expect(page.table.schema.fields.map((f) => f.name)).toEqual(g.schema.fields.map((f) => f.name));
        expect(j(page.table.toArray().slice(0, 3))).toBe(j(g.toTable().toArray().slice(0, 3)));
        expect(j(page.table.toArray()).length).toBeGreaterThan(100);
        const want = g.toTable();
        for (const f of want.schema.fields)
          expect(
            JSON.stringify(page.table.getChild(f.name)?.toArray(), (_, v: unknown) =>
              typeof v === 'bigint' ? String(v) : v,
            ),
            `${c.name}: ${f.name}`,
          ).toBe(
            JSON.stringify(want.getChild(f.name)?.toArray(), (_, v: unknown) =>
              typeof v === 'bigint' ? String(v) : v,
            ),
          );
      } finally {
        await logs.stop();
        await stores.close();
      }
    }
  });
});
