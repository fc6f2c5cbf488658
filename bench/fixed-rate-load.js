// An open-loop, fixed-rate HTTP load for `bench/logging.bench.ts` (BENCH_LOSS=1), run as its own
// process (pinned like wrk): request k is due at start + k / rate whether or not earlier ones
// have been answered (wrk cannot hold a rate). Each request's rows carry a unique tag in their
// first feature (firstTag + k * batch + i) so the inference log can be checked row by row.
// Config: a JSON file named by argv[2] — { url, token, contentType, batch, rate, seconds,
// connections, firstTag, and either parts (JSON: the body is parts[0] + tag + parts[1] + … +
// parts[batch]) or template (base64 Arrow IPC bytes) with offsets (byte offset of each row's
// first float32) }. Prints one JSON line: counts, the 2xx-acknowledged request numbers,
// latency from each request's due time (so queueing behind a slow server is counted) and how
// late the generator itself sent.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const url = new URL(cfg.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.connections });
const template = cfg.template === undefined ? null : Buffer.from(cfg.template, 'base64');

function body(k) {
  const first = cfg.firstTag + k * cfg.batch;
  if (template !== null) {
    const b = Buffer.from(template);
    for (let i = 0; i < cfg.offsets.length; i++) b.writeFloatLE(first + i, cfg.offsets[i]);
    return b;
  }
  let s = cfg.parts[0];
  for (let i = 0; i < cfg.batch; i++) s += String(first + i) + cfg.parts[i + 1];
  return Buffer.from(s);
}

const total = Math.round(cfg.rate * cfg.seconds);
const interval = 1000 / cfg.rate;
const acked = [];
const latencies = [];
let sent = 0;
let answered = 0;
let non2xx = 0;
let errors = 0;
let maxLateMs = 0;
let lastAnswer = 0;
const t0 = performance.now() + 20;

function report() {
  const sorted = latencies.sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null;
  console.log(
    JSON.stringify({
      total,
      sent,
      answered,
      acked: acked.length,
      non2xx,
      errors,
      unanswered: sent - answered,
      sendSeconds: (Math.min(performance.now(), t0 + total * interval) - t0) / 1000,
      lastAnswerS: (lastAnswer - t0) / 1000,
      latencyP50Ms: pct(50),
      latencyP99Ms: pct(99),
      latencyMaxMs: sorted.at(-1) ?? null,
      maxLateMs,
      ackedRequests: acked,
    }),
  );
  agent.destroy();
  process.exit(0);
}

function answeredOne(due) {
  answered++;
  lastAnswer = performance.now();
  latencies.push(lastAnswer - due);
  if (answered === total) report();
}

function send(k, due) {
  const b = body(k);
  const req = http.request(
    {
      agent,
      host: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      method: 'POST',
      headers: {
        'content-type': cfg.contentType,
        accept: cfg.contentType,
        'content-length': b.length,
        ...(cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}),
      },
    },
    (res) => {
      res.resume();
      res.once('end', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) acked.push(k);
        else non2xx++;
        answeredOne(due);
      });
    },
  );
  req.once('error', () => {
    errors++;
    answeredOne(due);
  });
  req.end(b);
}

function tick() {
  const now = performance.now();
  while (sent < total && t0 + sent * interval <= now) {
    const due = t0 + sent * interval;
    maxLateMs = Math.max(maxLateMs, now - due);
    send(sent++, due);
  }
  if (sent < total) setTimeout(tick, Math.max(0, Math.min(1, t0 + sent * interval - performance.now())));
}
setTimeout(tick, 20);
// Requests still unanswered a minute after the last was due are reported as such.
setTimeout(report, cfg.seconds * 1000 + 60_000);
