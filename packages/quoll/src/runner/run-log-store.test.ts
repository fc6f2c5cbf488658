import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunLogStore } from './run-log-store.js';

let dir: string;
let logs: RunLogStore;
const T = '2025-01-01T00:00:00.000000001Z';

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-run-logs-'));
  logs = new RunLogStore(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('RunLogStore', () => {
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

  it('keeps multi-byte characters intact', async () => {
    const w = logs.openWriter('r3');
    w.write(T, 'stdout', 'größe 📈 ok');
    await w.finish(T, 'end');
    expect((await logs.read('r3'))[0]?.line).toBe('größe 📈 ok');
  });
});
