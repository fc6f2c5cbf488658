import type { TensorInfoDto } from '@quoll/client/wire';
import type { EngineInput } from './inference-input.js';
import type { InferenceResult } from './inference-result.js';

/** A request body as it arrived, before any codec read it. */
export interface RawInferenceBody {
  /** The Content-Type header ('' when absent). */
  contentType: string;
  body: Uint8Array;
  /** A header of the request by lower-case name (codecs read their own, e.g. `inference-header-content-length`). */
  header(name: string): string | undefined;
}

/** The pipeline a request runs on, as a codec needs it to read the request and write the answer. */
export interface ServedModel {
  /** The pipeline's name. */
  name: string;
  /** The pipeline version that serves. */
  version: string;
  /**
   * What the pipeline takes: the first step's inputs, each named by the column that feeds it
   * (`tensorFields[i]` when configured, else the model input's own name).
   */
  inputs: readonly TensorInfoDto[];
  /** What the pipeline answers: the last step's outputs. */
  outputs: readonly TensorInfoDto[];
}

/** A decoded request: the engine's input, plus what the codec must remember to write the answer. */
export interface DecodedInference<Request> {
  input: EngineInput;
  request: Request;
  /**
   * The answer will be the result's Arrow table (`toArrowTable`), whose `in.*` columns hold the
   * values as sent: a JSON records input then keeps its Float64 log values from the feeds' walk
   * for every column, even one logged as Float32 (which otherwise takes its float32 feed's values),
   * so that the answer's table does not read the records again.
   */
  answerTable?: boolean;
}

/** An answer ready to send. */
export interface EncodedInference {
  contentType: string;
  /**
   * The answer's bytes; a large answer, encoded a slice at a time so the thread is never held
   * long, as its parts in order (sent one after another, `Content-Length` their total).
   */
  body: Uint8Array | string | readonly Uint8Array[];
  /** Extra response headers (e.g. `Inference-Header-Content-Length`). */
  headers?: Readonly<Record<string, string>>;
}

/**
 * A wire format for inference requests and answers, plugged into the one inference use case
 * (`InferenceService.infer`): Quoll's records/Arrow bodies, the Open Inference Protocol, and
 * whatever comes next. A codec only translates; lookup, running, logging and errors are the
 * use case's.
 *
 * `decode` throws catalogue errors (`ApiError`) for bodies it cannot read; it may be async so
 * that decoding can move off the HTTP thread. `encode` may be async too: a large answer is
 * written in slices that yield to the event loop between them (`encodeInferenceAnswer`).
 */
export interface InferenceCodec<Request> {
  decode(
    raw: RawInferenceBody,
    served: ServedModel,
  ): DecodedInference<Request> | Promise<DecodedInference<Request>>;
  encode(
    result: InferenceResult,
    request: Request,
    served: ServedModel,
  ): EncodedInference | Promise<EncodedInference>;
}
