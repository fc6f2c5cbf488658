// The floor under the log writer thread's kernel time: what this machine's kernel costs a thread
// that writes the log's bytes the way the writer does — one gathered write (two buffers) per
// hand-off every HANDOFF_MS (default 50), `fdatasync` at most every 150 ms, a new file every
// 64 MiB — at MBPS megabytes a second (default 30) for SECONDS (default 10), with no Arrow, no
// messages, no JS per batch. Prints the thread's CPU (schedstat, to the nanosecond) a second and a
// MB, and its user / system ticks. Compare with `writer-thread-probe.ts`'s "ms a MB written"
// (jsonlog lane, 6 December: the writer's kernel part was about this floor, in both formats).
// Usage: flock /tmp/quoll-bench.lock env MBPS=30 taskset -c 0 npx tsx bench/raw-write-floor-probe.ts
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writevSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const mbps = Number(process.env.MBPS ?? 30);
const handOffMs = Number(process.env.HANDOFF_MS ?? 50);
const seconds = Number(process.env.SECONDS ?? 10);
const SYNC_MS = 150;
const SEGMENT_BYTES = 64 * 2 ** 20;

const dir = mkdtempSync(join(tmpdir(), 'quoll-raw-write-'));
const perHandOff = Math.round((mbps * 1e6 * handOffMs) / 1000);
const half = Math.floor(perHandOff / 2);
const buffers = [Buffer.alloc(half, 7), Buffer.alloc(perHandOff - half, 9)];

/** This thread's CPU seconds to the nanosecond, and its user / system ticks (1/100 s). */
function cpu(): { run: number; user: number; sys: number } {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const run = Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e9;
  return { run, user: Number(f[11]), sys: Number(f[12]) };
}

let segment = 0;
let fd = openSync(join(dir, `${segment}.arrows`), 'w');
let fileBytes = 0;
let written = 0;
let syncs = 0;
let lastSync = 0;
const t0 = Date.now();
const c0 = cpu();
while (Date.now() - t0 < seconds * 1000) {
  const n = writevSync(fd, buffers);
  written += n;
  fileBytes += n;
  if (fileBytes >= SEGMENT_BYTES) {
    fdatasyncSync(fd);
    closeSync(fd);
    fd = openSync(join(dir, `${++segment}.arrows`), 'w');
    fileBytes = 0;
  }
  const now = Date.now();
  if (now - lastSync >= SYNC_MS) {
    fdatasyncSync(fd);
    syncs++;
    lastSync = now;
  }
  await sleep(handOffMs);
}
const elapsed = (Date.now() - t0) / 1000;
const c1 = cpu();
closeSync(fd);
rmSync(dir, { recursive: true, force: true });
const ms = (c1.run - c0.run) * 1e3;
console.log(
  `${(written / elapsed / 1e6).toFixed(1)} MB/s in ${(perHandOff / 1e6).toFixed(2)} MB writes, ${(syncs / elapsed).toFixed(1)} syncs/s: ` +
    `${(ms / elapsed).toFixed(1)} ms of CPU a second, ${(ms / (written / 1e6)).toFixed(3)} ms a MB ` +
    `(ticks: user ${c1.user - c0.user}, system ${c1.sys - c0.sys})`,
);
