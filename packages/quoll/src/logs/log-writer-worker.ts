// The inference log's writer thread: runs a LogWriter on the appends its owner sends and
// reaches the segment index through the owner (which holds the database connection).
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../clock/index.js';
import { LogBatchUnpacker } from './log-batch-transfer.js';
import type { LogSegmentIndex } from './log-segment-index.js';
import { LogWriter } from './log-writer.js';
import type { FromWriter, IndexMethod, LogWriterSettings, ToWriter } from './log-writer-protocol.js';
import { SegmentReadCache } from './segment-read-cache.js';

const port = parentPort;
if (port === null) throw new Error('log-writer-worker.ts runs as a worker thread only');
const settings = workerData as LogWriterSettings;

const calls = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
let nextCall = 0;
// Arenas go back to the owner without a copy (its packer reuses them).
const post = (message: FromWriter): void =>
  port.postMessage(message, message.type === 'ready' ? message.arenas : []);

function call(method: IndexMethod, args: unknown[]): Promise<never> {
  const id = ++nextCall;
  return new Promise((resolve, reject) => {
    calls.set(id, { resolve: resolve as (value: unknown) => void, reject });
    post({ type: 'index-call', id, method, args });
  });
}

/** The owner's segment index, one message round trip per call. */
const index: LogSegmentIndex = {
  addSegment: (...a) => call('addSegment', a),
  updateSegments: (...a) => call('updateSegments', a),
  getSegment: (...a) => call('getSegment', a),
  listSegments: (...a) => call('listSegments', a),
  segmentsOverlapping: (...a) => call('segmentsOverlapping', a),
  newestSegments: (...a) => call('newestSegments', a),
  unsealedSegments: (...a) => call('unsealedSegments', a),
  pipelineIds: (...a) => call('pipelineIds', a),
  oldestDeletableSegment: (...a) => call('oldestDeletableSegment', a),
  deleteSegment: (...a) => call('deleteSegment', a),
  totalBytes: (...a) => call('totalBytes', a),
};

// The writer never reads segments back; the cache only takes the evictions of recovery.
const writer = new LogWriter(
  { root: settings.dir, index, cache: new SegmentReadCache(settings.dir, 0) },
  settings,
  systemClock,
  post,
);
const unpacker = new LogBatchUnpacker();

port.on('message', (msg: ToWriter) => {
  switch (msg.type) {
    case 'items': {
      // Its seq counts as taken whatever is set aside (log-batch-transfer.ts says why).
      const groups = unpacker.unpackHandOff(msg.body, msg.pipelineIds, (report) =>
        post({ type: 'quarantined', ...report }),
      );
      writer.give({
        seq: msg.seq,
        appends: msg.pipelineIds.map((pipelineId, k) => ({ pipelineId, batches: groups[k] ?? [] })),
        arena: msg.body.arena,
      });
      break;
    }
    case 'flush':
      writer.flush(msg.seq);
      break;
    case 'stop':
      writer.stop(msg.lastSeq);
      break;
    case 'index-result': {
      const pending = calls.get(msg.id);
      calls.delete(msg.id);
      if (msg.ok) pending?.resolve(msg.value);
      else pending?.reject(new Error(msg.message));
      break;
    }
  }
});

const sealed = await writer.run();
post({ type: 'stopped', failed: !sealed });
// Without a listener nothing keeps the thread alive: it ends once the message is sent.
port.removeAllListeners('message');
port.unref();
