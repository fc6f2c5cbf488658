import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Principal } from '../auth/index.js';
import type { InferenceCodec, InferenceResult, RawInferenceBody } from '../inference/index.js';
import { InferenceLogStore } from '../logs/index.js';
import type { DeploymentManager, PipelineService, ServingLookup } from '../pipelines/index.js';
import { SqliteLogSegmentIndex } from '../store/sqlite/sqlite-log-segment-index.js';
import { openSqliteDatabase } from '../store/sqlite/sqlite-database.js';
import type { SqliteHandle } from '../store/sqlite/sqlite-database.js';
import type { WorkspaceService } from '../workspaces/index.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { InferenceService } from './inference-service.js';
import { logIndexHome } from '../../../../test/support/log-index-home.js';

const member: Principal = { kind: 'workspace', workspaceId: 1, subject: 'member', tokenId: 't1' };
const raw: RawInferenceBody = {
  contentType: 'application/json',
  body: Buffer.from('[]'),
  header: () => undefined,
};
const T0 = 1_733_500_000_000;

let dir: string;
let db: SqliteHandle;
let store: InferenceLogStore | null = null;

beforeEach(() => {
  dir = logIndexHome('quoll-service-log-values-');
  db = openSqliteDatabase(join(dir, 'quoll.db'), join(dir, 'migrations'));
});

afterEach(async () => {
  await store?.stop();
  store = null;
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * `rows` records of an 18-number `tensor`, every number of request `request` its own, and exact
 * in float32 (under 2^17, in 64ths): the model's input is float32, and the log holds what it received.
 */
function recordsOf(request: number, rows: number): Record<string, unknown>[] {
  return Array.from({ length: rows }, (_, r) => ({
    tensor: Array.from({ length: 18 }, (_, i) => request * 10_000 + r * 32 + i / 64),
  }));
}

describe('InferenceService with logging on: the log values of JSON records are reused only when nothing reads them again', () => {
  const { engine, step } = inferenceEngineFixture('quoll-service-log-values-');

  // 100 rows: the log's source is copied at admission, so its values go back to the pool and the
  // next request of that size writes into the same array. 250 rows: the source (≥ 32 KiB) is kept
  // until the writer thread takes it, and reads the values then. An Arrow answer: the result's
  // table views the values, and the log takes that table (kept too, at 250 rows).
  it.each([
    { rows: 100, answer: 'json' },
    { rows: 250, answer: 'json' },
    { rows: 250, answer: 'arrow' },
  ])(
    'logs each request’s own values: $rows rows, $answer answers, requests one after another and two in flight at once',
    async ({ rows, answer }) => {
      const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 4, depth: 3 });
      const deployment = await engine(false).deploy('tree', [step('tree', bytes)]);
      store = await InferenceLogStore.open({ dir: join(dir, 'logs'), index: new SqliteLogSegmentIndex(db) });
      let clock = T0;
      const lookup = (): ServingLookup => ({ state: 'serving', pipelineId: 7, version: 'v1', deployment });
      const svc = new InferenceService({
        deployments: { lookup } as unknown as DeploymentManager,
        pipelines: { get: () => Promise.resolve({}) } as unknown as PipelineService,
        workspaces: { getById: () => Promise.resolve({ id: 1 }) } as unknown as WorkspaceService,
        logging: true,
        logs: store,
        // Each request's time is its number: the logged rows say which request they came from.
        now: () => clock++,
      });
      const sent = new Map<number, Record<string, unknown>[]>();
      const codecOf = (request: number): InferenceCodec<null> => {
        const records = recordsOf(request, rows);
        sent.set(T0 + request, records);
        return {
          decode: () => ({ input: { kind: 'records', records }, request: null }),
          encode: (result: InferenceResult) => {
            if (answer === 'arrow') result.toArrowTable();
            return { contentType: 'application/json', body: '[]' };
          },
        };
      };
      const address = { workspaceId: 1, pipeline: 'p' };
      try {
        // One after another: each request's values may land in the array the one before gave back.
        for (let request = 0; request < 4; request++) await svc.infer(member, address, codecOf(request), raw);
        // Two in flight at once, twice.
        for (let request = 4; request < 8; request += 2)
          await Promise.all([
            svc.infer(member, address, codecOf(request), raw),
            svc.infer(member, address, codecOf(request + 1), raw),
          ]);
        await store.flush();
        const page = await store.query(7, { limit: 10_000, order: 'asc' });
        expect(page.rows).toBe(8 * rows);
        const times = page.table.getChild('time')!;
        const inputs = page.table.getChild('in.tensor')!;
        const seen = new Map<number, number>();
        for (let row = 0; row < page.rows; row++) {
          const time = Number(times.get(row));
          const at = seen.get(time) ?? 0;
          seen.set(time, at + 1);
          const expected = sent.get(time)![at]!.tensor as number[];
          const got = [...(inputs.get(row) as { toArray(): Float64Array }).toArray()];
          expect({ time, row: at, values: got }).toEqual({ time, row: at, values: expected });
        }
        expect([...seen.values()]).toEqual(Array.from({ length: 8 }, () => rows));
      } finally {
        await deployment.close();
      }
    },
  );
});
