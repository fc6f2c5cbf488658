import { describe, expect, it } from 'vitest';
import type { DecodedInference, ServedModel } from './inference-codec.js';
import type { EngineInput } from './inference-input.js';
import { quollBodyCodecs } from './quoll-body-codec.js';

// A JSON records request answered in Arrow must keep its Float64 log values (the answer's table
// views them): the codec of an Arrow answer says so (`answerTable`), the JSON one does not. Its
// answer stays right without the flag (the table walks the records again), so only this test
// sees the wiring dropped.

const input: EngineInput = { kind: 'records', records: [{ tensor: [0.1, 0.2] }] };
const served = {} as ServedModel;
const raw = (contentType: string) => ({
  contentType,
  body: new Uint8Array(0),
  header: () => undefined,
});

describe('quollBodyCodecs: answerTable', () => {
  for (const read of ['inline', 'inline, handed on', 'by decode'] as const) {
    const codecs = quollBodyCodecs({
      decode: () => Promise.resolve(input),
      ...(read === 'inline' ? { decodeInline: () => input } : {}),
      ...(read === 'inline, handed on' ? { decodeInline: () => Promise.resolve(input) } : {}),
    });
    it(`is set by the Arrow answers' codecs only (input read ${read})`, async () => {
      const answerTable = async (format: 'json' | 'arrow-file' | 'arrow-stream'): Promise<boolean> => {
        const decoded = codecs[format].decode(raw('application/json'), served);
        const got: DecodedInference<null> = decoded instanceof Promise ? await decoded : decoded;
        expect(got.input).toBe(input);
        return got.answerTable === true;
      };
      expect(await answerTable('json')).toBe(false);
      expect(await answerTable('arrow-file')).toBe(true);
      expect(await answerTable('arrow-stream')).toBe(true);
    });
  }
});
