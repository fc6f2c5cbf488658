import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TokenRecord, TokenStore } from '../../auth/index.js';
import type { Stores } from '../stores.js';
import type { MakeStores } from './make-stores.js';

/** The {@link TokenStore} contract, run against one backend. */
export function tokenStoreSuite(backend: string, makeStores: MakeStores): void {
  describe(`${backend}: TokenStore`, () => {
    let stores: Stores;
    let store: TokenStore;
    let ws: number;

    beforeEach(async () => {
      stores = await makeStores();
      store = stores.tokens;
      ws = (await stores.workspaces.ensureDefaultWorkspace('default', 't0')).id;
    });
    afterEach(async () => {
      await stores.close();
    });

    const token = (id: string, over: Partial<TokenRecord> = {}): TokenRecord => ({
      id,
      tokenHash: `hash-${id}`,
      kind: 'admin',
      workspaceId: null,
      subject: 'admin',
      createdAt: '2025-01-01T00:00:00.000Z',
      expiresAt: null,
      revokedAt: null,
      parentId: null,
      ...over,
    });

    it('stores tokens and finds them by hash', async () => {
      const admin = token('a');
      const scoped = token('w', { kind: 'workspace', workspaceId: ws, subject: 'reader', expiresAt: 'x' });
      await store.insertToken(admin);
      await store.insertToken(scoped);
      expect(await store.findTokenByHash('hash-a')).toEqual(admin);
      expect(await store.findTokenByHash('hash-w')).toEqual(scoped);
      expect(await store.findTokenByHash('nope')).toBeNull();
    });

    it('keeps the parent a session was made from, and finds tokens by id, revoked or not', async () => {
      await store.insertToken(token('p', { expiresAt: '2025-01-02T00:00:00.000Z' }));
      const child = token('c', { subject: 'console-session:admin', parentId: 'p' });
      await store.insertToken(child);
      expect(await store.findTokenByHash('hash-c')).toEqual(child);
      expect(await store.findTokenById('c')).toEqual(child);
      await store.revokeToken('p', 't1');
      expect(await store.findTokenById('p')).toMatchObject({
        id: 'p',
        parentId: null,
        revokedAt: 't1',
        expiresAt: '2025-01-02T00:00:00.000Z',
      });
      expect(await store.findTokenById('missing')).toBeNull();
    });

    it('a duplicate hash is refused', async () => {
      await store.insertToken(token('a'));
      await expect(store.insertToken(token('b', { tokenHash: 'hash-a' }))).rejects.toThrow();
    });

    it('revoking keeps the first revocation time; expiry is set only on live tokens', async () => {
      await store.insertToken(token('a'));
      await store.revokeToken('a', 't1');
      await store.revokeToken('a', 't2');
      await store.setTokenExpiry('a', 'e1');
      expect(await store.findTokenByHash('hash-a')).toMatchObject({ revokedAt: 't1', expiresAt: null });
      await store.insertToken(token('b'));
      await store.setTokenExpiry('b', 'e2');
      expect(await store.findTokenByHash('hash-b')).toMatchObject({ revokedAt: null, expiresAt: 'e2' });
    });

    it('revokeToken says whether this call revoked the token (a one-time token is used once)', async () => {
      await store.insertToken(token('once'));
      const outcomes = await Promise.all([store.revokeToken('once', 't1'), store.revokeToken('once', 't2')]);
      expect(outcomes.filter(Boolean)).toHaveLength(1);
      expect(await store.revokeToken('once', 't3')).toBe(false);
      expect(await store.revokeToken('missing', 't3')).toBe(false);
    });

    it('lists live API tokens (unrevoked, unexpired, not sessions or links), newest first', async () => {
      const at = (s: number): string => `2025-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
      await store.insertToken(token('admin', { createdAt: at(1) }));
      await store.insertToken(
        token('scoped', {
          kind: 'workspace',
          workspaceId: ws,
          subject: 'w',
          createdAt: at(3),
          expiresAt: at(30),
        }),
      );
      await store.insertToken(token('run', { subject: 'task-run:r1', createdAt: at(2), expiresAt: at(40) }));
      await store.insertToken(token('expired', { createdAt: at(4), expiresAt: at(10) }));
      await store.insertToken(token('exactly', { createdAt: at(5), expiresAt: at(20) }));
      await store.insertToken(token('revoked', { createdAt: at(6) }));
      await store.revokeToken('revoked', at(7));
      await store.insertToken(
        token('session', {
          subject: 'console-session:admin',
          parentId: 'admin',
          createdAt: at(8),
          expiresAt: at(50),
        }),
      );
      await store.insertToken(
        token('link', {
          subject: 'console-link:admin',
          parentId: 'admin',
          createdAt: at(9),
          expiresAt: at(50),
        }),
      );
      const listed = await store.listApiTokens(at(20));
      expect(listed.map((t) => t.id)).toEqual(['scoped', 'run', 'admin']);
      expect(listed[0]).toEqual(
        token('scoped', {
          kind: 'workspace',
          workspaceId: ws,
          subject: 'w',
          createdAt: at(3),
          expiresAt: at(30),
        }),
      );
      expect((await store.listApiTokens(at(35))).map((t) => t.id)).toEqual(['run', 'admin']);
      expect((await store.listApiTokens(at(0))).map((t) => t.id)).toEqual([
        'exactly',
        'expired',
        'scoped',
        'run',
        'admin',
      ]);
    });

    it('lists unrevoked tokens by literal subject prefix, newest first', async () => {
      await store.insertToken(
        token('s1', { subject: 'console-session:a', createdAt: '2025-01-01T00:00:01.000Z' }),
      );
      await store.insertToken(
        token('s2', {
          kind: 'workspace',
          workspaceId: ws,
          subject: 'console-session:b',
          createdAt: '2025-01-01T00:00:02.000Z',
        }),
      );
      await store.insertToken(token('s3', { subject: 'console-session:c' }));
      await store.insertToken(token('x', { subject: 'console-sessionZ' }));
      await store.insertToken(token('y', { subject: 'console_session:d' }));
      await store.revokeToken('s3', 't1');
      const listed = await store.listTokensBySubjectPrefix('console-session:');
      expect(listed.map((t) => t.id)).toEqual(['s2', 's1']);
      expect(listed[0]).toMatchObject({ kind: 'workspace', workspaceId: ws, subject: 'console-session:b' });
      expect(await store.listTokensBySubjectPrefix('console_')).toHaveLength(1);
    });

    it('revokes by subject prefix, keeping the listed subjects, and counts what it revoked', async () => {
      for (const [id, subject] of [
        ['1', 'task-run:a'],
        ['2', 'task-run:b'],
        ['3', 'task-run:c'],
        ['4', 'admin'],
        ['5', 'task-runner'],
      ] as const) {
        await store.insertToken(token(id, { kind: 'workspace', workspaceId: ws, subject }));
      }
      await store.revokeToken('3', 't0');
      expect(await store.revokeTokensBySubjectPrefix('task-run:', 't1', ['task-run:b'])).toBe(1);
      const revoked = async (id: string) => (await store.findTokenByHash(`hash-${id}`))?.revokedAt;
      expect([await revoked('1'), await revoked('2'), await revoked('3')]).toEqual(['t1', null, 't0']);
      expect([await revoked('4'), await revoked('5')]).toEqual([null, null]);
      // A prefix is literal text: LIKE wildcards in it match only themselves.
      await store.insertToken(token('6', { subject: 'x%y' }));
      await store.insertToken(token('7', { subject: 'xzy' }));
      expect(await store.revokeTokensBySubjectPrefix('x%', 't2')).toBe(1);
      expect(await revoked('7')).toBeNull();
    });

    it("revokes the tokens of runs no longer running, never a running run's, even one issued mid-cleanup", async () => {
      const newTask = {
        name: 'job',
        type: 'Temporary Run' as const,
        orchestrationId: 'orch-1',
        workspaceId: ws,
        schedule: null,
        timezone: null,
        jsonArgs: {},
        timeout: null,
      };
      const runToken = (id: string, runId: string): TokenRecord =>
        token(id, { kind: 'workspace', workspaceId: ws, subject: `task-run:${runId}` });
      const live = await stores.tasks.createRun({
        taskId: (await stores.tasks.createTask(newTask)).id,
        tick: null,
        owner: null,
      });
      const ended = await stores.tasks.createRun({
        taskId: (await stores.tasks.createTask(newTask)).id,
        tick: null,
        owner: null,
      });
      if (live === null || ended === null) throw new Error('runs not created');
      await stores.tasks.finishRun(ended.id, { status: 'failure', exitCode: null, reason: 'lost' });
      await store.insertToken(runToken('live', live.id));
      await store.insertToken(runToken('ended', ended.id));
      await store.insertToken(runToken('gone', 'no-such-run'));
      await store.insertToken(token('admin', { subject: 'admin' }));
      // A run another node creates during the cleanup, its token issued: the cleanup reads
      // the running runs in its own statement, so the token is kept.
      const fresh = await stores.tasks.createRun({
        taskId: (await stores.tasks.createTask(newTask)).id,
        tick: null,
        owner: { nodeId: 'node-b', leaseMs: 60_000 },
      });
      if (fresh === null) throw new Error('run not created');
      await store.insertToken(runToken('fresh', fresh.id));
      expect(await store.revokeEndedRunTokens('task-run:', 't1')).toBe(2);
      const revoked = async (id: string) => (await store.findTokenById(id))?.revokedAt;
      expect(await revoked('fresh')).toBeNull();
      expect(await revoked('live')).toBeNull();
      expect([await revoked('ended'), await revoked('gone')]).toEqual(['t1', 't1']);
      expect(await revoked('admin')).toBeNull();
    });
  });
}
