import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthError,
  Client,
  ConflictError,
  NotFoundError,
  ValidationError,
  type Connection,
} from '@quoll/client';
import { signedArrowFileServer, type SignedArrowFileServer } from '../support/signed-arrow-file-server.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { runCli, type CliResult } from '../support/run-cli.js';
import { CLI, serversOnPostgres, startTestServer, type TestServer } from '../support/test-server.js';

const run = promisify(execFile);

/** A value that stands for a password: it must never appear anywhere but in `details()`. */
const SECRET = `sig-${randomBytes(16).toString('hex')}`;
const ROWS = 25;

let server: TestServer;
let client: Client;
let files: SignedArrowFileServer;
/** `http://127.0.0.1:<port>/data/xtest.arrow?sig=<SECRET>`: answers only with the right signature. */
let arrowUrl: string;
const arrowBytes = tableToIpcFile(makeArrowTensorTable(makeHouseRows(ROWS, 11), 18));

/** Runs the built CLI against the test server's home; resolves stdout, stderr and the exit code. */
function cli(args: string[], home = server.home): Promise<CliResult> {
  return runCli(home, args);
}

/** Every regular file under `dir`, recursively. */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await allFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

beforeAll(async () => {
  files = await signedArrowFileServer(arrowBytes, SECRET);
  arrowUrl = files.url;
  server = await startTestServer();
  client = server.client();
});

afterAll(async () => {
  const code = await server.stop();
  await server.cleanup();
  await files.close();
  expect(code).toBe(0);
});

describe('the seed flow (create → list → attach → get → details → use → detach → delete)', () => {
  it('creates houseprice_arrow_table, uses its details to fetch an Arrow file and infers with it', async () => {
    const created = await client.createConnection('houseprice_arrow_table', 'HTTPFILE', { host: arrowUrl });
    expect(created.name).toBe('houseprice_arrow_table');
    expect(created.type).toBe('HTTPFILE');
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.workspaceNames).toEqual([]);
    expect(String(created)).toMatch(/^Name +houseprice_arrow_table$/m);
    expect(String(created)).toMatch(/^Connection Type +HTTPFILE$/m);
    expect(String(created)).toMatch(/^Details +\*{5}$/m);
    expect(String(created)).toMatch(/^Created At +\d{4}-\d\d-\d\dT/m);
    expect(String(created)).toMatch(/^Linked Workspaces +\[\]$/m);

    const all = await client.listConnections();
    expect(all.map((c) => c.name)).toContain('houseprice_arrow_table');
    const table = inspect(all);
    expect(table.split('\n')[0]).toMatch(/^name +connection type +details +created at +linked workspaces$/);
    expect(table).toMatch(/houseprice_arrow_table +HTTPFILE +\*{5} +\d{4}-/);

    const workspace = await client.getWorkspace('connectionworkspace', { createIfNotExist: true });
    await workspace.addConnection('houseprice_arrow_table');
    await workspace.addConnection('houseprice_arrow_table'); // attaching twice is a no-op
    const attached = await workspace.listConnections();
    expect(attached.map((c) => [c.name, c.workspaceNames])).toEqual([
      ['houseprice_arrow_table', ['connectionworkspace']],
    ]);
    expect(String(attached)).toMatch(
      /houseprice_arrow_table +HTTPFILE +\*{5} +\S+ +\['connectionworkspace'\]/,
    );

    const connection = await client.getConnection('houseprice_arrow_table');
    expect(connection.workspaceNames).toEqual(['connectionworkspace']);
    expect(await connection.details()).toEqual({ host: arrowUrl });

    // Use the connection as the seed does: GET the file it names, as an Arrow IPC file.
    const host = (await connection.details()).host as string;
    const response = await fetch(host, { headers: { Accept: 'application/vnd.apache.arrow.file' } });
    expect(response.status).toBe(200);
    const arrowTable = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
    expect(arrowTable.numRows).toBe(ROWS);

    client.setCurrentWorkspace(workspace);
    const model = await (
      await client.uploadModel('connectionmodel', makeTreeEnsembleRegressor({ seed: 5 }))
    ).configure({
      tensorFields: ['tensor'],
    });
    const pipeline = await client.buildPipeline('connectionpipeline');
    await pipeline.addModelStep(model);
    await pipeline.deploy();
    try {
      const result = await pipeline.infer(arrowTable);
      expect(result.numRows).toBe(ROWS);
      expect(result.schema.fields.map((f) => f.name)).toEqual([
        'time',
        'in.tensor',
        'out.variable',
        'check_failures',
      ]);
    } finally {
      await pipeline.undeploy();
    }

    await expect(
      client.createConnection('houseprice_arrow_table', 'HTTPFILE', { host: arrowUrl }),
    ).rejects.toBeInstanceOf(ConflictError);

    await workspace.removeConnection('houseprice_arrow_table');
    const afterDetach = await workspace.listConnections();
    expect(afterDetach).toHaveLength(0);
    expect(String(afterDetach)).toBe('(no connections)');
    expect((await client.listConnections()).map((c) => c.name)).toContain('houseprice_arrow_table');

    const before = (await client.listConnections()).length;
    await connection.deleteConnection();
    expect(await client.listConnections()).toHaveLength(before - 1);
    expect((await client.listConnections()).map((c) => c.name)).not.toContain('houseprice_arrow_table');
    await expect(client.getConnection('houseprice_arrow_table')).rejects.toBeInstanceOf(NotFoundError);
    await expect(connection.details()).rejects.toBeInstanceOf(NotFoundError);
  });

  it('deleting a connection detaches it from every workspace', async () => {
    const a = await client.getWorkspace('deletews-a', { createIfNotExist: true });
    const b = await client.getWorkspace('deletews-b', { createIfNotExist: true });
    const connection = await client.createConnection('to_delete', 'HTTP', { host: 'http://127.0.0.1:9/x' });
    await a.addConnection('to_delete');
    await b.addConnection('to_delete');
    expect((await client.getConnection('to_delete')).workspaceNames).toEqual(['deletews-a', 'deletews-b']);
    await connection.deleteConnection();
    expect(await a.listConnections()).toHaveLength(0);
    expect(await b.listConnections()).toHaveLength(0);
  });

  it('refuses bad input with a clear error and stores nothing', async () => {
    const before = (await client.listConnections()).length;
    await expect(
      client.createConnection('bad_details', 'HTTP', 'not an object' as unknown as Record<string, unknown>),
    ).rejects.toMatchObject({
      code: 'invalid_connection',
    });
    await expect(client.createConnection('bad_type', '', { host: 'x' })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(client.createConnection('bad name!', 'HTTP', { host: 'x' })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(
      (await client.getWorkspace('connectionworkspace', { createIfNotExist: true })).addConnection('no_such'),
    ).rejects.toBeInstanceOf(NotFoundError);
    expect(await client.listConnections()).toHaveLength(before);
  });
});

describe('masking', () => {
  it('util.inspect, toString and JSON.stringify of connections and lists never show the details', async () => {
    const connection = await client.createConnection('masked', 'ODBC', {
      host: 'db.internal',
      password: SECRET,
    });
    const list = await client.listConnections();
    const fetched = await client.getConnection('masked');
    const shown: string[] = [
      inspect(connection),
      inspect(connection, { showHidden: true, depth: 10 }),
      String(connection),
      fetched.toString(),
      JSON.stringify(connection),
      JSON.stringify(fetched),
      inspect(list),
      String(list),
      JSON.stringify(list),
      inspect({ nested: [connection] }, { depth: 10 }),
      JSON.stringify(Object.entries(connection)),
    ];
    for (const text of shown) expect(text).not.toContain(SECRET);
    expect(inspect(connection)).toContain('*****');
    expect(JSON.parse(JSON.stringify(connection))).toEqual({
      id: connection.id,
      name: 'masked',
      type: 'ODBC',
      createdAt: connection.createdAt,
      workspaceNames: [],
    });
    // The secret really is there to be leaked: details() returns it.
    expect((await connection.details()).password).toBe(SECRET);
  });

  it('the secret is in neither the database files, the home directory nor the server output', async () => {
    await client.createConnection('secret_holder', 'HTTPFILE', { host: arrowUrl, password: SECRET });
    await (await client.getConnection('secret_holder')).details();
    // Error paths too: a duplicate and a malformed body carrying the secret.
    await expect(
      client.createConnection('secret_holder', 'HTTPFILE', { password: SECRET }),
    ).rejects.toBeInstanceOf(ConflictError);
    const malformed = await fetch(`${server.url}/v1/connections`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: `{"name":"broken","type":"HTTP","details":{"password":"${SECRET}"`,
    });
    expect(malformed.status).toBe(400);
    const paths = await allFiles(server.home);
    if (server.database === null) {
      expect(paths).toContain(join(server.home, 'quoll.db'));
    } else {
      // A node's metadata is in PostgreSQL: a full dump of its database must not hold it either.
      const dump = (await run('pg_dump', ['--no-owner', server.database], { maxBuffer: 64 * 1024 * 1024 }))
        .stdout;
      expect(dump).toContain('secret_holder');
      expect(dump.includes(SECRET), 'the pg_dump of the database holds the secret').toBe(false);
    }
    for (const path of paths) {
      const bytes = await readFile(path);
      expect(bytes.includes(Buffer.from(SECRET)), `${path} holds the secret`).toBe(false);
    }
    expect(server.output()).not.toContain(SECRET);
  });
});

describe('scoping with a workspace token', () => {
  it('sees only connections attached to its workspace; every other name is NotFound', async () => {
    const ws = await client.getWorkspace('scopedws', { createIfNotExist: true });
    await client.createConnection('scoped_visible', 'HTTP', {
      host: 'http://127.0.0.1:9/visible',
      token: SECRET,
    });
    await client.createConnection('scoped_hidden', 'HTTP', { host: 'http://127.0.0.1:9/hidden' });
    await ws.addConnection('scoped_visible');

    const scoped = new Client({
      url: server.url,
      token: await client.createWorkspaceToken(ws, { subject: 'etl-bot' }),
    });
    expect((await scoped.listConnections()).map((c) => c.name)).toEqual(['scoped_visible']);
    const scopedWs = await scoped.getCurrentWorkspace();
    expect(scopedWs.name).toBe('scopedws');
    expect((await scopedWs.listConnections()).map((c) => c.name)).toEqual(['scoped_visible']);
    expect(await (await scoped.getConnection('scoped_visible')).details()).toEqual({
      host: 'http://127.0.0.1:9/visible',
      token: SECRET,
    });
    await expect(scoped.getConnection('scoped_hidden')).rejects.toBeInstanceOf(NotFoundError);
    const hidden = (await client.listConnections()).find((c) => c.name === 'scoped_hidden') as Connection;
    const hiddenAsScoped = (await scoped.listConnections()).find((c) => c.name === 'scoped_hidden');
    expect(hiddenAsScoped).toBeUndefined();
    // A hidden name answers exactly like a missing one.
    const hiddenError = await failure(scoped.getConnection('scoped_hidden'));
    const missingError = await failure(scoped.getConnection('no_such_connection'));
    expect(hiddenError.code).toBe(missingError.code);
    expect(hiddenError.message.replace('scoped_hidden', 'X')).toBe(
      missingError.message.replace('no_such_connection', 'X'),
    );
    await expect(scopedWs.addConnection('scoped_hidden')).rejects.toBeInstanceOf(NotFoundError);
    const details = await fetch(`${scoped.url}/v1/connections/scoped_hidden/details`, {
      headers: { authorization: `Bearer ${await client.createWorkspaceToken(ws)}` },
    });
    expect(details.status).toBe(404);
    expect(hidden.name).toBe('scoped_hidden');

    // The admin-only audit trail records the scoped read under the token's subject.
    await expect(scoped.connectionAudit()).rejects.toBeInstanceOf(AuthError);
    const audit = await client.connectionAudit({ limit: 50 });
    expect(audit.find((e) => e.connectionName === 'scoped_visible')).toMatchObject({
      subject: 'etl-bot',
      action: 'read_details',
    });
    expect(await client.connectionAudit({ limit: 1 })).toHaveLength(1);
  });
});

describe('the CLI', () => {
  it('creates, lists, shows, attaches, detaches and deletes connections; details print only with --show-details', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quoll-conn-cli-'));
    try {
      const detailsFile = join(dir, 'details.json');
      await writeFile(
        detailsFile,
        JSON.stringify({ host: 'https://example.invalid/data.arrow', password: SECRET }),
      );
      const created = await cli([
        'connection',
        'create',
        'cli_conn',
        'HTTPFILE',
        '--details-file',
        detailsFile,
      ]);
      expect(created.stderr).toBe('');
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(/^details +\*{5}$/m);

      const inline = await cli([
        'connection',
        'create',
        'cli_inline',
        'HTTP',
        '--details',
        '{"host": "http://127.0.0.1:9/"}',
        '--json',
      ]);
      expect(JSON.parse(inline.stdout)).toMatchObject({
        name: 'cli_inline',
        type: 'HTTP',
        workspaceNames: [],
      });
      expect(inline.stdout).not.toContain('details');

      const badJson = await cli([
        'connection',
        'create',
        'cli_bad',
        'HTTP',
        '--details',
        `{"password": "${SECRET}"`,
      ]);
      expect(badJson.code).not.toBe(0);
      expect(badJson.stderr).toContain('not valid JSON');
      expect(badJson.stderr).not.toContain(SECRET);

      const list = await cli(['connection', 'list']);
      expect(list.stdout).toMatch(/^name +connection type +details +created at +linked workspaces$/m);
      expect(list.stdout).toMatch(/cli_conn +HTTPFILE +\*{5}/);
      const listJson = await cli(['connection', 'list', '--json']);
      expect((JSON.parse(listJson.stdout) as { name: string }[]).map((c) => c.name)).toContain('cli_conn');

      expect((await cli(['workspace', 'create', 'cliws'])).code).toBe(0);
      expect((await cli(['connection', 'attach', 'cli_conn', 'cliws'])).stdout).toContain(
        'attached connection cli_conn to workspace cliws',
      );
      const wsList = await cli(['-w', 'cliws', 'connection', 'list']);
      expect(wsList.stdout).toMatch(/cli_conn +HTTPFILE +\*{5} +\S+ +\['cliws'\]/);
      expect(wsList.stdout).not.toContain('cli_inline');

      const get = await cli(['connection', 'get', 'cli_conn']);
      expect(get.stdout).toMatch(/^linked workspaces +\['cliws'\]$/m);
      const getJson = await cli(['connection', 'get', 'cli_conn', '--json']);
      expect(JSON.parse(getJson.stdout)).not.toHaveProperty('details');
      const shown = await cli(['connection', 'get', 'cli_conn', '--show-details', '--json']);
      expect(JSON.parse(shown.stdout)).toMatchObject({ name: 'cli_conn', details: { password: SECRET } });
      const shownTable = await cli(['connection', 'get', 'cli_conn', '--show-details']);
      expect(shownTable.stdout).toContain(SECRET);

      for (const out of [created, inline, list, listJson, wsList, get, getJson])
        expect(out.stdout).not.toContain(SECRET);

      const audit = await cli(['admin', 'audit', '--limit', '5']);
      expect(audit.code).toBe(0);
      expect(audit.stdout).toMatch(/^at +subject +connection +action$/m);
      expect(audit.stdout).toMatch(/cli_conn +read_details/);

      expect((await cli(['-w', 'cliws', 'connection', 'detach', 'cli_conn'])).code).toBe(0);
      expect((await cli(['-w', 'cliws', 'connection', 'list'])).stdout.trim()).toBe('(no connections)');
      expect((await cli(['connection', 'delete', 'cli_conn'])).stdout).toContain(
        'deleted connection cli_conn',
      );
      const missing = await cli(['connection', 'get', 'cli_conn']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('connection_not_found');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // About twenty CLI processes, each a Node start: minutes on a loaded two-core machine.
  }, 180_000);
});

describe('master key', () => {
  // An embedded home's rotation (a key file made and swapped); a cluster's, run against its
  // database while the nodes serve, is test/cluster/rotate-key.test.ts.
  it.skipIf(serversOnPostgres)(
    'rotate-key re-encrypts while the server runs; details still read right before and after a restart',
    async () => {
      const rotating = await startTestServer();
      let restarted: TestServer | undefined;
      try {
        const admin = rotating.client();
        await admin.createConnection('before_rotation', 'HTTPFILE', { host: arrowUrl });
        const keyBefore = await readFile(join(rotating.home, 'master.key'), 'utf8');

        const rotated = await cli(['admin', 'rotate-key', '--home', rotating.home], rotating.home);
        expect(rotated.stderr).toBe('');
        expect(rotated.code).toBe(0);
        expect(rotated.stdout).toContain('re-sealed 1 connection(s)');
        expect(await readFile(join(rotating.home, 'master.key'), 'utf8')).not.toBe(keyBefore);
        expect(await readFile(join(rotating.home, 'master.key.old'), 'utf8')).toBe(keyBefore);

        // The running server follows the new key files without a restart.
        expect(await (await admin.getConnection('before_rotation')).details()).toEqual({ host: arrowUrl });
        await admin.createConnection('after_rotation', 'HTTP', { host: 'http://127.0.0.1:9/after' });
        expect(await (await admin.getConnection('after_rotation')).details()).toEqual({
          host: 'http://127.0.0.1:9/after',
        });

        const retired = await cli(['admin', 'rotate-key', '--retire-old'], rotating.home);
        expect(retired.code).toBe(0);
        expect(retired.stdout).toContain('removed master.key.old');
        await expect(stat(join(rotating.home, 'master.key.old'))).rejects.toMatchObject({ code: 'ENOENT' });

        // A fresh process holds only the new key, and every row opens with it.
        expect(await rotating.stop()).toBe(0);
        restarted = await startTestServer({ home: rotating.home });
        const again = restarted.client();
        expect(await (await again.getConnection('before_rotation')).details()).toEqual({ host: arrowUrl });
        expect(await (await again.getConnection('after_rotation')).details()).toEqual({
          host: 'http://127.0.0.1:9/after',
        });
        expect(rotating.output() + restarted.output()).not.toContain(SECRET);
      } finally {
        await rotating.stop();
        await restarted?.stop();
        await rotating.cleanup();
      }
    },
  );

  it('quoll server refuses to start on a bad key, printing why, and exits non-zero', async () => {
    const home = await mkdtemp(join(tmpdir(), 'quoll-badkey-'));
    try {
      const badEnv = await serverExit(home, { QUOLL_MASTER_KEY: 'too-short' });
      expect(badEnv.code).not.toBe(0);
      expect(badEnv.output).toContain('QUOLL_MASTER_KEY');
      expect(badEnv.output).toContain('not a 32-byte key');

      await writeFile(join(home, 'master.key'), `${randomBytes(32).toString('base64')}\n`);
      await chmod(join(home, 'master.key'), 0o644);
      const openFile = await serverExit(home, {});
      expect(openFile.code).not.toBe(0);
      expect(openFile.output).toContain('chmod 600');
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

/** The error a promise rejects with; fails the test if it resolves. */
async function failure(promise: Promise<unknown>): Promise<NotFoundError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(NotFoundError);
    return err as NotFoundError;
  }
  throw new Error('expected a NotFoundError');
}

/** Runs `quoll server` on `home` expecting it to fail at startup; resolves its exit code and output. */
async function serverExit(
  home: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  const base = { ...process.env };
  delete base.QUOLL_MASTER_KEY;
  const runsDir = `${home}.runs`;
  const child = spawn(process.execPath, [CLI, 'server', '--home', home, '--port', '0'], {
    env: { ...base, QUOLL_RUNS_DIR: runsDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (d: Buffer): void => {
    output += d.toString();
    // Started after all (the behaviour under test is broken): stop it so the test fails, not hangs.
    if (output.includes('listening on')) child.kill('SIGTERM');
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  await rm(runsDir, { recursive: true, force: true });
  return { code, output };
}
