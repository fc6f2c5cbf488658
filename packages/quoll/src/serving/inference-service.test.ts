import { describe, expect, it, vi } from 'vitest';
import type { Principal } from '../auth/index.js';
import type { Deployment, InferenceCodec, RawInferenceBody } from '../inference/index.js';
import type { DeploymentManager, PipelineService, ServingLookup } from '../pipelines/index.js';
import type { WorkspaceService } from '../workspaces/index.js';
import type { LogRowSource } from '../logs/index.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import { inferenceEngineFixture } from '../../../../test/support/inference-engine-fixture.js';
import { InferenceService } from './inference-service.js';

const admin: Principal = { kind: 'admin', subject: 'admin', tokenId: 't0' };
const member = (workspaceId: number): Principal => ({
  kind: 'workspace',
  workspaceId,
  subject: 'member',
  tokenId: 't1',
});
const raw: RawInferenceBody = {
  contentType: 'application/json',
  body: Buffer.from('[]'),
  header: () => undefined,
};

const deployment = {
  steps: [{ config: {}, inputs: [], outputs: [] }],
  infer: () => Promise.resolve({ rowCount: 1, logRows: () => ({}), release: () => undefined }),
} as unknown as Deployment;

/** A service over stubs: pipeline `p` of workspace 1 serving, `idle` of workspace 1 not deployed. */
function service(): { svc: InferenceService; getByName: ReturnType<typeof vi.fn> } {
  const lookup = (workspaceId: number, name: string): ServingLookup =>
    workspaceId === 1 && name === 'p'
      ? { state: 'serving', pipelineId: 7, version: 'v1', deployment }
      : { state: 'not_deployed' };
  const getByName = vi.fn((_principal: Principal, name: string) =>
    name === 'default' ? Promise.resolve({ id: 1 }) : Promise.reject(new Error(`no workspace ${name}`)),
  );
  const svc = new InferenceService({
    deployments: { lookup } as unknown as DeploymentManager,
    pipelines: { get: () => Promise.resolve({}) } as unknown as PipelineService,
    workspaces: {
      getById: () => Promise.resolve({ id: 1 }),
      getByName,
    } as unknown as WorkspaceService,
    logs: { append: () => Promise.resolve() },
  });
  return { svc, getByName };
}

function codec(): { codec: InferenceCodec<null>; decoded: ReturnType<typeof vi.fn> } {
  const decoded = vi.fn(() => ({ input: {} as never, request: null }));
  return {
    codec: { decode: decoded, encode: () => ({ contentType: 'application/json', body: '[]' }) },
    decoded,
  };
}

describe('InferenceService.infer', () => {
  it('finds a serving pipeline and starts reading the body in the same turn (no promise for the look-up)', async () => {
    const { svc } = service();
    const { codec: c, decoded } = codec();
    const onServing = vi.fn();
    const answer = svc.infer(member(1), { workspaceId: 1, pipeline: 'p' }, c, raw, onServing);
    // Before any microtask ran: the look-up answered without awaiting a promise.
    expect(onServing).toHaveBeenCalledWith(1);
    expect(decoded).toHaveBeenCalledTimes(1);
    await expect(answer).resolves.toEqual({ contentType: 'application/json', body: '[]' });
  });

  it('by workspace name: the first request looks the name up, later ones use the cached id at once', async () => {
    const { svc, getByName } = service();
    const { codec: c, decoded } = codec();
    await svc.infer(admin, { workspaceName: 'default', pipeline: 'p' }, c, raw);
    expect(getByName).toHaveBeenCalledTimes(1);
    const second = svc.infer(admin, { workspaceName: 'default', pipeline: 'p' }, c, raw);
    expect(decoded).toHaveBeenCalledTimes(2);
    await second;
    expect(getByName).toHaveBeenCalledTimes(1);
  });

  it('still says why when there is no serving pipeline, or the workspace is not the caller’s', async () => {
    const { svc } = service();
    const { codec: c, decoded } = codec();
    await expect(svc.infer(member(1), { workspaceId: 1, pipeline: 'idle' }, c, raw)).rejects.toMatchObject({
      code: 'pipeline_not_deployed',
    });
    await expect(svc.infer(member(2), { workspaceId: 1, pipeline: 'p' }, c, raw)).rejects.toMatchObject({
      code: 'workspace_not_found',
    });
    await expect(svc.infer(admin, { workspaceName: 'other', pipeline: 'p' }, c, raw)).rejects.toThrow(
      'no workspace other',
    );
    expect(decoded).not.toHaveBeenCalled();
  });
});

describe('InferenceService.infer with logging on (guard of the records log values’ wiring)', () => {
  const { engine, step } = inferenceEngineFixture('quoll-service-logfill-');

  it('hands the log a source that copies the feeds’ walk values: the records are not read again', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 4, depth: 3 });
    const real = await engine(false).deploy('tree', [step('tree', bytes)]);
    let reads = 0;
    const records = Array.from({ length: 3 }, (_, r) => ({
      tensor: new Proxy(
        Array.from({ length: 18 }, (_, i) => 0.1 + r + i / 10),
        {
          get(target, key, receiver) {
            if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
            return Reflect.get(target, key, receiver) as unknown;
          },
        },
      ),
    }));
    let readsAtAppend = -1;
    // The tree's input is float32: the log's leaf is Float32, the values the model received (from
    // its feed since the feedlog lane), written into an array of that kind as the staging does.
    const logged = new Float32Array(3 * 18);
    const lookup = (): ServingLookup => ({
      state: 'serving',
      pipelineId: 7,
      version: 'v1',
      deployment: real,
    });
    const svc = new InferenceService({
      deployments: { lookup } as unknown as DeploymentManager,
      pipelines: { get: () => Promise.resolve({}) } as unknown as PipelineService,
      workspaces: { getById: () => Promise.resolve({ id: 1 }) } as unknown as WorkspaceService,
      logging: true,
      logs: {
        append: (_pipelineId: number, rows: unknown) => {
          readsAtAppend = reads;
          (rows as LogRowSource).writeLeaf(1, logged);
          return Promise.resolve();
        },
      },
    });
    const c: InferenceCodec<null> = {
      decode: () => ({ input: { kind: 'records', records }, request: null }),
      encode: () => ({ contentType: 'application/json', body: '[]' }),
    };
    try {
      await svc.infer(member(1), { workspaceId: 1, pipeline: 'p' }, c, raw);
      // The feeds' walk read every element; the log's copy (in.tensor, leaf 1) read none again.
      expect(readsAtAppend).toBeGreaterThanOrEqual(3 * 18);
      expect(reads).toBe(readsAtAppend);
      expect(logged[0]).toBe(Math.fround(0.1));
      expect(logged[18]).toBe(Math.fround(1.1));
    } finally {
      await real.close();
    }
  });

  it('an answer that is the result’s Arrow table (answerTable) gets its in.* columns as sent without reading the records again', async () => {
    const bytes = makeTreeEnsembleRegressor({ features: 18, trees: 4, depth: 3 });
    const real = await engine(false).deploy('tree', [step('tree', bytes)]);
    let reads = 0;
    const records = Array.from({ length: 3 }, (_, r) => ({
      tensor: new Proxy(
        Array.from({ length: 18 }, (_, i) => 0.1 + r + i / 10),
        {
          get(target, key, receiver) {
            if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
            return Reflect.get(target, key, receiver) as unknown;
          },
        },
      ),
    }));
    let readsAtEncode = -1;
    let answered: number[] = [];
    const lookup = (): ServingLookup => ({
      state: 'serving',
      pipelineId: 7,
      version: 'v1',
      deployment: real,
    });
    const svc = new InferenceService({
      deployments: { lookup } as unknown as DeploymentManager,
      pipelines: { get: () => Promise.resolve({}) } as unknown as PipelineService,
      workspaces: { getById: () => Promise.resolve({ id: 1 }) } as unknown as WorkspaceService,
      logging: true,
      logs: { append: () => Promise.resolve() },
    });
    const c: InferenceCodec<null> = {
      decode: () => ({ input: { kind: 'records', records }, request: null, answerTable: true }),
      encode: (result) => {
        readsAtEncode = reads;
        const table = result.toArrowTable();
        answered = [...(table.getChild('in.tensor')!.get(0) as Iterable<number>)];
        return { contentType: 'application/json', body: '[]' };
      },
    };
    try {
      await svc.infer(member(1), { workspaceId: 1, pipeline: 'p' }, c, raw);
      expect(readsAtEncode).toBeGreaterThanOrEqual(3 * 18);
      expect(reads).toBe(readsAtEncode);
      expect(answered[0]).toBe(0.1);
    } finally {
      await real.close();
    }
  });
});
