import { afterEach, describe, expect, it, vi } from 'vitest';
import { Table, tableToIPC } from 'apache-arrow';
import { makeArrowTensorTable, makeHouseRows } from '../../../../../test/support/synthetic-data.js';
import * as inferenceInput from '../inference-input.js';
import type { ServedModel } from '../inference-codec.js';
import { quollBodyCodecs } from '../quoll-body-codec.js';
import { DecodePool } from './decode-pool.js';

// Counts the Arrow framing walks run on this (the calling, i.e. HTTP) thread; the decode
// worker runs its own copy of the module, so its walk is not counted.
vi.mock('../inference-input.js', async (importOriginal) => {
  const original = await importOriginal<typeof inferenceInput>();
  return { ...original, readArrowLayout: vi.fn(original.readArrowLayout) };
});

const ARROW_FILE = 'application/vnd.apache.arrow.file';

let pools: DecodePool[] = [];
afterEach(async () => {
  await Promise.all(pools.map((p) => p.close()));
  pools = [];
});

describe('review arrowhttp: an Arrow body past the inline walk budget', () => {
  it('is walked at most once on the calling thread by the route composition (decodeInline, then decodeForModelWorker)', async () => {
    const decoder = new DecodePool({ inlineArrowSteps: 64 });
    pools.push(decoder);
    // Wired exactly as server/routes/inference-routes.ts wires the checked decoder.
    const codecs = quollBodyCodecs({
      decode: (contentType, body) => decoder.decodeForModelWorker(contentType, body),
      decodeInline: (contentType, body) => decoder.decodeInline(contentType, body),
    });
    const one = makeArrowTensorTable(makeHouseRows(10, 3), 18);
    // 30 record batches: the framing walk needs more than 64 steps, so the worker must walk it.
    const body = tableToIPC(
      new Table(
        one.schema,
        Array.from({ length: 30 }, () => one.batches[0]!),
      ),
      'file',
    );
    const walks = vi.mocked(inferenceInput.readArrowLayout);
    walks.mockClear();
    const decoded = codecs['arrow-file'].decode(
      { contentType: ARROW_FILE, body, header: () => undefined },
      {} as ServedModel,
    );
    // Each walk on this thread spends up to the whole budget (≈ 0.3 ms at the default 512)
    // and is thrown away: the worker walks the body again anyway.
    const walksHere = walks.mock.calls.length;
    const { input } = decoded instanceof Promise ? await decoded : decoded;
    expect(input.kind).toBe('arrow');
    expect(walksHere).toBeLessThanOrEqual(1);
  });
});
