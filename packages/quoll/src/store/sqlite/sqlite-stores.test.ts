import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clusterSuite,
  concurrencySuite,
  keyCheckStoreSuite,
  runLogStoreSuite,
  inferenceLogsSuite,
  connectionStoreSuite,
  logSegmentIndexSuite,
  modelStoreSuite,
  orchestrationStoreSuite,
  pipelineStoreSuite,
  taskStoreSuite,
  tokenStoreSuite,
  workspaceStoreSuite,
} from '../conformance/index.js';
import type { MakeStores, OpenPeer } from '../conformance/index.js';
import { openStore } from '../open-store.js';
import { SchemaTooNewError } from '../schema-migrations.js';
import type { Stores } from '../stores.js';
import { MIGRATIONS_DIR, openSqliteDatabase } from './sqlite-database.js';
import { FileRunLogStore } from '../../runner/index.js';
import { InferenceLogStore } from '../../logs/index.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-sqlite-stores-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const paths = new WeakMap<Stores, string>();
let files = 0;

/** A fresh database file per call. */
const makeStores: MakeStores = async (options) => {
  const path = join(root, `${++files}.db`);
  const stores = await openStore({ kind: 'sqlite', path }, options);
  paths.set(stores, path);
  return stores;
};

/** Another handle on the same file, as a second process would have. */
const openPeer: OpenPeer = async (stores, options) => {
  const path = paths.get(stores);
  if (path === undefined) throw new Error('not made by makeStores');
  return openStore({ kind: 'sqlite', path }, options);
};

workspaceStoreSuite('sqlite', makeStores);
tokenStoreSuite('sqlite', makeStores);
modelStoreSuite('sqlite', makeStores);
pipelineStoreSuite('sqlite', makeStores);
connectionStoreSuite('sqlite', makeStores);
logSegmentIndexSuite('sqlite', makeStores);
orchestrationStoreSuite('sqlite', makeStores);
taskStoreSuite('sqlite', makeStores);
concurrencySuite('sqlite', makeStores, openPeer);
clusterSuite('sqlite', makeStores, openPeer, { crossProcess: false });
keyCheckStoreSuite('sqlite', makeStores);
// The embedded home's run logs are files: the same contract as the database's.
runLogStoreSuite('files', async ({ maxBytesPerRun }) => {
  const dir = mkdtempSync(join(root, 'task-logs-'));
  const storage = new FileRunLogStore({ dir, maxBytesPerRun });
  await storage.open();
  return { storage, close: async () => rmSync(dir, { recursive: true, force: true }) };
});

// The embedded home's inference logs are segment files indexed in SQLite; small pieces are
// segments of 40 rows.
inferenceLogsSuite('files + sqlite', async ({ smallPieces, queueCapacityRows }) => {
  const stores = await makeStores();
  const dir = mkdtempSync(join(root, 'inference-logs-'));
  const logs = await InferenceLogStore.open({
    dir,
    index: stores.logIndex,
    ...(smallPieces === true ? { segmentMaxRows: 40 } : {}),
    ...(queueCapacityRows === undefined ? {} : { queueCapacityRows }),
  });
  return {
    logs,
    close: async () => {
      await logs.stop();
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite: migrations', () => {
  it('a database migrated by a newer Quoll is refused, and left as it was', async () => {
    const path = join(root, 'newer.db');
    const db = openSqliteDatabase(path);
    db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')",
    ).run();
    db.close();
    await expect(openStore({ kind: 'sqlite', path })).rejects.toThrow(SchemaTooNewError);
    await expect(openStore({ kind: 'sqlite', path })).rejects.toThrow(
      /schema version 9999, but this Quoll knows only up to \d+.*Upgrade this node/,
    );
  });

  it('0015 ends the console sessions and sign-in links made before it (they have no parent token), and nothing else', async () => {
    const before = join(root, 'migrations-0014');
    mkdirSync(before);
    for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f < '0015')) {
      copyFileSync(join(MIGRATIONS_DIR, f), join(before, f));
    }
    const path = join(root, 'sessions-0014.db');
    const db = openSqliteDatabase(path, before);
    const insert = db.prepare(
      "INSERT INTO api_tokens (id, token_hash, kind, workspace_id, subject, created_at, expires_at, revoked_at) VALUES (?, ?, 'admin', NULL, ?, 't0', NULL, NULL)",
    );
    for (const [id, subject] of [
      ['api', 'admin'],
      ['run', 'task-run:r1'],
      ['session', 'console-session:admin'],
      ['link', 'console-link:admin'],
    ] as const) {
      insert.run(id, `hash-${id}`, subject);
    }
    db.close();
    const stores = await openStore({ kind: 'sqlite', path });
    try {
      const revoked = async (id: string) => (await stores.tokens.findTokenById(id))?.revokedAt ?? null;
      expect(await revoked('api')).toBeNull();
      expect(await revoked('run')).toBeNull();
      expect(await revoked('session')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(await revoked('link')).not.toBeNull();
      expect(await stores.tokens.findTokenById('api')).toMatchObject({ parentId: null });
    } finally {
      await stores.close();
    }
  });

  it('creates the database file owner-only', async () => {
    const { statSync } = await import('node:fs');
    const stores = await makeStores();
    await stores.close();
    expect(statSync(join(root, `${files}.db`)).mode & 0o777).toBe(0o600);
  });
});
