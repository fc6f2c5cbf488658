import { appendFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileRunLogStore } from './file-run-log-store.js';

let dir: string;
let logs: FileRunLogStore;
const T = '2025-01-01T00:00:00.000000001Z';

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-run-logs-'));
  logs = new FileRunLogStore(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** How many of this process's file descriptors are open on `path` (Linux: /proc/self/fd). */
function descriptorsOn(path: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count++;
    } catch {
      // Closed meanwhile (e.g. the descriptor readdir itself used).
    }
  }
  return count;
}

describe('FileRunLogStore', () => {
  it('refuses run ids that are not safe file names', () => {
    expect(() => logs.pathFor('../etc/passwd')).toThrow(/Invalid run id/);
    expect(logs.pathFor('run-1_A')).toBe(join(dir, 'run-1_A.log'));
  });

  it('a follower started before the log exists gets every line and ends at the final line', async () => {
    const seen: string[] = [];
    const following = (async () => {
      for await (const l of logs.follow('r1')) seen.push(l.line);
    })();
    const w = logs.openWriter('r1');
    w.write(T, 'stdout', 'one');
    w.write(T, 'stderr', 'two');
    await w.drain();
    w.write(T, 'stdout', 'quoll: run finished: success (exit 0)'); // user text that only looks final
    await w.finish(T, 'quoll: run finished: success (exit 0)');
    await following;
    expect(seen).toEqual([
      'one',
      'two',
      'quoll: run finished: success (exit 0)',
      'quoll: run finished: success (exit 0)',
    ]);
  });

  it('skips a torn line left by a crash and keeps reading', async () => {
    const w = logs.openWriter('r2');
    w.write(T, 'stdout', 'before');
    await w.drain();
    appendFileSync(logs.pathFor('r2'), '{"time":"2025-01-01T00:0\n');
    await logs.appendFinal('r2', T, 'quoll: run finished: failure (lost)');
    expect((await logs.read('r2')).map((l) => l.line)).toEqual([
      'before',
      'quoll: run finished: failure (lost)',
    ]);
    expect((await logs.read('r2', { limit: 1 })).map((l) => l.line)).toEqual([
      'quoll: run finished: failure (lost)',
    ]);
    expect(await logs.read('r2', { limit: 0 })).toEqual([]);
  });

  it('a final line appended after a torn last line without newline starts its own line', async () => {
    const w = logs.openWriter('r4');
    w.write(T, 'stdout', 'before');
    await w.drain();
    // A crash mid-write: half a JSON line, no newline.
    appendFileSync(logs.pathFor('r4'), '{"time":"2025-01-01T00:0');
    await logs.appendFinal('r4', T, 'quoll: run finished: failure (lost)');
    expect((await logs.read('r4')).map((l) => l.line)).toEqual([
      'before',
      'quoll: run finished: failure (lost)',
    ]);
    // A follower sees the final line too, so it ends.
    const followed: string[] = [];
    for await (const l of logs.follow('r4')) followed.push(l.line);
    expect(followed).toEqual(['before', 'quoll: run finished: failure (lost)']);
  });

  it("a final line for a run whose writer is gone closes that writer's file (never left to the garbage collector)", async () => {
    const path = logs.pathFor('r5');
    const w = logs.openWriter('r5');
    w.write(T, 'stdout', 'before');
    await w.drain();
    expect(descriptorsOn(path)).toBe(1);
    await logs.appendFinal('r5', T, 'quoll: run finished: failure (lost)');
    expect(descriptorsOn(path)).toBe(0);
    // The writer that was replaced writes nothing more after the final line.
    w.write(T, 'stdout', 'after');
    await w.drain();
    expect(descriptorsOn(path)).toBe(0);
    expect((await logs.read('r5')).map((l) => l.line)).toEqual([
      'before',
      'quoll: run finished: failure (lost)',
    ]);
  });

  it('keeps multi-byte characters intact', async () => {
    const w = logs.openWriter('r3');
    w.write(T, 'stdout', 'größe 📈 ok');
    await w.finish(T, 'end');
    expect((await logs.read('r3'))[0]?.line).toBe('größe 📈 ok');
  });
});

describe('FileRunLogStore limits', () => {
  const FINAL = 'quoll: run finished: success (exit 0)';

  it('caps a run log: lines past the cap are dropped and counted, and the log says so before its final line', async () => {
    const capped = new FileRunLogStore({ dir, maxBytesPerRun: 64 * 1024 });
    const w = capped.openWriter('big');
    for (let i = 0; i < 5000; i++) w.write(T, 'stdout', `line ${i} ${'x'.repeat(50)}`);
    await w.finish(T, FINAL);
    const size = statSync(capped.pathFor('big')).size;
    expect(size).toBeLessThanOrEqual(64 * 1024);
    const lines = (await capped.read('big')).map((l) => l.line);
    const cap = lines.findIndex((l) => l.startsWith('quoll: this run'));
    expect(lines[cap]).toBe(
      "quoll: this run's log reached its cap of 64 KiB; further output is dropped and counted",
    );
    expect(lines.slice(0, cap).every((l) => l.startsWith('line '))).toBe(true);
    const dropped =
      /^quoll: (\d+) lines \(\d+(\.\d)? KiB\) of output were dropped after the log cap of 64 KiB$/.exec(
        lines.at(-2) ?? '',
      );
    expect(Number(dropped?.[1])).toBe(5000 - cap);
    expect(lines.at(-1)).toBe(FINAL);
  });

  it('asks the producer to pause while much is queued, and says when it has caught up', async () => {
    const w = logs.openWriter('fast');
    let paused = false;
    for (let i = 0; i < 20_000 && !paused; i++) paused = !w.write(T, 'stdout', 'y'.repeat(200));
    expect(paused).toBe(true);
    await new Promise<void>((resolve) => w.onDrain(resolve));
    await w.finish(T, FINAL);
  });

  it('keeps all logs under the total cap by cutting the oldest finished ones to a note and their final line', async () => {
    const store = new FileRunLogStore({ dir, maxBytesTotal: 250 * 1024 });
    await store.open();
    const running = store.openWriter('running');
    running.write(T, 'stdout', 'r'.repeat(100 * 1024));
    for (const id of ['old', 'middle', 'new']) {
      const w = store.openWriter(id);
      w.write(T, 'stdout', id.repeat(30 * 1024));
      await w.finish(T, `${FINAL} ${id}`);
    }
    await running.drain();
    // Each finish schedules the cap.
    await store.retentionApplied();
    expect(store.totalBytes).toBeLessThanOrEqual(250 * 1024);
    const old = (await store.read('old')).map((l) => l.line);
    expect(old[0]).toMatch(
      /^quoll: this run's output \(\d+(\.\d)? KiB\) was removed to keep all run logs under 250 KiB, oldest first$/,
    );
    expect(old[1]).toBe(`${FINAL} old`);
    expect((await store.read('new'))[0]?.line).toBe('new'.repeat(30 * 1024));
    // The running run's log is never cut; followers of a cut log still end.
    expect((await store.read('running'))[0]?.line.length).toBe(100 * 1024);
    const followed: string[] = [];
    for await (const l of store.follow('old')) followed.push(l.line);
    expect(followed.at(-1)).toBe(`${FINAL} old`);
    await running.finish(T, FINAL);
    await store.retentionApplied();
    // A restarted server learns the sizes from disk.
    const again = new FileRunLogStore({ dir, maxBytesTotal: 250 * 1024 });
    await again.open();
    expect(again.totalBytes).toBeLessThanOrEqual(250 * 1024);
  });

  it('reads and follows a 1 GiB log in constant memory (a sparse file: lines, a hole, lines)', async () => {
    const path = logs.pathFor('huge');
    const head = Array.from(
      { length: 1000 },
      (_, i) => JSON.stringify({ time: T, stream: 'stdout', line: `head ${i}` }) + '\n',
    ).join('');
    const tail = Array.from(
      { length: 1000 },
      (_, i) => JSON.stringify({ time: T, stream: 'stdout', line: `tail ${i}` }) + '\n',
    ).join('');
    const final = JSON.stringify({ time: T, stream: 'stdout', line: FINAL, quoll: true, final: true }) + '\n';
    const fh = await open(path, 'w');
    await fh.write(head);
    // 1 GiB of hole (reads as NUL bytes, no newline), then a newline and the rest.
    const at = Buffer.byteLength(head) + 1024 ** 3;
    await fh.write(`\n${tail}${final}`, at);
    await fh.close();
    expect(statSync(path).size).toBeGreaterThan(1024 ** 3);

    const before = process.memoryUsage();
    let count = 0;
    let last = '';
    for await (const l of logs.lines('huge')) {
      count++;
      last = l.line;
    }
    expect(count).toBe(2001);
    expect(last).toBe(FINAL);
    const tailLines = (await logs.read('huge', { limit: 2 })).map((l) => l.line);
    expect(tailLines).toEqual(['tail 999', FINAL]);
    let followed = 0;
    let sawFinal = false;
    for await (const l of logs.follow('huge', undefined, () => (sawFinal = true))) {
      followed++;
      last = l.line;
    }
    expect(followed).toBe(2001);
    expect(sawFinal).toBe(true);
    const after = process.memoryUsage();
    // A whole-file read would need > 1 GiB; chunked reading stays within a few MiB.
    expect(after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers)).toBeLessThan(
      64 * 1024 ** 2,
    );
  }, 120_000);
});
