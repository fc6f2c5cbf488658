import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFetch, type ApiFetchInit } from '../support/api-fetch.js';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { runCli, type CliResult } from '../support/run-cli.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * The console's sign-in rules against a real server: one-time links from `quoll console`, the
 * HttpOnly SameSite=Strict session cookie, CSRF on requests that change something, workspace
 * scope, sign out, and `quoll admin sessions` listing and revoking; a session never outlives
 * the API token it came from, and a run's token or a session can start none.
 */

let server: TestServer;

function quoll(...args: string[]): Promise<CliResult> {
  return runCli(server.home, args);
}

/** A fresh one-time link through the CLI; its code. */
async function linkCode(): Promise<string> {
  const out = await quoll('console', '--no-open', '--json');
  expect(out.code).toBe(0);
  const { url } = JSON.parse(out.stdout) as { url: string };
  expect(url.startsWith(`${server.url}/sign-in#code=ql_`)).toBe(true);
  return url.slice(url.indexOf('#code=') + 6);
}

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: { kind: string; workspaceId: number | null; subject: string; csrfToken: string };
}

async function signIn(body: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}/v1/console/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url, ...headers },
    body: JSON.stringify(body),
  });
}

async function signedIn(body: Record<string, string>): Promise<Signed> {
  const res = await signIn(body);
  expect(res.status).toBe(200);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';', 1)[0]!;
  const json = (await res.json()) as Signed['body'];
  return { cookie, csrf: json.csrfToken, setCookie, body: json };
}

function call(path: string, init: Omit<ApiFetchInit, 'bearer'> = {}): Promise<Response> {
  return apiFetch(`${server.url}${path}`, init);
}

async function codeOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe('console sign-in', () => {
  it('a one-time link signs in once, as an HttpOnly SameSite=Strict expiring cookie; the code is never a bearer token', async () => {
    const code = await linkCode();
    // The code alone is not an API token.
    const asBearer = await fetch(`${server.url}/v1/workspaces`, {
      headers: { authorization: `Bearer ${code}` },
    });
    expect(asBearer.status).toBe(401);
    const s = await signedIn({ code });
    expect(s.setCookie).toMatch(/^quoll_session=qs_[A-Za-z0-9_-]+; /);
    expect(s.setCookie).toContain('HttpOnly');
    expect(s.setCookie).toContain('SameSite=Strict');
    expect(s.setCookie).toContain('Path=/');
    expect(s.setCookie).toMatch(/Max-Age=43200\b/);
    expect(s.body).toMatchObject({ kind: 'admin', workspaceId: null });
    expect(s.csrf).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // Used once: a second use fails.
    const again = await signIn({ code });
    expect(again.status).toBe(401);
    expect(await codeOf(again)).toBe('invalid_token');
    // The cookie reads the API; GET /v1/console/session gives the same CSRF token.
    expect((await call('/v1/workspaces', { cookie: s.cookie })).status).toBe(200);
    const session = (await (await call('/v1/console/session', { cookie: s.cookie })).json()) as {
      csrfToken: string;
      expiresAt: string;
    };
    expect(session.csrfToken).toBe(s.csrf);
    expect(Date.parse(session.expiresAt) - Date.now()).toBeGreaterThan(11 * 3600_000);
    expect(Date.parse(session.expiresAt) - Date.now()).toBeLessThanOrEqual(12 * 3600_000);
  });

  it('a request that changes something with the cookie needs the CSRF token and the same origin; nothing changes otherwise', async () => {
    const s = await signedIn({ code: await linkCode() });
    const create = (name: string, extra: { csrf?: string; origin?: string }) =>
      call('/v1/workspaces', { method: 'POST', cookie: s.cookie, json: { name }, ...extra });
    const missing = await create('csrf-missing', {});
    expect(missing.status).toBe(403);
    expect(await codeOf(missing)).toBe('csrf_failed');
    const wrong = await create('csrf-wrong', { csrf: s.csrf.slice(0, -2) + 'xx' });
    expect(await codeOf(wrong)).toBe('csrf_failed');
    const otherSession = await signedIn({ code: await linkCode() });
    const crossed = await create('csrf-crossed', { csrf: otherSession.csrf });
    expect(await codeOf(crossed)).toBe('csrf_failed');
    const foreign = await create('csrf-foreign', { csrf: s.csrf, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(await codeOf(foreign)).toBe('csrf_failed');
    const names = async (): Promise<string[]> =>
      ((await (await call('/v1/workspaces', { cookie: s.cookie })).json()) as Array<{ name: string }>).map(
        (w) => w.name,
      );
    expect((await names()).filter((n) => n.startsWith('csrf-'))).toEqual([]);
    const ok = await create('csrf-ok', { csrf: s.csrf, origin: server.url });
    expect(ok.status).toBeLessThan(300);
    expect(await names()).toContain('csrf-ok');
    // Bearer callers are not ambient: no CSRF token needed.
    const bearer = await fetch(`${server.url}/v1/workspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bearer-ok' }),
    });
    expect(bearer.status).toBeLessThan(300);
  });

  it('signing in from another origin is refused, and so is a body with neither or both of code and token', async () => {
    const foreign = await signIn({ code: await linkCode() }, { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('set-cookie')).toBeNull();
    expect((await signIn({})).status).toBe(400);
    expect((await signIn({ code: 'ql_x', token: server.token })).status).toBe(400);
    expect(await codeOf(await signIn({ code: 'ql_nonsense' }))).toBe('invalid_token');
  });

  it('a pasted workspace token gives a session that sees only its workspace', async () => {
    const client = server.client();
    const mine = await client.getWorkspace('session-mine', { createIfNotExist: true });
    await client.getWorkspace('session-other', { createIfNotExist: true });
    const token = await client.createWorkspaceToken(mine, { subject: 'scoped-console' });
    const s = await signedIn({ token });
    expect(s.body).toMatchObject({ kind: 'workspace', workspaceId: mine.id, subject: 'scoped-console' });
    const seen = (await (await call('/v1/workspaces', { cookie: s.cookie })).json()) as Array<{
      name: string;
    }>;
    expect(seen.map((w) => w.name)).toEqual(['session-mine']);
    // A link made with the scoped token is scoped too.
    const link = await fetch(`${server.url}/v1/console/sign-in-links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { path } = (await link.json()) as { path: string };
    const viaLink = await signedIn({ code: path.slice(path.indexOf('#code=') + 6) });
    expect(viaLink.body).toMatchObject({ kind: 'workspace', workspaceId: mine.id });
    // Admin routes stay closed to it.
    expect((await call('/v1/admin/sessions', { cookie: s.cookie })).status).toBe(403);
  });

  it('a session from a short-lived token ends when the token expires, not 12 hours later', async () => {
    const client = server.client();
    const mine = await client.getWorkspace('session-short', { createIfNotExist: true });
    const token = await client.createWorkspaceToken(mine, { subject: 'short-lived', ttlSeconds: 1 });
    const issuedAt = Date.now();
    const s = await signedIn({ token });
    const expiresAt = Date.parse(
      ((await (await call('/v1/console/session', { cookie: s.cookie })).json()) as { expiresAt: string })
        .expiresAt,
    );
    expect(expiresAt).toBeLessThanOrEqual(issuedAt + 2_000);
    expect(Number(/Max-Age=(\d+)/.exec(s.setCookie)?.[1])).toBeLessThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 2_000));
    const after = await call('/v1/workspaces', { cookie: s.cookie });
    expect(after.status).toBe(401);
    expect(await codeOf(after)).toBe('invalid_token');
  });

  it('a session can make no sign-in link, by cookie or as a bearer token', async () => {
    const s = await signedIn({ code: await linkCode() });
    const secret = s.cookie.slice(s.cookie.indexOf('=') + 1);
    expect(secret.startsWith('qs_')).toBe(true);
    const asBearer = await fetch(`${server.url}/v1/console/sign-in-links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(asBearer.status).toBe(403);
    expect(await codeOf(asBearer)).toBe('forbidden');
    const byCookie = await call('/v1/console/sign-in-links', {
      method: 'POST',
      cookie: s.cookie,
      csrf: s.csrf,
      origin: server.url,
      json: {},
    });
    expect(byCookie.status).toBe(403);
    expect(await codeOf(byCookie)).toBe('forbidden');
    // The session itself still works.
    expect((await call('/v1/workspaces', { cookie: s.cookie })).status).toBe(200);
  });

  it("a task run's token can start no console session and make no sign-in link", async () => {
    const client = server.client();
    await client.getWorkspace('session-run', { createIfNotExist: true });
    client.setCurrentWorkspace(await client.getWorkspace('session-run'));
    const main = `
const post = (path, headers, body) => fetch(process.env.QUOLL_URL + path, {
  method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const session = await post('/v1/console/session', {}, { token: process.env.QUOLL_TOKEN });
console.log('session ' + session.status + ' ' + (session.headers.get('set-cookie') ?? 'no-cookie').slice(0, 14));
const link = await post('/v1/console/sign-in-links', { authorization: 'Bearer ' + process.env.QUOLL_TOKEN }, {});
console.log('link ' + link.status);
`;
    const orchestration = await readyOrchestration(client, 'session-from-run', { 'main.mjs': main });
    const task = await orchestration.runOnce({ name: 'session-from-run' });
    const run = await lastRunEnded(task, 30_000, 'the run to finish');
    const lines = (await run.logs()).map((l) => l.line);
    expect(run.status, lines.join('\n')).toBe('success');
    expect(lines).toContain('session 403 no-cookie');
    expect(lines).toContain('link 403');
  }, 90_000);

  it("the overview answers each part as its own route does for the caller, in the caller's scope", async () => {
    const client = server.client();
    const mine = await client.getWorkspace('overview-mine', { createIfNotExist: true });
    const other = await client.getWorkspace('overview-other', { createIfNotExist: true });
    const elsewhere = server.client();
    elsewhere.setCurrentWorkspace(other);
    await elsewhere.buildPipeline('overview-hidden');
    const token = await client.createWorkspaceToken(mine, { subject: 'overview-scoped' });
    const scoped = await signedIn({ token });
    const admin = await signedIn({ code: await linkCode() });
    const read = async (cookie: string): Promise<Record<string, unknown>> => {
      const res = await call('/v1/console/overview', { cookie });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    // (The metrics window moves with time: its shape is checked below.)
    const parts = [
      ['health', '/v1/health'],
      ['workspaces', '/v1/workspaces'],
      ['pipelines', '/v1/pipelines'],
      ['tasks', '/v1/tasks'],
    ] as const;
    for (const s of [scoped, admin]) {
      const o = await read(s.cookie);
      for (const [key, path] of parts) {
        expect(o[key], key).toEqual(await (await call(path, { cookie: s.cookie })).json());
      }
      expect(o.statuses).toEqual({});
      const window = o.window as { intervalSeconds: unknown; samples: unknown };
      expect(typeof window.intervalSeconds).toBe('number');
      expect(Array.isArray(window.samples)).toBe(true);
    }
    const seen = (await read(scoped.cookie)).workspaces as Array<{ name: string }>;
    expect(seen.map((w) => w.name)).toEqual(['overview-mine']);
    const names = ((await read(admin.cookie)).pipelines as Array<{ name: string }>).map((p) => p.name);
    expect(names).toContain('overview-hidden');
    expect(
      ((await read(scoped.cookie)).pipelines as Array<{ name: string }>).map((p) => p.name),
    ).not.toContain('overview-hidden');
    // Without a session: what any API route answers without one.
    const none = await call('/v1/console/overview');
    expect(none.status).toBe(401);
    expect(await codeOf(none)).toBe(await codeOf(await call('/v1/workspaces')));
  });

  it('quoll admin sessions lists live sessions and revokes one at once; sign out ends a session and clears the cookie', async () => {
    const s = await signedIn({ code: await linkCode() });
    const me = (await (await call('/v1/console/session', { cookie: s.cookie })).json()) as {
      subject: string;
    };
    const listed = await quoll('admin', 'sessions', '--json');
    expect(listed.code).toBe(0);
    const sessions = JSON.parse(listed.stdout) as Array<{
      id: string;
      subject: string;
      kind: string;
      expiresAt: string;
    }>;
    expect(sessions.length).toBeGreaterThan(0);
    const table = await quoll('admin', 'sessions');
    expect(table.stdout).toMatch(/^id\s+subject\s+scope\s+created\s+expires/m);
    // The newest admin session is this one.
    const newest = sessions.find((x) => x.kind === 'admin' && x.subject === me.subject)!;
    expect((await call('/v1/workspaces', { cookie: s.cookie })).status).toBe(200);
    const revoked = await quoll('admin', 'sessions', 'revoke', newest.id);
    expect(revoked.code).toBe(0);
    expect((await call('/v1/workspaces', { cookie: s.cookie })).status).toBe(401);
    expect((await quoll('admin', 'sessions', 'revoke', newest.id)).code).not.toBe(0);

    const t = await signedIn({ code: await linkCode() });
    const noCsrf = await call('/v1/console/session', { method: 'DELETE', cookie: t.cookie });
    expect(noCsrf.status).toBe(403);
    const out = await call('/v1/console/session', { method: 'DELETE', cookie: t.cookie, csrf: t.csrf });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(
      /^quoll_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0/,
    );
    expect((await call('/v1/workspaces', { cookie: t.cookie })).status).toBe(401);
  });
});
