import { randomBytes } from 'node:crypto';
import type { NodeDto } from '@quoll/client/wire';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMasterKey } from '../../packages/quoll/src/connections/index.js';
import { waitFor } from '../support/orchestration-helpers.js';
import {
  createTestDatabase,
  postgresAvailability,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

// A node that stalls past the lease is marked lost by the others, and registers again when it
// is back. The nodes started while it was lost were never checked against its keys, so it is
// checked again on its return, as at a start (docs/distributed.md, Limits): it stays when its
// keys still agree, and stops (exit code 2, `master_key_mismatch`) when a node started meanwhile
// seals with a key it lacks.

const pg = await postgresAvailability();

const OLD = randomBytes(32).toString('base64');
const NEW = randomBytes(32).toString('base64');
const NEW_ID = parseMasterKey(NEW, 'test').id;
const LEASE_MS = 3_000;

describe.skipIf(!pg.run)(
  `a node marked lost is key-checked again when it is back (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`,
  () => {
    let db: TestDatabase;
    const started: TestServer[] = [];

    const startNode = async (key: string, decryptOnly: string): Promise<TestServer> => {
      const node = await startTestServer({
        args: ['--database', db.url],
        env: {
          QUOLL_MASTER_KEY: key,
          QUOLL_MASTER_KEY_DECRYPT_ONLY: decryptOnly,
          QUOLL_CLUSTER_LEASE_MS: String(LEASE_MS),
          QUOLL_TASK_WARM_PROCESSES: '0',
        },
      });
      started.push(node);
      return node;
    };
    const nodesOf = async (server: TestServer): Promise<NodeDto[]> => {
      const res = await fetch(`${server.url}/v1/admin/nodes`, {
        headers: { authorization: `Bearer ${server.token}` },
      });
      expect(res.status).toBe(200);
      return (await res.json()) as NodeDto[];
    };
    const nodeIdOf = async (server: TestServer): Promise<string> =>
      ((await (await fetch(`${server.url}/v1/health`)).json()) as { node: string }).node;
    const statusOf = async (watcher: TestServer, id: string): Promise<string | undefined> =>
      (await nodesOf(watcher)).find((n) => n.id === id)?.status;
    /** Stops `node` (SIGSTOP) until `watcher` lists it lost. */
    const stallUntilLost = async (node: TestServer, id: string, watcher: TestServer): Promise<void> => {
      node.process.kill('SIGSTOP');
      await waitFor(`node ${id} to be marked lost`, async () =>
        (await statusOf(watcher, id)) === 'lost' ? true : undefined,
      );
    };

    beforeAll(async () => {
      db = await createTestDatabase();
    }, 120_000);

    afterAll(async () => {
      for (const node of started) {
        node.process.kill('SIGCONT');
        await node.kill();
        await node.cleanup();
      }
      await db?.drop();
    });

    it('back with keys that still agree, the node serves on; back after a node sealing with a key it lacks started, it stops with master_key_mismatch', async () => {
      // A holds the old key alone; C is a node of step 1 of a rotation (old key current, new
      // key decrypt-only): they agree, and C marks A lost while A stalls.
      const a = await startNode(OLD, '');
      const c = await startNode(OLD, NEW);
      const aId = await nodeIdOf(a);

      await stallUntilLost(a, aId, c);
      a.process.kill('SIGCONT');
      await waitFor('A to register again', async () =>
        (await statusOf(c, aId)) === 'up' ? true : undefined,
      );
      // Checked again, and admitted: it still answers, and is still up a lease later.
      await new Promise((resolve) => setTimeout(resolve, LEASE_MS));
      expect((await fetch(`${a.url}/v1/health`)).status).toBe(200);
      expect(await statusOf(c, aId)).toBe('up');
      expect(a.process.exitCode).toBeNull();

      // While A is lost again, B starts on step 2 (new key current, old decrypt-only): C holds
      // the new key, so B is admitted, and A (lost) is not checked. A cannot read what B seals.
      await stallUntilLost(a, aId, c);
      const b = await startNode(NEW, OLD);
      const exited = new Promise<number | null>((resolve) => a.process.once('exit', (code) => resolve(code)));
      a.process.kill('SIGCONT');
      // Its first heartbeat finds it lost (within a fifth of a lease): it stops then, not at a
      // timeout of this test (generous: a drain on a loaded machine).
      const gone = await Promise.race([
        exited,
        new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 60_000)),
      ]);
      expect(gone).toBe(2);
      expect(a.output()).toMatch(
        /error \[master_key_mismatch\]: .*could not read what other live nodes seal/,
      );
      expect(a.output()).toContain(`seals with key id ${NEW_ID}`);
      // It stopped cleanly (marked stopped, not left to be found lost); B and C serve on.
      expect(await statusOf(c, aId)).toBe('stopped');
      expect((await fetch(`${b.url}/v1/health`)).status).toBe(200);
      expect((await fetch(`${c.url}/v1/health`)).status).toBe(200);
    }, 120_000);
  },
);
