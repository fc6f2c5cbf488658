import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunLogStore } from '../../runner/index.js';

/** Opens a fresh, empty run-log store (capped per run as given); `close` ends what it opened. */
export type MakeRunLogStore = (options: {
  maxBytesPerRun: number;
}) => Promise<{ storage: RunLogStore; close: () => Promise<void> }>;

/** The {@link RunLogStore} contract, run against one backend (files, or a database). */
export function runLogStoreSuite(backend: string, make: MakeRunLogStore): void {
  describe(`${backend}: RunLogStore`, () => {
    let storage: RunLogStore;
    let close: () => Promise<void>;

    beforeEach(async () => {
      ({ storage, close } = await make({ maxBytesPerRun: 1024 * 1024 }));
    });
    afterEach(async () => {
      await close();
    });

    const t = (i: number): string => `2025-01-01T00:00:00.${String(i).padStart(9, '0')}Z`;

    it('keeps lines in order and ends with the final line; reads the last n', async () => {
      const w = storage.openWriter('run-a');
      w.write(t(1), 'stdout', 'one');
      w.write(t(2), 'stderr', 'two');
      await w.drain();
      w.write(t(3), 'stdout', 'three');
      await w.finish(t(4), 'quoll: run finished: success (exit 0)');
      // Nothing after the final line is kept.
      w.write(t(5), 'stdout', 'late');
      await w.drain();
      expect(await storage.read('run-a')).toEqual([
        { time: t(1), stream: 'stdout', line: 'one' },
        { time: t(2), stream: 'stderr', line: 'two' },
        { time: t(3), stream: 'stdout', line: 'three' },
        { time: t(4), stream: 'stdout', line: 'quoll: run finished: success (exit 0)' },
      ]);
      expect((await storage.read('run-a', { limit: 2 })).map((l) => l.line)).toEqual([
        'three',
        'quoll: run finished: success (exit 0)',
      ]);
      expect(await storage.read('run-a', { limit: 0 })).toEqual([]);
      expect(await storage.read('no-such-run')).toEqual([]);
    });

    it('keeps each run apart and appends a final line to a run whose writer is gone', async () => {
      const w = storage.openWriter('run-b');
      w.write(t(1), 'stdout', 'b1');
      await w.drain();
      await storage.appendFinal('run-b', t(2), 'quoll: run finished: failure (lost)');
      await storage.appendFinal('run-c', t(3), 'quoll: run finished: killed (never started)');
      expect((await storage.read('run-b')).map((l) => l.line)).toEqual([
        'b1',
        'quoll: run finished: failure (lost)',
      ]);
      expect((await storage.read('run-c')).map((l) => l.line)).toEqual([
        'quoll: run finished: killed (never started)',
      ]);
    });

    it('follow yields what exists, then lines as they are written, and ends after the final line', async () => {
      const w = storage.openWriter('run-f');
      w.write(t(1), 'stdout', 'before');
      await w.drain();
      let finals = 0;
      const seen: string[] = [];
      const following = (async () => {
        for await (const line of storage.follow('run-f', undefined, () => finals++)) seen.push(line.line);
      })();
      await waitUntil(() => seen.length === 1);
      w.write(t(2), 'stdout', 'live');
      await waitUntil(() => seen.length === 2);
      await w.finish(t(3), 'quoll: run finished: success (exit 0)');
      await following;
      expect(seen).toEqual(['before', 'live', 'quoll: run finished: success (exit 0)']);
      expect(finals).toBe(1);
    });

    it('a line that only looks like the final status line does not end a follow', async () => {
      const w = storage.openWriter('run-g');
      w.write(t(1), 'stdout', 'quoll: run finished: success (exit 0)');
      const seen: string[] = [];
      const following = (async () => {
        for await (const line of storage.follow('run-g')) seen.push(line.line);
      })();
      await waitUntil(() => seen.length === 1);
      await w.finish(t(2), 'quoll: run finished: failure (exit 1)');
      await following;
      expect(seen).toHaveLength(2);
    });

    it('past the per-run cap, lines are dropped and counted, and the log says so before its final line', async () => {
      const small = await make({ maxBytesPerRun: 16 * 1024 });
      const w = small.storage.openWriter('run-cap');
      for (let i = 0; i < 400; i++) w.write(t(i), 'stdout', `line ${i} ${'x'.repeat(60)}`);
      await w.finish(t(999), 'quoll: run finished: success (exit 0)');
      const lines = (await small.storage.read('run-cap')).map((l) => l.line);
      await small.close();
      expect(lines.length).toBeLessThan(400);
      expect(lines).toContain(
        "quoll: this run's log reached its cap of 16 KiB; further output is dropped and counted",
      );
      expect(lines.at(-2)).toMatch(
        /^quoll: \d+ lines \([\d.]+ KiB\) of output were dropped after the log cap of 16 KiB$/,
      );
      expect(lines.at(-1)).toBe('quoll: run finished: success (exit 0)');
    });

    it('reads a long log through in order, and its last lines', async () => {
      const w = storage.openWriter('run-long');
      for (let i = 0; i < 2500; i++) w.write(t(i), 'stdout', `${i}`);
      await w.finish(t(9999), 'done');
      const all = await storage.read('run-long');
      expect(all).toHaveLength(2501);
      expect(all.slice(0, 3).map((l) => l.line)).toEqual(['0', '1', '2']);
      expect((await storage.read('run-long', { limit: 3 })).map((l) => l.line)).toEqual([
        '2498',
        '2499',
        'done',
      ]);
    });

    it('a follow of a log without a final line ends once the run is known to be over', async () => {
      const w = storage.openWriter('run-cut');
      w.write(t(1), 'stdout', 'partial');
      await w.drain();
      const seen: string[] = [];
      for await (const line of storage.follow('run-cut', undefined, undefined, async () => ({
        status: 'failure',
        reason: 'lost',
      }))) {
        seen.push(line.line);
      }
      expect(seen[0]).toBe('partial');
      expect(seen[1]).toMatch(/^quoll: run finished: failure \(lost; its log has no final line\)$/);
      // As a server does for a lost run: the final line, which retires the writer left open
      // here (a crashed one's process would be gone; this one would keep its file open).
      await storage.appendFinal('run-cut', t(2), 'quoll: run finished: failure (lost)');
      expect((await storage.read('run-cut')).map((l) => l.line)).toEqual([
        'partial',
        'quoll: run finished: failure (lost)',
      ]);
    }, 20_000);

    it('an aborted follow ends without the final line', async () => {
      const controller = new AbortController();
      const seen: string[] = [];
      const following = (async () => {
        for await (const line of storage.follow('run-h', controller.signal)) seen.push(line.line);
      })();
      await new Promise((r) => setTimeout(r, 50));
      controller.abort();
      await following;
      expect(seen).toEqual([]);
    });
  });
}

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('timed out');
}
