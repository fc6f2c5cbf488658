import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { SessionService, TASK_RUN_SUBJECT_PREFIX } from './session-service.js';
import { TokenService } from './token-service.js';

describe('SessionService: a session never outlives the API token it came from', () => {
  let dir: string;
  let stores: Stores;
  let clock: ManualClock;
  let tokens: TokenService;
  let sessions: SessionService;
  let ws: number;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quoll-sessions-'));
    stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
    clock = new ManualClock(Date.UTC(2025, 0, 1));
    tokens = new TokenService(stores.tokens, () => clock.now(), 5_000);
    sessions = new SessionService(stores.tokens, tokens, () => clock.now());
    const created = await stores.workspaces.createWorkspace('ws', new Date(0).toISOString());
    if (created.outcome !== 'created') throw new Error('workspace ws exists already');
    ws = created.workspace.id;
  });
  afterEach(async () => {
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a session (and a sign-in link) expires with a short-lived token, not 12 hours later', async () => {
    const issued = await tokens.issueForWorkspace(ws, 'short', 60_000);
    const started = await sessions.signInWithToken(issued.token);
    expect(started.expiresAt).toBe(new Date(clock.now() + 60_000).toISOString());
    expect(started.maxAgeSeconds).toBe(60);
    const link = await sessions.createSignInLink(await tokens.authenticate(`Bearer ${issued.token}`));
    expect(Date.parse(link.expiresAt)).toBeLessThanOrEqual(clock.now() + 60_000);
    const viaLink = await sessions.signInWithCode(link.code);
    expect(viaLink.expiresAt).toBe(started.expiresAt);
    await clock.advance(59_999);
    expect(await sessions.authenticate(started.secret)).toMatchObject({
      workspaceId: ws,
      subject: 'console-session:short',
    });
    await clock.advance(1);
    for (const s of [started, viaLink]) {
      await expect(sessions.authenticate(s.secret)).rejects.toMatchObject({ code: 'invalid_token' });
    }
    expect(await sessions.list()).toEqual([]);
  });

  it('revoking the token ends its sessions at once, those from its links too, and hides them from the list', async () => {
    const issued = await tokens.issueForWorkspace(ws, 'reader');
    const other = await tokens.issueForWorkspace(ws, 'other');
    const direct = await sessions.signInWithToken(issued.token);
    const link = await sessions.createSignInLink(await tokens.authenticate(`Bearer ${issued.token}`));
    const viaLink = await sessions.signInWithCode(link.code);
    const unrelated = await sessions.signInWithToken(other.token);
    // Cached lookups, as on the request path.
    for (const s of [direct, viaLink, unrelated]) await sessions.authenticate(s.secret);
    expect((await tokens.authenticate(`Bearer ${direct.secret}`)).tokenId).toBe(direct.id);
    expect((await sessions.list()).map((s) => s.id).sort()).toEqual(
      [direct.id, viaLink.id, unrelated.id].sort(),
    );

    await tokens.revoke(issued.id);
    for (const s of [direct, viaLink]) {
      await expect(sessions.authenticate(s.secret)).rejects.toMatchObject({ code: 'invalid_token' });
      await expect(tokens.authenticate(`Bearer ${s.secret}`)).rejects.toMatchObject({
        code: 'invalid_token',
      });
    }
    expect(await sessions.authenticate(unrelated.secret)).toMatchObject({ subject: 'console-session:other' });
    expect((await sessions.list()).map((s) => s.id)).toEqual([unrelated.id]);
  });

  it('a link made before its token was revoked signs nobody in', async () => {
    const issued = await tokens.issueAdmin('ops');
    const link = await sessions.createSignInLink(await tokens.authenticate(`Bearer ${issued.token}`));
    await tokens.revoke(issued.id);
    await expect(sessions.signInWithCode(link.code)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it('a token revoked by another process ends its sessions once the cache entry is rechecked', async () => {
    const issued = await tokens.issueAdmin('ops');
    const started = await sessions.signInWithToken(issued.token);
    await sessions.authenticate(started.secret);
    await stores.tokens.revokeToken(issued.id, new Date(clock.now()).toISOString());
    await clock.advance(5_000);
    await expect(sessions.authenticate(started.secret)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it("a task run's token can start no session and make no sign-in link", async () => {
    for (const run of [
      await tokens.issueAdmin(`${TASK_RUN_SUBJECT_PREFIX}r1`, 60_000),
      await tokens.issueForWorkspace(ws, `${TASK_RUN_SUBJECT_PREFIX}r2`, 60_000),
    ]) {
      await expect(sessions.signInWithToken(run.token)).rejects.toMatchObject({ code: 'forbidden' });
      const principal = await tokens.authenticate(`Bearer ${run.token}`);
      await expect(sessions.createSignInLink(principal)).rejects.toMatchObject({ code: 'forbidden' });
    }
    expect(await sessions.list()).toEqual([]);
  });

  it('a session can make no sign-in link, by cookie or as a bearer token', async () => {
    const issued = await tokens.issueAdmin('ops');
    const started = await sessions.signInWithToken(issued.token);
    for (const principal of [
      await sessions.authenticate(started.secret),
      await tokens.authenticate(`Bearer ${started.secret}`),
    ]) {
      await expect(sessions.createSignInLink(principal)).rejects.toMatchObject({ code: 'forbidden' });
    }
  });
});
