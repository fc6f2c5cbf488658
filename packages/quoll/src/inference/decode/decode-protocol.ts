import type { ErrorOutcome } from '../../errors/index.js';
import type { OpenInferenceBody } from '../open-inference-codec.js';
import type { ArrowIpcLayout } from './check-arrow-ipc.js';
import type { TransferredTable } from './transferred-table.js';

/**
 * What the decode pool and its workers say to each other. Both sides import this file; a
 * message with another `v` is refused, so a stale worker script cannot misread a newer parent.
 */
export const DECODE_PROTOCOL_VERSION = 3;

/** What a body is: Quoll's JSON records or Arrow IPC, or an Open Inference Protocol body. */
export type DecodeFormat = 'json' | 'arrow' | 'open-inference';

/**
 * Parent → worker: decode one body (its buffer is transferred when the pool owns it). Several
 * small bodies may come in one message (an array), decoded in order, each answered on its own.
 */
export interface DecodeRequest {
  v: typeof DECODE_PROTOCOL_VERSION;
  id: number;
  format: DecodeFormat;
  body: Uint8Array;
  /** An Open Inference body's `Inference-Header-Content-Length`, when sent. */
  headerLength?: string | undefined;
  /** The body was moved here, not copied: an Arrow body's reply hands it back. */
  moved: boolean;
}

/**
 * Worker → parent: an Arrow body's vetted layout (the body handed back, for the parent to build
 * the columns as views of it), JSON records as an Arrow table in plain data (float64 columns),
 * an Open Inference body's tensors, or a catalogue error.
 */
export type DecodeReply =
  | { v: typeof DECODE_PROTOCOL_VERSION; id: 0; ready: true }
  | {
      v: typeof DECODE_PROTOCOL_VERSION;
      id: number;
      ok: true;
      kind: 'arrow-layout';
      layout: ArrowIpcLayout;
      /** The body, when it was moved to the worker (a copied one is still the parent's). */
      body: Uint8Array | null;
    }
  | { v: typeof DECODE_PROTOCOL_VERSION; id: number; ok: true; kind: 'arrow'; table: TransferredTable }
  | {
      v: typeof DECODE_PROTOCOL_VERSION;
      id: number;
      ok: true;
      kind: 'open-inference';
      body: OpenInferenceBody;
    }
  | { v: typeof DECODE_PROTOCOL_VERSION; id: number; ok: false; error: ErrorOutcome };

/** A successful reply. */
export type DecodeSuccess = Extract<DecodeReply, { ok: true }>;
