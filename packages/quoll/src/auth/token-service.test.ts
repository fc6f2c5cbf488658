import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { TokenService } from './token-service.js';

describe('TokenService', () => {
  let dir: string;
  const handles: Stores[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quoll-tokens-'));
  });
  afterEach(async () => {
    for (const stores of handles.splice(0)) await stores.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A token service on its own database handle, as another process on the same home would have. */
  async function service(clock: ManualClock): Promise<TokenService> {
    const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
    handles.push(stores);
    return new TokenService(stores.tokens, () => clock.now(), 5_000);
  }

  /** A workspace for scoped tokens (tokens reference it). */
  async function workspaceId(): Promise<number> {
    const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
    handles.push(stores);
    const created = await stores.workspaces.createWorkspace('ws', new Date(0).toISOString());
    if (created.outcome !== 'created') throw new Error('workspace ws exists already');
    return created.workspace.id;
  }

  it('a token revoked by another process stops working once the cache entry is 5 s old', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const server = await service(clock);
    const otherProcess = await service(clock);
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

  it('cachedPrincipal answers what authenticate would, only while the lookup is cached and trusted', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const tokens = await service(clock);
    const issued = await tokens.issueAdmin('ops', 60_000);
    const header = `Bearer ${issued.token}`;
    // Never looked up: only authenticate (the store) can answer.
    expect(tokens.cachedPrincipal(header)).toBeNull();
    const principal = await tokens.authenticate(header);
    expect(tokens.cachedPrincipal(header)).toBe(principal);
    expect(tokens.cachedPrincipal(`bearer  ${issued.token} `)).toBe(principal);
    for (const other of [undefined, '', issued.token, `Basic ${issued.token}`, 'Bearer qk_unknown'])
      expect(tokens.cachedPrincipal(other)).toBeNull();
    // Due for its recheck against the store: not answered from the cache.
    await clock.advance(5_000);
    expect(tokens.cachedPrincipal(header)).toBeNull();
    const rechecked = await tokens.authenticate(header);
    expect(tokens.cachedPrincipal(header)).toBe(rechecked);
    expect(rechecked).toEqual(principal);
    // Revoked here: gone at once.
    await tokens.revoke(issued.id);
    expect(tokens.cachedPrincipal(header)).toBeNull();
    // An expired token is never answered, even from a fresh entry.
    const short = await tokens.issueAdmin('short', 1_000);
    await tokens.authenticate(`Bearer ${short.token}`);
    await clock.advance(1_000);
    expect(tokens.cachedPrincipal(`Bearer ${short.token}`)).toBeNull();
  });

  it('cachedPrincipal answers each header for its own token when headers alternate', async () => {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const tokens = await service(clock);
    const [a, b] = [await tokens.issueAdmin('a'), await tokens.issueAdmin('b')];
    const [ha, hb] = [`Bearer ${a.token}`, `Bearer ${b.token}`];
    const [pa, pb] = [await tokens.authenticate(ha), await tokens.authenticate(hb)];
    expect(pa.tokenId).not.toBe(pb.tokenId);
    for (const [header, principal] of [
      [ha, pa],
      [ha, pa],
      [hb, pb],
      [`Bearer ${a.token}x`, null],
      [ha, pa],
      ['Bearer', null],
      [hb, pb],
    ] as const)
      expect(tokens.cachedPrincipal(header)).toBe(principal);
    // Revoked after its header was read: not answered, whichever header came before.
    await tokens.revoke(a.id);
    expect(tokens.cachedPrincipal(ha)).toBeNull();
    expect(tokens.cachedPrincipal(hb)).toBe(pb);
    expect(tokens.cachedPrincipal(ha)).toBeNull();
  });

  it('a token revoked through the same service fails at once', async () => {
    const clock = new ManualClock(0);
    const tokens = await service(clock);
    const issued = await tokens.issueForWorkspace(await workspaceId(), 'run');
    await tokens.authenticate(`Bearer ${issued.token}`);
    await tokens.revoke(issued.id);
    await expect(tokens.authenticate(`Bearer ${issued.token}`)).rejects.toMatchObject({
      code: 'invalid_token',
    });
  });

  it('a live token keeps working after its cache entry is rechecked', async () => {
    const clock = new ManualClock(0);
    const tokens = await service(clock);
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
