import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  rotateClusterKey,
  StaticKeyring,
  parseMasterKey,
} from '../../packages/quoll/src/connections/index.js';
import { openStore } from '../../packages/quoll/src/store/index.js';
import type { ClusterKeyStatus } from '../../packages/quoll/src/connections/index.js';
import { runCli } from '../support/run-cli.js';
import {
  createTestDatabase,
  postgresAvailability,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

// Two nodes on one PostgreSQL database rotate their master key while serving, the way an
// operator does it (docs/connections.md, "Rotating the master key on a cluster"):
//   1. every node gets the new key as decrypt-only, one restart at a time;
//   2. every node seals with the new key and keeps the old one decrypt-only, one at a time;
//   3. `quoll admin rotate-key --database …` re-seals every row and retires the old key;
//   4. the old key is dropped from every node, one at a time.
// Every connection is read through both nodes between the steps, and through both nodes
// continuously while the rows are re-sealed.

const pg = await postgresAvailability();

const OLD = randomBytes(32).toString('base64');
const NEW = randomBytes(32).toString('base64');
const OLD_ID = parseMasterKey(OLD, 'test').id;
const NEW_ID = parseMasterKey(NEW, 'test').id;
/** The new key, mistyped (another key altogether, as far as a key id can tell). */
const TYPO = randomBytes(32).toString('base64');
const TYPO_ID = parseMasterKey(TYPO, 'test').id;
const CONNECTIONS = 40;
const expected = (i: number): Record<string, unknown> => ({ host: `https://h${i}.example.com/data`, i });

describe.skipIf(!pg.run)(
  `rotating the master key of two nodes on one PostgreSQL database (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`,
  () => {
    let db: TestDatabase;
    const nodes: { a?: TestServer; b?: TestServer } = {};
    const extra: TestServer[] = [];

    /** Starts (or restarts, on its home) a node with these keys. */
    async function startNode(
      name: 'a' | 'b',
      keys: { key: string; decryptOnly?: string },
    ): Promise<TestServer> {
      const previous = nodes[name];
      if (previous) expect(await previous.stop()).toBe(0);
      const node = await startTestServer({
        ...(previous ? { home: previous.home } : {}),
        // info: the start logs the key ids the node seals with and holds.
        args: ['--database', db.url, '--log-level', 'info'],
        env: {
          QUOLL_MASTER_KEY: keys.key,
          QUOLL_MASTER_KEY_DECRYPT_ONLY: keys.decryptOnly ?? '',
          QUOLL_CLUSTER_LEASE_MS: '3000',
          QUOLL_TASK_WARM_PROCESSES: '0',
        },
      });
      nodes[name] = node;
      return node;
    }

    /** Reads every connection's details through `node` and checks them. */
    async function readAll(node: TestServer): Promise<void> {
      const client = node.client();
      for (let i = 0; i < CONNECTIONS; i++)
        expect(await (await client.getConnection(`conn_${i}`)).details()).toEqual(expected(i));
    }
    const readBoth = async (): Promise<void> => {
      await readAll(nodes.a!);
      await readAll(nodes.b!);
    };

    beforeAll(async () => {
      db = await createTestDatabase();
      await startNode('a', { key: OLD });
      await startNode('b', { key: OLD });
      const client = nodes.a!.client();
      for (let i = 0; i < CONNECTIONS; i++) await client.createConnection(`conn_${i}`, 'HTTP', expected(i));
    }, 120_000);

    afterAll(async () => {
      for (const s of [nodes.a, nodes.b, ...extra]) {
        if (!s) continue;
        await s.kill();
        await s.cleanup();
      }
      await db?.drop();
    });

    const cli = (args: string[], env: NodeJS.ProcessEnv) =>
      runCli(nodes.a!.home, ['admin', 'rotate-key', '--database', db.url, ...args], { env });
    /** `rotate-key --status --json`, without keys. */
    const status = async (): Promise<ClusterKeyStatus> => {
      const run = await cli(['--status', '--json'], {});
      expect(run.stderr).toBe('');
      const parsed = JSON.parse(run.stdout) as ClusterKeyStatus;
      // 0 when a rotation can proceed, 3 when something blocks it: a script can test it.
      expect(run.code).toBe(parsed.rotation.canProceed ? 0 : 3);
      return parsed;
    };

    it('bad keys given to the command are refused with invalid_master_key, never echoed', async () => {
      const bad = await cli([], { QUOLL_MASTER_KEY: NEW, QUOLL_MASTER_KEY_DECRYPT_ONLY: 'not-a-key' });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^error \[invalid_master_key\]: .*key 1 of QUOLL_MASTER_KEY_DECRYPT_ONLY/);
      expect(bad.stderr).not.toContain('not-a-key');
    }, 60_000);

    it('--status is refused with invalid_request on an embedded home, with --retire-old, and --json alone', async () => {
      const embedded = await runCli(nodes.a!.home, ['admin', 'rotate-key', '--status'], {
        env: { QUOLL_DATABASE_URL: undefined },
      });
      expect(embedded.code).toBe(2);
      expect(embedded.stderr).toMatch(/^error \[invalid_request\]: --status is for a cluster/);
      const both = await cli(['--status', '--retire-old'], {});
      expect(both.code).toBe(2);
      expect(both.stderr).toMatch(/^error \[invalid_request\]: --status changes nothing/);
      const json = await cli(['--json'], {});
      expect(json.code).toBe(2);
      // With --json the CLI prints the error as JSON.
      expect(JSON.parse(json.stdout)).toEqual({
        error: { code: 'invalid_request', message: '--json goes with --status.' },
      });
    }, 60_000);

    it('refuses to re-seal while the nodes still seal with the old key, changing nothing', async () => {
      await readBoth();
      const early = await cli([], { QUOLL_MASTER_KEY: NEW, QUOLL_MASTER_KEY_DECRYPT_ONLY: OLD });
      expect(early.code).toBe(2);
      expect(early.stderr).toMatch(/^error \[key_rotation_pending\]: /);
      expect(early.stderr).toContain(`(key id ${OLD_ID})`);
      await readBoth();
    }, 60_000);

    it('a node given only the new key before the rotation is refused: it could not read the rows', async () => {
      const err = await startTestServer({
        args: ['--database', db.url],
        env: { QUOLL_MASTER_KEY: NEW },
      }).then(
        (s) => {
          extra.push(s);
          return null;
        },
        (e: unknown) => e,
      );
      expect(String(err)).toContain('error [master_key_mismatch]');
      expect(String(err)).toContain(`key id ${OLD_ID}`);
    }, 60_000);

    it("a second process with a live node's id and other keys is refused node_id_in_use, and that node's recorded keys are unchanged", async () => {
      const before = await status();
      const idOfA = (await readFile(join(nodes.a!.home, 'node-id'), 'utf8')).trim();
      const recordOfA = before.nodes.find((n) => n.nodeId === idOfA);
      expect(recordOfA).toBeDefined();
      // Its own home and another key set that passes the key check on its own (it seals with the
      // database's key), so only the id stops it: a copied --home, or QUOLL_NODE_ID given twice.
      const err = await startTestServer({
        args: ['--database', db.url],
        env: {
          QUOLL_MASTER_KEY: OLD,
          QUOLL_MASTER_KEY_DECRYPT_ONLY: TYPO,
          QUOLL_NODE_ID: idOfA,
          QUOLL_CLUSTER_LEASE_MS: '3000',
          QUOLL_TASK_WARM_PROCESSES: '0',
        },
      }).then(
        (s) => {
          extra.push(s);
          return null;
        },
        (e: unknown) => e,
      );
      expect(String(err)).toContain(`error [node_id_in_use]: Node id "${idOfA}" is in use`);
      const after = await status();
      expect(after.nodes).toEqual(before.nodes);
      expect(after.nodes.find((n) => n.nodeId === idOfA)).toEqual(recordOfA);
      expect(after.keys.map((k) => k.keyId)).not.toContain(TYPO_ID);
      await readBoth();
    }, 60_000);

    it('rolls the new key out (decrypt-only, then current), re-seals while both nodes serve, resumes after an interruption', async () => {
      // Step 1: the new key opens on every node; nothing is sealed with it yet.
      await startNode('a', { key: OLD, decryptOnly: NEW });
      await readBoth();
      await startNode('b', { key: OLD, decryptOnly: NEW });
      await readBoth();
      // Each node logged the key ids it seals with and holds (never the keys).
      expect(nodes.b!.output()).toContain(
        `master key: seals with key id ${OLD_ID}; holds key ids ${OLD_ID}, ${NEW_ID}`,
      );
      expect(nodes.b!.output()).not.toContain(NEW);
      let keys = await status();
      expect(keys.nodes.map((n) => [n.sealKeyId, n.heldKeyIds])).toEqual([
        [OLD_ID, [OLD_ID, NEW_ID]],
        [OLD_ID, [OLD_ID, NEW_ID]],
      ]);
      expect(keys.rotation).toMatchObject({
        targetKeyId: OLD_ID,
        canProceed: true,
        toReseal: 0,
        toRetire: [],
      });

      // Step 2 begins on node a with a mistyped new key: it would open everything (it holds the
      // old key), but node b could not read what it seals. It is refused at its start.
      expect(await nodes.a!.stop()).toBe(0);
      const typo = await startTestServer({
        home: nodes.a!.home,
        args: ['--database', db.url],
        env: { QUOLL_MASTER_KEY: TYPO, QUOLL_MASTER_KEY_DECRYPT_ONLY: OLD },
      }).then(
        (s) => {
          extra.push(s);
          return null;
        },
        (e: unknown) => e,
      );
      expect(String(typo)).toContain('error [master_key_mismatch]');
      expect(String(typo)).toContain(`would seal with key id ${TYPO_ID}`);
      expect(String(typo)).toContain(`holds key ids ${OLD_ID}, ${NEW_ID}`);
      expect(String(typo)).not.toContain(TYPO);
      // The command run now, with the keys as the nodes have them, changes nothing and says so.
      const early = await cli([], { QUOLL_MASTER_KEY: OLD, QUOLL_MASTER_KEY_DECRYPT_ONLY: NEW });
      expect(early.code).toBe(0);
      expect(early.stdout).toContain(`re-sealed 0 connection(s) under key ${OLD_ID}`);
      expect(early.stdout).toContain('no key retired');
      // Step 2: the new key seals; the old one still opens. A connection made now is under the new key.
      await startNode('a', { key: NEW, decryptOnly: OLD });
      await readBoth();
      await nodes.a!.client().createConnection('made_mid_roll', 'HTTP', { during: 'step 2' });
      // Half way: the nodes seal with different keys, so a rotation is blocked, and --status says why.
      keys = await status();
      expect(keys.rotation.canProceed).toBe(false);
      expect(keys.rotation.blockers.map((b) => b.code)).toEqual(['key_rotation_pending']);
      expect(keys.rotation.blockers[0]!.message).toContain(`(key id ${OLD_ID})`);
      expect(keys.keys.map((k) => [k.keyId, k.connections]).sort()).toEqual(
        [
          [OLD_ID, CONNECTIONS],
          [NEW_ID, 1],
        ].sort(),
      );
      await startNode('b', { key: NEW, decryptOnly: OLD });
      await readBoth();
      expect(await (await nodes.b!.client().getConnection('made_mid_roll')).details()).toEqual({
        during: 'step 2',
      });
      keys = await status();
      expect(keys.rotation).toEqual({
        targetKeyId: NEW_ID,
        targetFrom: 'nodes',
        canProceed: true,
        toReseal: CONNECTIONS,
        toRetire: [OLD_ID],
        blockers: [],
      });

      // Step 3, interrupted after 10 rows (the process dies there): reads go on meanwhile.
      const stores = await openStore({ kind: 'postgres', url: db.url });
      const stop = new Error('interrupted');
      let seen = 0;
      try {
        await expect(
          rotateClusterKey({
            keyring: new StaticKeyring(parseMasterKey(NEW, 'new'), [parseMasterKey(OLD, 'old')]),
            keyCheck: stores.keyCheck,
            store: stores.connections,
            batchSize: 7,
            onProgress: (event) => {
              if (event.step === 'resealed' && ++seen === 10) throw stop;
            },
          }),
        ).rejects.toBe(stop);
        expect(await stores.keyCheck.listRetiredKeys()).toEqual([]);
      } finally {
        await stores.close();
      }
      await readBoth();

      // Resumed by the command while both nodes are read without a pause.
      let reading = true;
      const failures: unknown[] = [];
      let reads = 0;
      const readers = [nodes.a!, nodes.b!].map(async (node) => {
        while (reading) {
          try {
            await readAll(node);
            reads += 1;
          } catch (err) {
            failures.push(err);
          }
        }
      });
      const resumed = await cli([], { QUOLL_MASTER_KEY: NEW, QUOLL_MASTER_KEY_DECRYPT_ONLY: OLD });
      reading = false;
      await Promise.all(readers);
      expect(resumed.stderr).toBe('');
      expect(resumed.code).toBe(0);
      // 40 rows under the old key, 10 re-sealed before the interruption.
      expect(resumed.stdout).toContain(`re-sealed ${CONNECTIONS - 10} connection(s) under key ${NEW_ID}`);
      expect(resumed.stdout).toContain(`retired key(s) ${OLD_ID}`);
      expect(failures).toEqual([]);
      expect(reads).toBeGreaterThan(0);
      await readBoth();

      // Run again: nothing left, nothing refused.
      const again = await cli([], { QUOLL_MASTER_KEY: NEW, QUOLL_MASTER_KEY_DECRYPT_ONLY: OLD });
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('re-sealed 0 connection(s)');
      // The status, as a person reads it: the old key retired, nothing left to do.
      const text = await cli(['--status'], {});
      expect(text.code).toBe(0);
      expect(text.stdout).toContain(`key check: sealed under key id ${NEW_ID}`);
      expect(text.stdout).toMatch(new RegExp(`  ${OLD_ID}: retired \\S+; 0 connection\\(s\\)`));
      expect(text.stdout).toContain(`  ${NEW_ID}: active; key check; ${CONNECTIONS + 1} connection(s)`);
      expect(text.stdout).toContain('can proceed, with nothing to do');
    }, 300_000);

    it('after the old key is retired: nodes run on the new key alone, and a node with the old key is refused', async () => {
      // Step 4: the old key leaves every node.
      await startNode('a', { key: NEW });
      await readBoth();
      await startNode('b', { key: NEW });
      await readBoth();

      for (const env of [
        { QUOLL_MASTER_KEY: OLD },
        { QUOLL_MASTER_KEY: OLD, QUOLL_MASTER_KEY_DECRYPT_ONLY: NEW },
      ]) {
        const err = await startTestServer({ args: ['--database', db.url], env }).then(
          (s) => {
            extra.push(s);
            return null;
          },
          (e: unknown) => e,
        );
        expect(String(err)).toContain(
          `error [master_key_retired]: This node's master key (key id ${OLD_ID}) was retired`,
        );
        expect(String(err)).toContain(`key id ${NEW_ID}`);
      }
      // Rotating back to the retired key is refused too.
      const back = await cli([], { QUOLL_MASTER_KEY: OLD, QUOLL_MASTER_KEY_DECRYPT_ONLY: NEW });
      expect(back.code).toBe(2);
      expect(back.stderr).toMatch(/^error \[master_key_retired\]: /);
    }, 180_000);
  },
);
