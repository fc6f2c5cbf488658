/**
 * A decode worker: a worker_threads entry that turns inference bodies into plain data (an
 * Arrow table's typed arrays, or JSON records) off the server's event loop. A body whose decode
 * runs away only stalls this thread; the pool abandons and replaces it. Importing this file
 * outside a worker does nothing.
 */
import { parentPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { toErrorOutcome } from '../../errors/index.js';
import { readArrowLayout } from '../inference-input.js';
import { readOpenInferenceBody } from '../open-inference-codec.js';
import { DECODE_PROTOCOL_VERSION } from './decode-protocol.js';
import type { DecodeReply, DecodeRequest } from './decode-protocol.js';
import { jsonRecordsToTable } from './scan-records.js';
import { collectBuffers } from './transferred-table.js';

const port = parentPort;
if (port) {
  port.on('message', (message: DecodeRequest | DecodeRequest[]) => {
    if (Array.isArray(message)) for (const request of message) decodeOne(port, request);
    else decodeOne(port, message);
  });
  // Jobs (and their deadlines) start only once the worker has loaded.
  const ready: DecodeReply = { v: DECODE_PROTOCOL_VERSION, id: 0, ready: true };
  port.postMessage(ready);
}

/** Decodes one body and answers it. */
function decodeOne(port: MessagePort, request: DecodeRequest): void {
  if (request.v !== DECODE_PROTOCOL_VERSION) {
    const reply: DecodeReply = {
      v: DECODE_PROTOCOL_VERSION,
      id: request.id,
      ok: false,
      error: { code: 'internal_error', message: 'The decode worker speaks another protocol version.' },
    };
    port.postMessage(reply);
    return;
  }
  let reply: DecodeReply;
  const transfer: ArrayBuffer[] = [];
  try {
    if (request.format === 'open-inference') {
      const body = readOpenInferenceBody(request.body, request.headerLength);
      // Every tensor's values are fresh arrays of this thread (binary data is copied out).
      for (const tensor of body.tensors) {
        if (tensor.values.buffer instanceof ArrayBuffer && !transfer.includes(tensor.values.buffer))
          transfer.push(tensor.values.buffer);
      }
      reply = { v: DECODE_PROTOCOL_VERSION, id: request.id, ok: true, kind: 'open-inference', body };
    } else if (request.format === 'json') {
      // Records go back as float64 columns: cloning the parsed object graph back would cost
      // the event loop more than parsing the JSON there. The plain shape is read straight from
      // the bytes; anything else (and every invalid body) the general way, which names the error.
      const table = jsonRecordsToTable(request.body);
      collectBuffers(table.batches.flat(), transfer);
      reply = { v: DECODE_PROTOCOL_VERSION, id: request.id, ok: true, kind: 'arrow', table };
    } else {
      // Only the vetted layout goes back (plain numbers), and the body if it was moved here:
      // the parent builds the columns as views of it, which costs it less than reading Arrow
      // IPC itself.
      const layout = readArrowLayout(request.body);
      const moved = request.moved && request.body.buffer instanceof ArrayBuffer;
      if (moved) transfer.push(request.body.buffer as ArrayBuffer);
      reply = {
        v: DECODE_PROTOCOL_VERSION,
        id: request.id,
        ok: true,
        kind: 'arrow-layout',
        layout,
        body: moved ? request.body : null,
      };
    }
  } catch (error) {
    reply = { v: DECODE_PROTOCOL_VERSION, id: request.id, ok: false, error: toErrorOutcome(error) };
  }
  port.postMessage(reply, transfer);
}
