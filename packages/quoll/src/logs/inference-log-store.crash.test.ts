import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SqliteLogSegmentIndex } from '../store/sqlite/sqlite-log-segment-index.js';
import { openSqliteDatabase } from '../store/sqlite/sqlite-database.js';
import { InferenceLogStore } from './index.js';
import { logIndexHome } from '../../../../test/support/log-index-home.js';

const PACKAGE_DIR = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The child: opens the store on the given home and appends 100-row batches forever
 * (ids 0, 1, 2, …, time = T0 + id), printing "flushed <n>" after each flush() that covers n rows.
 */
const CHILD = `
import { Field, FixedSizeList, Float32, RecordBatch, Schema, Struct, TimestampMillisecond, Uint32, makeData } from 'apache-arrow';
import { InferenceLogStore } from './src/logs/index.ts';
import { SqliteLogSegmentIndex } from './src/store/sqlite/sqlite-log-segment-index.ts';
import { openSqliteDatabase } from './src/store/sqlite/sqlite-database.ts';
const [home, migrations] = process.argv.slice(-2);
const db = openSqliteDatabase(home + '/quoll.db', migrations);
const store = await InferenceLogStore.open({ dir: home + '/logs', index: new SqliteLogSegmentIndex(db), segmentMaxRows: 5000, syncIntervalMs: 50 });
const T0 = 1_700_000_000_000;
const ts = new TimestampMillisecond();
const outType = new FixedSizeList(1, new Field('item', new Float32(), false));
const schema = new Schema([new Field('time', ts, false), new Field('out.variable', outType, false), new Field('check_failures', new Uint32(), false)]);
let next = 0;
for (;;) {
  for (let k = 0; k < 10; k++) {
    const n = 100;
    const time = BigInt64Array.from({ length: n }, (_, i) => BigInt(T0 + next + i));
    const ids = Float32Array.from({ length: n }, (_, i) => next + i);
    const children = [
      makeData({ type: ts, length: n, data: time }),
      makeData({ type: outType, length: n, child: makeData({ type: new Float32(), length: n, data: ids }) }),
      makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) }),
    ];
    await store.append(1, new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, children })));
    next += n;
  }
  await store.flush();
  process.stdout.write('flushed ' + next + '\\n');
}
`;

let dir: string;

beforeEach(() => {
  dir = logIndexHome('quoll-logcrash-');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

it('after kill -9 of a writing process, every row it reported flushed is there and the store answers', async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', CHILD, dir, join(dir, 'migrations')],
    { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  let flushed = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^flushed (\d+)$/.exec(line);
    if (m !== null) flushed = Number(m[1]);
    // Enough to span several segments, then kill it mid-stream.
    if (flushed >= 20_000) {
      child.kill('SIGKILL');
      break;
    }
  }
  expect(await exited).toBe('SIGKILL');
  expect(flushed).toBeGreaterThanOrEqual(20_000);

  const db = openSqliteDatabase(join(dir, 'quoll.db'), join(dir, 'migrations'));
  const index = new SqliteLogSegmentIndex(db);
  const store = await InferenceLogStore.open({ dir: join(dir, 'logs'), index });
  try {
    expect(store.recovery.segments).toBeGreaterThanOrEqual(1);
    const T0 = 1_700_000_000_000;
    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.query(1, {
        start: T0,
        end: T0 + 10_000_000,
        limit: 5000,
        ...(cursor ? { cursor } : {}),
      });
      const col = page.table.getChild('out.variable');
      for (let i = 0; i < page.rows; i++) seen.push((col?.get(i) as { get(i: number): number }).get(0));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    // Every flushed row, in order, no gaps or doubles; rows after the last report may or may not be there.
    expect(seen.length).toBeGreaterThanOrEqual(flushed);
    expect(seen.every((id, i) => id === i)).toBe(true);
    const newest = await store.query(1, { limit: 1 });
    expect(newest.rows).toBe(1);
    expect((await index.unsealedSegments()).length).toBe(0);
  } finally {
    await store.stop();
    db.close();
  }
});
