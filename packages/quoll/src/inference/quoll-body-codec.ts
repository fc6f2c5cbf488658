import type { DecodedInference, InferenceCodec } from './inference-codec.js';
import type { EngineInput, ResultFormat } from './inference-input.js';
import { encodeInferenceAnswer } from './inference-result.js';

/**
 * What reads Quoll's request bodies (the server's `DecodePool`, off the HTTP thread; large JSON
 * records may be left to the model worker, see `DecodePool.decodeForModelWorker`).
 */
export interface QuollBodyDecoder {
  decode(contentType: string, body: Uint8Array): Promise<EngineInput>;
  /**
   * The input at once when the body needs no other thread (a small JSON body, an Arrow body
   * whose framing walk is short); a promise of it when this already began the body's decode
   * and handed it on (so {@link decode} does not start over); else `undefined` (then
   * {@link decode} reads it). Throws what `decode` would reject with.
   */
  decodeInline?(contentType: string, body: Uint8Array): EngineInput | Promise<EngineInput> | undefined;
}

/** A decoded Quoll body: it needs nothing remembered for the answer. */
const withoutRequest = (input: EngineInput): DecodedInference<null> => ({ input, request: null });

/** {@link withoutRequest} for an Arrow answer: the answer is the result's table (`answerTable`). */
const asTable = (input: EngineInput): DecodedInference<null> => ({ input, request: null, answerTable: true });

/**
 * Quoll's own inference bodies (`/v1/.../infer`): JSON records, Arrow IPC file or stream in,
 * read by `decoder`; the answer in each format (negotiated from Accept by the caller). Build
 * once per server: one codec per answer format.
 *
 * @example
 * const codecs = quollBodyCodecs(decodePool);
 * await service.infer(principal, address, codecs['arrow-file'], raw);
 */
export function quollBodyCodecs(
  decoder: QuollBodyDecoder,
): Readonly<Record<ResultFormat, InferenceCodec<null>>> {
  const codec = (format: ResultFormat): InferenceCodec<null> => {
    const decoded = format === 'json' ? withoutRequest : asTable;
    return {
      decode: (raw) => {
        // A body read on this thread is read here and now: no promise to await (the caller awaits only one).
        const input = decoder.decodeInline?.(raw.contentType, raw.body);
        if (input === undefined) return decoder.decode(raw.contentType, raw.body).then(decoded);
        return input instanceof Promise ? input.then(decoded) : decoded(input);
      },
      // A large answer is written in slices, yielding to the event loop between them. The Arrow
      // table is built once per result: the log rows reuse it.
      encode: (result) => encodeInferenceAnswer(result, format),
    };
  };
  return Object.freeze({
    json: codec('json'),
    'arrow-file': codec('arrow-file'),
    'arrow-stream': codec('arrow-stream'),
  });
}
