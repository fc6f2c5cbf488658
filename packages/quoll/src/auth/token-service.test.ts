import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { openSqliteDatabase, SqliteCoreStore } from '../store/index.js';
import type { SqliteHandle } from '../store/index.js';
import { TokenService } from './token-service.js';

describe('TokenService', () => {
  let dir: string;
  const handles: SqliteHandle[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quoll-tokens-'));
  });
  afterEach(async () => {
    for (const db of handles.splice(0)) db.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A token service on its own database handle, as another process on the same home would have. */
  function service(clock: ManualClock): TokenService {
    const db = openSqliteDatabase(join(dir, 'quoll.db'));
    handles.push(db);
    return new TokenService(new SqliteCoreStore(db), () => clock.now(), 5_000);
  }

  /** A workspace for scoped tokens (tokens reference it). */
  async function workspaceId(): Promise<number> {
    const db = openSqliteDatabase(join(dir, 'quoll.db'));
    handles.push(db);
    return (await new SqliteCoreStore(db).createWorkspace('ws', new Date(0).toISOString())).id;
  }

  it('a token revoked by another process stops working once the cache entry is 5 s old', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const server = service(clock);
    const otherProcess = service(clock);
    const issued = await server.issueAdmin('ops');
    const header = `Bearer ${issued.token}`;
    expect((await server.authenticate(header)).tokenId).toBe(issued.id);

    await otherProcess.revoke(issued.id);
    // Still cached: the revocation is not visible to this process yet.
    await clock.advance(4_999);
    expect((await server.authenticate(header)).tokenId).toBe(issued.id);

    await clock.advance(1);
    await expect(server.authenticate(header)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it('a token revoked through the same service fails at once', async () => {
    const clock = new ManualClock(0);
    const tokens = service(clock);
    const issued = await tokens.issueForWorkspace(await workspaceId(), 'run');
    await tokens.authenticate(`Bearer ${issued.token}`);
    await tokens.revoke(issued.id);
    await expect(tokens.authenticate(`Bearer ${issued.token}`)).rejects.toMatchObject({
      code: 'invalid_token',
    });
  });

  it('a live token keeps working after its cache entry is rechecked', async () => {
    const clock = new ManualClock(0);
    const tokens = service(clock);
    const ws = await workspaceId();
    const issued = await tokens.issueForWorkspace(ws, 'reader', 60_000);
    await tokens.authenticate(`Bearer ${issued.token}`);
    await clock.advance(10_000);
    expect(await tokens.authenticate(`Bearer ${issued.token}`)).toMatchObject({
      kind: 'workspace',
      workspaceId: ws,
    });
    await clock.advance(50_000);
    await expect(tokens.authenticate(`Bearer ${issued.token}`)).rejects.toMatchObject({
      code: 'invalid_token',
    });
  });
});
