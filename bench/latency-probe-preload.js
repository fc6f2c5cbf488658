// Loaded into a Quoll server by `bench/latency-probe.ts` (node --import): while recording
// (SIGUSR2 toggles it), notes on one clock (performance.now()) every HTTP request's time from
// the `request` event to the response's `finish`, every garbage collection of the HTTP
// thread's isolate, and every `durable` (fsynced) and `ready` (written) message of the
// inference log's writer thread; writes them to LATENCY_PROBE_OUT at exit.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

const out = process.env.LATENCY_PROBE_OUT;
const requests = [];
const gc = [];
const writer = [];
let recording = false;
process.on('SIGUSR2', () => {
  recording = !recording;
});
new PerformanceObserver((list) => {
  if (recording) for (const e of list.getEntries()) gc.push([e.startTime, e.duration, e.detail?.kind ?? 0]);
}).observe({ entryTypes: ['gc'] });
const serverEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && recording) {
    const t0 = performance.now();
    res.once('finish', () => requests.push([t0, performance.now() - t0]));
  }
  return serverEmit.apply(this, arguments);
};
const workerEmit = Worker.prototype.emit;
Worker.prototype.emit = function (event, message) {
  if (recording && event === 'message' && (message?.type === 'durable' || message?.type === 'ready'))
    writer.push([performance.now(), message.type]);
  return workerEmit.apply(this, arguments);
};
process.on('exit', () => {
  if (out) writeFileSync(out, JSON.stringify({ requests, gc, writer }));
});
