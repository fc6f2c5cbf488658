import type { ErrorOutcome } from '../../errors/index.js';
import type { OpenInferenceBody } from '../open-inference-codec.js';
import type { TransferredTable } from './transferred-table.js';

/**
 * What the decode pool and its workers say to each other. Both sides import this file; a
 * message with another `v` is refused, so a stale worker script cannot misread a newer parent.
 */
export const DECODE_PROTOCOL_VERSION = 2;

/** What a body is: Quoll's JSON records or Arrow IPC, or an Open Inference Protocol body. */
export type DecodeFormat = 'json' | 'arrow' | 'open-inference';

/** Parent → worker: decode one body (its buffer is transferred when the pool owns it). */
export interface DecodeRequest {
  v: typeof DECODE_PROTOCOL_VERSION;
  id: number;
  format: DecodeFormat;
  body: Uint8Array;
  /** An Open Inference body's `Inference-Header-Content-Length`, when sent. */
  headerLength?: string | undefined;
}

/**
 * Worker → parent: the decoded input as an Arrow table in plain data (JSON records become float64
 * columns), an Open Inference body's tensors, or a catalogue error.
 */
export type DecodeReply =
  | { v: typeof DECODE_PROTOCOL_VERSION; id: 0; ready: true }
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
