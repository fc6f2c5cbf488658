import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Orchestration, type Workspace } from '@quoll/client';
import { apiFetch, type ApiFetchInit } from '../support/api-fetch.js';
import { lastRunEnded, readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { findPythons } from '../support/python.js';
import { runCli, type CliResult } from '../support/run-cli.js';
import { sseEvents } from '../support/sse-events.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * How long API tokens live and what they can become, against a real server: a run's token or
 * a console session cannot mint tokens, a run's token never shows in its own log, the admin
 * lists and revokes API tokens (ending the sessions made from them), an open log stream ends
 * when its token or session is revoked or expires, a cookie GET that would create a workspace
 * needs the CSRF token, and token issuance refuses a huge TTL and the reserved subjects.
 */

const exec = promisify(execFile);
const pythons = await findPythons();
/** The Python client follows a task's last run; prints what ended the follow. */
const PY_FOLLOW = `
import os
from quoll import Client
run = Client(os.environ["QUOLL_URL"], os.environ["QUOLL_TOKEN"]).get_task_by_id(os.environ["TASK_ID"]).last_runs()[0]
try:
    for line in run.follow_logs():
        pass
    print("ended")
except Exception as e:
    print(type(e).__name__, getattr(e, "code", None), getattr(e, "status", None))
`;
let server: TestServer;
let admin: Client;
let adminA: Client;
let wsA: Workspace;
/** A token that sees only workspace A. */
let tokenA: string;
let ticker: Orchestration;

function quoll(...args: string[]): Promise<CliResult> {
  return runCli(server.home, args);
}

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

async function api(path: string, init: ApiFetchInit = {}): Promise<Answer> {
  const res = await apiFetch(`${server.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Answer['body']) };
}

/** A console session started from `token`: its cookie, CSRF token and cookie value. */
async function session(token: string): Promise<{ cookie: string; csrf: string; secret: string; id: string }> {
  const res = await fetch(`${server.url}/v1/console/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url },
    body: JSON.stringify({ token }),
  });
  expect(res.status).toBe(200);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';', 1)[0]!;
  const { csrfToken } = (await res.json()) as { csrfToken: string };
  const sessions = (await api('/v1/admin/sessions', { bearer: server.token })).body as unknown as {
    id: string;
  }[];
  return { cookie, csrf: csrfToken, secret: cookie.slice(cookie.indexOf('=') + 1), id: sessions[0]!.id };
}

/** An open log follow: the events seen so far (with when), and when it closed. */
interface Follow {
  events: { type: string; data: string; at: number }[];
  closed: Promise<number>;
}

async function follow(runId: string, headers: Record<string, string>): Promise<Follow> {
  const res = await fetch(`${server.url}/v1/task-runs/${runId}/logs/follow`, { headers });
  expect(res.status).toBe(200);
  const events: Follow['events'] = [];
  const closed = (async (): Promise<number> => {
    try {
      for await (const event of sseEvents(res.body)) events.push({ ...event, at: Date.now() });
    } catch {
      // A broken stream counts as closed.
    }
    return Date.now();
  })();
  return { events, closed };
}

/** Resolves with the close time, or null when the stream is still open after `ms`. */
function closedWithin(f: Follow, ms: number): Promise<number | null> {
  return Promise.race([f.closed, new Promise<null>((r) => setTimeout(() => r(null), ms))]);
}

/** Starts a run of the ticker (prints a line a second for 40 s) in A; its task's and its id once it runs. */
async function tickingRun(name: string): Promise<{ taskId: string; runId: string }> {
  const task = await ticker.runOnce({ name });
  const runId = await waitFor(`${name} to print`, async () => {
    const [r] = await task.lastRuns();
    if (r === undefined || r.status !== 'running') return undefined;
    const lines = await r.logs();
    return lines.some((l) => l.line.startsWith('tick')) ? r.id : undefined;
  });
  return { taskId: task.id, runId };
}

beforeAll(async () => {
  server = await startTestServer();
  admin = server.client();
  wsA = await admin.createWorkspace('lifetime-a');
  adminA = server.client();
  adminA.setCurrentWorkspace(wsA);
  tokenA = await admin.createWorkspaceToken(wsA, { subject: 'lifetime-a' });
  ticker = await readyOrchestration(adminA, 'ticker', {
    'main.mjs': `for (let i = 0; i < 40; i++) { console.log('tick ' + i); await new Promise((r) => setTimeout(r, 1000)); }`,
  });
}, 120_000);
afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe('token issuance', () => {
  it("a run's token (admin rights) cannot mint a token, and never shows in its own log", async () => {
    const orchestration = await readyOrchestration(adminA, 'minter', {
      'main.mjs': `
        const url = process.env.QUOLL_URL;
        const headers = { authorization: 'Bearer ' + process.env.QUOLL_TOKEN, 'content-type': 'application/json' };
        console.log('TOKEN=' + process.env.QUOLL_TOKEN);
        console.error('again ' + process.env.QUOLL_TOKEN + ' end');
        const me = await (await fetch(url + '/v1/me', { headers })).json();
        console.log('KIND=' + me.kind);
        const res = await fetch(url + '/v1/workspaces/' + me.workspace.id + '/tokens', { method: 'POST', headers, body: '{}' });
        const body = await res.json();
        console.log('MINT=' + res.status + ' ' + (body.error ? body.error.code : 'issued'));`,
    });
    // The admin created the task: its runs get admin rights (the spec's contract).
    const task = await orchestration.runOnce({ name: 'admin-nightly' });
    const run = await lastRunEnded(task, 60_000, 'the minter to end');
    expect(run.status).toBe('success');
    // Workspace A reads the logs of runs in A, an admin's task's too.
    const scoped = await api(`/v1/task-runs/${run.id}/logs`, { bearer: tokenA });
    expect(scoped.status).toBe(200);
    const lines = (scoped.body as unknown as { line: string }[]).map((l) => l.line);
    expect(lines).toContain('KIND=admin');
    expect(lines).toContain('MINT=403 forbidden');
    expect(lines).toContain('TOKEN=*****');
    expect(lines).toContain('again ***** end');
    expect(lines.join('\n')).not.toContain('qk_');
    // Following shows the same redacted lines.
    const f = await follow(run.id, { authorization: `Bearer ${tokenA}` });
    await f.closed;
    expect(f.events.map((e) => e.data).join('\n')).toContain('TOKEN=*****');
    expect(f.events.map((e) => e.data).join('\n')).not.toContain('qk_');
  }, 120_000);

  it('a console session (admin) cannot mint a token, by cookie or as a bearer token', async () => {
    const s = await session(server.token);
    const byCookie = await api(`/v1/workspaces/${wsA.id}/tokens`, {
      method: 'POST',
      cookie: s.cookie,
      csrf: s.csrf,
      origin: server.url,
      json: {},
    });
    expect(byCookie.status).toBe(403);
    expect(byCookie.body.error?.code).toBe('forbidden');
    const byBearer = await api(`/v1/workspaces/${wsA.id}/tokens`, {
      method: 'POST',
      bearer: s.secret,
      json: {},
    });
    expect(byBearer.status).toBe(403);
    expect(byBearer.body.error?.code).toBe('forbidden');
    // An API token still can.
    const issued = await api(`/v1/workspaces/${wsA.id}/tokens`, {
      method: 'POST',
      bearer: server.token,
      json: {},
    });
    expect(issued.status).toBe(201);
  });

  it('a ttlSeconds past ten years is a 400 invalid_request; ten years is fine', async () => {
    for (const ttlSeconds of [9007199254740991, 315_360_001]) {
      const res = await api(`/v1/workspaces/${wsA.id}/tokens`, {
        method: 'POST',
        bearer: server.token,
        json: { ttlSeconds },
      });
      expect(res.status).toBe(400);
      expect(res.body.error?.code).toBe('invalid_request');
    }
    const ok = await api(`/v1/workspaces/${wsA.id}/tokens`, {
      method: 'POST',
      bearer: server.token,
      json: { ttlSeconds: 315_360_000 },
    });
    expect(ok.status).toBe(201);
  });

  it('refuses the reserved subject prefixes with 400, issuing nothing', async () => {
    const before = (await api('/v1/admin/tokens', { bearer: server.token })).body;
    for (const subject of ['console-link:x', 'console-session:x', 'task-run:x']) {
      const res = await api(`/v1/workspaces/${wsA.id}/tokens`, {
        method: 'POST',
        bearer: server.token,
        json: { subject },
      });
      expect(res.status).toBe(400);
      expect(res.body.error?.code).toBe('invalid_request');
      expect(res.body.error?.message).toContain(subject.slice(0, subject.indexOf(':') + 1));
    }
    expect((await api('/v1/admin/tokens', { bearer: server.token })).body).toEqual(before);
  });
});

describe('listing and revoking API tokens', () => {
  it('the admin lists tokens (never their secret) and revokes one, ending its sessions', async () => {
    const issued = await admin.issueWorkspaceToken(wsA, { subject: 'leaky', ttlSeconds: 3600 });
    expect(issued.token.startsWith('qk_')).toBe(true);
    const s = await session(issued.token);
    expect((await api('/v1/me', { cookie: s.cookie })).status).toBe(200);

    const listed = await api('/v1/admin/tokens', { bearer: server.token });
    expect(listed.status).toBe(200);
    const rows = listed.body as unknown as Record<string, unknown>[];
    const row = rows.find((r) => r.id === issued.id);
    expect(row).toMatchObject({ id: issued.id, subject: 'leaky', kind: 'workspace', workspaceId: wsA.id });
    expect(typeof row?.createdAt).toBe('string');
    expect(typeof row?.expiresAt).toBe('string');
    // Sessions are not API tokens (they have their own list); no secret or hash is ever shown.
    expect(rows.some((r) => r.id === s.id)).toBe(false);
    expect(JSON.stringify(rows)).not.toContain(issued.token);
    expect(Object.keys(row ?? {}).sort()).toEqual([
      'createdAt',
      'expiresAt',
      'id',
      'kind',
      'subject',
      'workspaceId',
    ]);
    expect(await admin.listTokens()).toEqual(rows);

    // Admin only.
    expect((await api('/v1/admin/tokens', { bearer: tokenA })).status).toBe(403);
    expect((await api(`/v1/admin/tokens/${issued.id}`, { method: 'DELETE', bearer: tokenA })).status).toBe(
      403,
    );

    const revoked = await api(`/v1/admin/tokens/${issued.id}`, { method: 'DELETE', bearer: server.token });
    expect(revoked.status).toBe(204);
    expect((await api('/v1/me', { bearer: issued.token })).body.error?.code).toBe('invalid_token');
    expect((await api('/v1/me', { cookie: s.cookie })).body.error?.code).toBe('invalid_token');
    expect((await api('/v1/admin/tokens', { bearer: server.token })).body).not.toContainEqual(row);
    // Again, an unknown id, or a session's id: token_not_found, and nothing changes.
    for (const id of [issued.id, 'no-such-token', s.id]) {
      const again = await api(`/v1/admin/tokens/${id}`, { method: 'DELETE', bearer: server.token });
      expect(again.status).toBe(404);
      expect(again.body.error?.code).toBe('token_not_found');
    }
  });

  it('`quoll admin tokens list|revoke` list and revoke through the API', async () => {
    const { id, token } = await admin.issueWorkspaceToken(wsA, { subject: 'cli-made' });
    const list = await quoll('admin', 'tokens', 'list', '--json');
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as { id: string; subject: string; expiresAt: string | null }[];
    expect(rows.find((r) => r.id === id)).toMatchObject({ subject: 'cli-made', expiresAt: null });
    expect(list.stdout).not.toContain(token);
    const table = await quoll('admin', 'tokens');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(id);
    const revoke = await quoll('admin', 'tokens', 'revoke', id);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toContain(`revoked token ${id}`);
    expect((await api('/v1/me', { bearer: token })).status).toBe(401);
    const again = await quoll('admin', 'tokens', 'revoke', id);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('token_not_found');
    const help = await quoll('admin', 'tokens', '--help');
    expect(help.stdout).toContain('revoke');
  });
});

describe('open log streams', () => {
  it('end with an error event when their session is revoked or their token expires', async () => {
    const { taskId, runId } = await tickingRun('ticking');
    const s = await session(tokenA);
    const short = (
      await api(`/v1/workspaces/${wsA.id}/tokens`, {
        method: 'POST',
        bearer: server.token,
        json: { subject: 'short', ttlSeconds: 6 },
      })
    ).body as { token: string };
    const issuedAt = Date.now();
    const byCookie = await follow(runId, { cookie: s.cookie });
    const byBearer = await follow(runId, { authorization: `Bearer ${s.secret}` });
    const byShort = await follow(runId, { authorization: `Bearer ${short.token}` });
    const byApiToken = await follow(runId, { authorization: `Bearer ${tokenA}` });
    // The SDK's follow throws the catalogue's error when the server ends the stream.
    const shortClient = new Client({ url: server.url, token: short.token });
    const [shortRun] = await (await shortClient.getTask(taskId)).lastRuns();
    // So does the Python client's (when this machine has a Python).
    const viaPython =
      pythons[0] === undefined
        ? null
        : exec(pythons[0].command, ['-c', PY_FOLLOW], {
            env: {
              ...process.env,
              PYTHONPATH: fileURLToPath(new URL('../../packages/python/src', import.meta.url)),
              QUOLL_URL: server.url,
              QUOLL_TOKEN: short.token,
              TASK_ID: taskId,
            },
          });
    const viaSdk = (async (): Promise<unknown> => {
      try {
        for await (const line of shortRun!.followLogs()) void line;
        return 'ended';
      } catch (err) {
        return err;
      }
    })();
    await waitFor(
      'lines',
      async () => (byCookie.events.length > 0 && byBearer.events.length > 0) || undefined,
    );

    expect((await api(`/v1/admin/sessions/${s.id}`, { method: 'DELETE', bearer: server.token })).status).toBe(
      204,
    );
    const revokedAt = Date.now();
    for (const f of [byCookie, byBearer]) {
      const closedAt = await closedWithin(f, 10_000);
      expect(closedAt).not.toBeNull();
      expect(closedAt! - revokedAt).toBeLessThan(10_000);
      const last = f.events.at(-1);
      expect(last?.type).toBe('error');
      expect(JSON.parse(last!.data)).toMatchObject({ code: 'invalid_token' });
      expect(f.events.some((e) => e.type === 'end')).toBe(false);
    }
    const shortClosed = await closedWithin(byShort, 20_000);
    expect(shortClosed).not.toBeNull();
    expect(shortClosed! - issuedAt).toBeLessThan(6_000 + 10_000);
    expect(byShort.events.at(-1)?.type).toBe('error');
    expect(await viaSdk).toMatchObject({ name: 'AuthError', code: 'invalid_token', status: 401 });
    if (viaPython !== null) expect((await viaPython).stdout.trim()).toBe('AuthError invalid_token 401');
    // A stream whose token is still valid goes on.
    expect(await closedWithin(byApiToken, 100)).toBeNull();
    const lines = byApiToken.events.length;
    await waitFor('more lines', async () => byApiToken.events.length > lines || undefined);
  }, 120_000);
});

describe('cookie requests with side effects', () => {
  it('a cookie GET that would create a workspace needs the same origin and the CSRF token', async () => {
    const s = await session(server.token);
    const evil = await api('/v1/workspaces/by-name/csrf-made-me?createIfNotExist=true', {
      cookie: s.cookie,
      origin: 'http://evil.example',
    });
    expect(evil.status).toBe(403);
    expect(evil.body.error?.code).toBe('csrf_failed');
    const noCsrf = await api('/v1/workspaces/by-name/csrf-made-me?createIfNotExist=true', {
      cookie: s.cookie,
    });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.error?.code).toBe('csrf_failed');
    expect((await admin.listWorkspaces()).some((w) => w.name === 'csrf-made-me')).toBe(false);
    // Reading needs neither; the console's own request (same origin, CSRF token) creates.
    const read = await api(`/v1/workspaces/by-name/${wsA.name}`, {
      cookie: s.cookie,
      origin: 'http://evil.example',
    });
    expect(read.status).toBe(200);
    const made = await api('/v1/workspaces/by-name/csrf-made-me?createIfNotExist=true', {
      cookie: s.cookie,
      csrf: s.csrf,
      origin: server.url,
    });
    expect(made.status).toBe(200);
    expect(made.body.name).toBe('csrf-made-me');
    // Revealing a connection's details writes an audit row: the same rule.
    await admin.createConnection('csrf_conn', 'HTTP', { host: 'http://127.0.0.1:9/csrf' });
    const audited = (await admin.connectionAudit()).length;
    const reveal = await api('/v1/connections/csrf_conn/details', {
      cookie: s.cookie,
      origin: 'http://evil.example',
    });
    expect(reveal.status).toBe(403);
    expect(reveal.body.error?.code).toBe('csrf_failed');
    expect((await api('/v1/connections/csrf_conn/details', { cookie: s.cookie })).status).toBe(403);
    expect((await admin.connectionAudit()).length).toBe(audited);
    const revealed = await api('/v1/connections/csrf_conn/details', {
      cookie: s.cookie,
      csrf: s.csrf,
      origin: server.url,
    });
    expect(revealed.status).toBe(200);
    expect((await admin.connectionAudit()).length).toBe(audited + 1);
    // A session is named the same (its session form) by cookie and as a bearer token: in
    // /v1/me and in the audit trail.
    const byBearer = await api('/v1/connections/csrf_conn/details', { bearer: s.secret });
    expect(byBearer.status).toBe(200);
    const [viaBearer, viaCookie] = await admin.connectionAudit({ limit: 2 });
    expect(viaCookie?.subject).toBe('console-session:admin');
    expect(viaBearer?.subject).toBe('console-session:admin');
    expect((await api('/v1/me', { cookie: s.cookie })).body.subject).toBe('console-session:admin');
    expect((await api('/v1/me', { bearer: s.secret })).body.subject).toBe('console-session:admin');
    // The console still shows who signed in.
    expect((await api('/v1/console/session', { cookie: s.cookie })).body.subject).toBe('admin');
    // The SDK (a bearer token) is unaffected.
    expect((await admin.getWorkspace('sdk-made', { createIfNotExist: true })).name).toBe('sdk-made');
  });
});
