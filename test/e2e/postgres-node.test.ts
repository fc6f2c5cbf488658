import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pgDriver from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, QuollError } from '@quoll/client';
import { waitFor } from '../support/orchestration-helpers.js';
import { makeHouseRows } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import {
  createTestDatabase,
  postgresAvailability,
  TEST_PG_URL,
  type TestDatabase,
} from '../support/postgres-test-database.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { CLI, startTestServer, type TestServer } from '../support/test-server.js';

const pg = await postgresAvailability();

describe.skipIf(!pg.run)(`a node on PostgreSQL (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`, () => {
  let db: TestDatabase;
  let outage: TcpProxy;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    const target = new URL(TEST_PG_URL);
    outage = new TcpProxy(target);
    await outage.open();
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(outage.port);
    server = await startTestServer({ args: ['--database', viaProxy.toString()] });
  });
  afterAll(async () => {
    // A clean stop is asserted elsewhere (multi-node: SIGTERM stops every loop and exits 0). A
    // stop right after the outage test hung twice on loaded CI runs: the LISTEN connection was
    // being re-made when the node stopped, and kept the process alive once made (fixed; see
    // postgres-database.listen.test.ts). Should a stop hang again, it is reported with the
    // server's last output (which names the step it waits for), then the server is killed.
    const stopped = await Promise.race([
      server.stop().then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 60_000)),
    ]);
    if (!stopped) {
      console.warn(
        `postgres-node: the server did not stop within 60 s of SIGTERM; its last output:\n${server
          .output()
          .slice(-4000)}`,
      );
      await server.kill();
    }
    await server.cleanup();
    await outage.cut();
    await db.drop();
  });

  const health = async (): Promise<{ status: string; database: string; node: string }> =>
    (await (await fetch(`${server.url}/v1/health`)).json()) as {
      status: string;
      database: string;
      node: string;
    };

  it('keeps its metadata in the database, not in the home', async () => {
    const client = server.client();
    await client.createWorkspace('on-postgres');
    expect((await client.listWorkspaces()).map((w) => w.name)).toContain('on-postgres');
    expect(await health()).toMatchObject({ status: 'ok', database: 'ok' });
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(server.home)).not.toContain('quoll.db');
  });

  it('deploy() answers while another node holds the placement lock (stalled mid-placement), and the replica is placed once it is free', async () => {
    const client = server.client();
    const model = await client.uploadModel('stalled-placement', makeTreeEnsembleRegressor({ seed: 3 }));
    const pipeline = await client.buildPipeline('stalled-placement');
    await pipeline.addModelStep(model);
    // Another node, stalled inside its placement transaction: it holds the lock and never commits.
    const stalled = new pgDriver.Client({ connectionString: db.url });
    await stalled.connect();
    try {
      await stalled.query('BEGIN');
      await stalled.query(`SELECT pg_advisory_xact_lock(hashtext('quoll_replicas:' || current_schema()))`);
      const started = Date.now();
      await pipeline.deploy({ waitForStatus: false });
      // The lock timeout (5 s) and the request, not the stalled node's lifetime.
      expect(Date.now() - started).toBeLessThan(30_000);
      expect((await pipeline.status()).replicas).toEqual([]);
    } finally {
      await stalled.query('ROLLBACK');
      await stalled.end();
    }
    // The next reconcile round (every 5 s) places and loads it.
    await waitFor(
      'the pipeline to be placed and running',
      async () => ((await pipeline.status()).status === 'Running' ? true : undefined),
      60_000,
    );
    await pipeline.undeploy();
  }, 120_000);

  it('survives losing the database: answers 503 database_unavailable, says so on /v1/health, recovers when it is back', async () => {
    const client = server.client();
    const port = outage.port;
    await outage.cut();
    await waitFor(
      'health to report the database unavailable',
      async () => ((await health()).database === 'unavailable' ? true : undefined),
      15_000,
    );
    expect((await health()).status).toBe('degraded');
    // A new token is looked up in the database: the request cannot be answered, and says why.
    const fresh = new Client({
      url: server.url,
      token: 'qk_not-in-any-cache',
    });
    const err = await fresh.listWorkspaces().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuollError);
    expect((err as QuollError).code).toBe('database_unavailable');
    expect(server.process.exitCode).toBeNull();

    await outage.open(port);
    await waitFor(
      'health to report the database back',
      async () => ((await health()).database === 'ok' ? true : undefined),
      30_000,
    );
    expect((await client.listWorkspaces()).map((w) => w.name)).toContain('on-postgres');
  });
});

describe.skipIf(!pg.run)(
  `nodes sharing a database (${pg.run ? 'PostgreSQL reachable' : pg.skipReason})`,
  () => {
    let db: TestDatabase;
    const servers: TestServer[] = [];
    beforeAll(async () => {
      db = await createTestDatabase();
    });
    afterAll(async () => {
      for (const s of servers) {
        await s.stop();
        await s.cleanup();
      }
      await db.drop();
    });

    it('a node on an empty home serves a model uploaded through another, fetched from the database', async () => {
      const first = await startTestServer({ args: ['--database', db.url] });
      servers.push(first);
      const client = first.client();
      const model = await client.uploadModel('shared', makeTreeEnsembleRegressor({ seed: 7 }));
      await first.stop();

      // Same database, same master key, nothing else: the model's bytes come from PostgreSQL.
      const home = await mkdtemp(join(tmpdir(), 'quoll-node-b-'));
      await copyFile(join(first.home, 'master.key'), join(home, 'master.key'));
      await chmod(join(home, 'master.key'), 0o600);
      const second = await startTestServer({ home, args: ['--database', db.url] });
      servers.push(second);
      const pipeline = await second.client().buildPipeline('shared-pipeline');
      await pipeline.addModelStep(await second.client().getModel('shared', model.version));
      await pipeline.deploy();
      const [row] = await pipeline.infer([{ tensor: Array.from(makeHouseRows(1, 3)) }]);
      expect(row).toHaveProperty('out.variable');
      const cached = await readFile(join(home, 'blobs', 'sha256', model.sha.slice(0, 2), model.sha));
      expect(createHash('sha256').update(cached).digest('hex')).toBe(model.sha);
    });

    it('a node with another master key refuses to start, naming both key ids', async () => {
      // The database was joined (and its key check sealed) by the first test's node.
      const err = await startTestServer({ args: ['--database', db.url] }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(String(err)).toMatch(
        /master key \(key id [0-9a-f]{16}\) is not the key of the database it joined \(key id [0-9a-f]{16}\)/,
      );
      expect(String(err)).toMatch(/QUOLL_MASTER_KEY/);
    });

    it('a running node whose schema a newer node migrates past its code says schema_ahead (naming both versions), keeps serving, and is refused at its restart', async () => {
      const own = await createTestDatabase();
      const node = await startTestServer({ args: ['--database', own.url] });
      servers.push(node);
      try {
        const code = Math.max(
          ...readdirSync(fileURLToPath(new URL('../../packages/quoll/migrations/postgres', import.meta.url)))
            .filter((f) => /^\d{4}_\w+\.sql$/.test(f))
            .map((f) => Number(f.slice(0, 4))),
        );
        const before = (await (await fetch(`${node.url}/v1/health`)).json()) as Record<string, unknown>;
        expect(before).toMatchObject({ status: 'ok', schema: { status: 'current', code, database: code } });
        // What a node of a newer release does at its start: its (additive) migration and the
        // notice, committed together.
        const newer = new pgDriver.Client({ connectionString: own.url });
        await newer.connect();
        try {
          await newer.query('BEGIN');
          await newer.query('CREATE TABLE newer_release_things (id INTEGER PRIMARY KEY)');
          await newer.query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'newer_release', 'x')",
          );
          await newer.query("SELECT pg_notify('quoll_schema', '9999')");
          await newer.query('COMMIT');
        } finally {
          await newer.end();
        }
        const ahead = { status: 'schema_ahead', code, database: 9999 };
        const health = await waitFor(
          'health to report the schema ahead',
          async () => {
            const h = (await (await fetch(`${node.url}/v1/health`)).json()) as {
              schema: { status: string };
            };
            return h.schema.status === 'schema_ahead' ? h : undefined;
          },
          15_000,
        );
        expect(health).toMatchObject({ status: 'degraded', database: 'ok', schema: ahead });
        expect(JSON.stringify(health)).toMatch(/9999.*newer than this node's code/);
        // Its log says it once, as a warning with the code (its stdout reaches this process a
        // little after its health changed: wait for the line, then count).
        const warned = (): string[] =>
          node.output().match(/"code":"schema_ahead"[^\n]*newer than this node's code/g) ?? [];
        await waitFor(
          'the schema_ahead warning in the node log',
          async () => (warned().length > 0 ? true : undefined),
          15_000,
        );
        expect(warned()).toHaveLength(1);
        // Still ready: the newer release's migrations are readable by this one (the rule), and a
        // load balancer taking every old node out at once would not be a rolling upgrade.
        const ready = await fetch(`${node.url}/v2/health/ready`);
        expect(ready.status).toBe(200);
        expect(await ready.json()).toEqual({ ready: true, schema: ahead });
        const client = node.client();
        await client.createWorkspace('after-the-newer-node');
        expect((await client.listWorkspaces()).map((w) => w.name)).toContain('after-the-newer-node');

        // It stops cleanly (the schema watch with every other loop)…
        expect(await node.stop()).toBe(0);
        // …and started again, this release refuses the newer schema, saying what to do.
        const err = await startTestServer({ home: node.home, args: ['--database', own.url] }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(String(err)).toMatch(
          new RegExp(`schema version 9999, but this Quoll knows only up to ${code}.*Upgrade this node`),
        );
      } finally {
        await node.stop();
        await own.drop();
      }
    }, 120_000);
  },
);

describe('an embedded (SQLite) start', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'quoll-no-pg-'));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('never loads the PostgreSQL driver', async () => {
    // A resolve hook that reports every module resolved from the pg package.
    const hook = `data:text/javascript,${encodeURIComponent(`
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(\`
        export async function resolve(specifier, context, next) {
          const r = await next(specifier, context);
          if (/[\\\\/]node_modules[\\\\/]pg[\\\\/]/.test(r.url)) process.stderr.write('LOADED-PG ' + r.url + '\\\\n');
          return r;
        }\`));`)}`;
    const child = spawn(process.execPath, ['--import', hook, CLI, 'server', '--home', home, '--port', '0'], {
      env: { ...process.env, QUOLL_DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(
      'the server to listen',
      async () => (out.includes('listening on') ? true : undefined),
      30_000,
    );
    const health = (await (await fetch(/listening on (\S+)/.exec(out)?.[1] + '/v1/health')).json()) as {
      database: string;
    };
    expect(health.database).toBe('ok');
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(out).not.toContain('LOADED-PG');
    expect(out).toContain('listening on');
  });
});
