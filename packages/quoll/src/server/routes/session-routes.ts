import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  SESSION_COOKIE,
  SESSION_SUBJECT_PREFIX,
  type Principal,
  type SessionInfo,
  type StartedSession,
} from '../../auth/index.js';
import { ApiError } from '../../errors/index.js';
import { checkSameOrigin, readCookie } from '../authenticate-request.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';

/** Where the console's session is started (POST, no token), read (GET) and ended (DELETE). */
export const SESSION_PATH = '/v1/console/session';

/** The body of the session routes: who the session is and the CSRF token its page sends. */
export interface ConsoleSessionDto {
  kind: 'admin' | 'workspace';
  workspaceId: number | null;
  subject: string;
  /** The value of `x-quoll-csrf` on requests that change something; null for bearer callers. */
  csrfToken: string | null;
  /** ISO 8601; null for bearer callers. */
  expiresAt: string | null;
}

/** The body of `POST /v1/console/sign-in-links`. */
export interface SignInLinkDto {
  /** Path and fragment to open on the server: `/sign-in#code=…` (the code never reaches a server log). */
  path: string;
  expiresAt: string;
}

function dto(principal: Principal, csrfToken: string | null, expiresAt: string | null): ConsoleSessionDto {
  return {
    kind: principal.kind,
    workspaceId: principal.kind === 'workspace' ? principal.workspaceId : null,
    // Who signed in: a session's principal is named `console-session:<who>`.
    subject: principal.subject.startsWith(SESSION_SUBJECT_PREFIX)
      ? principal.subject.slice(SESSION_SUBJECT_PREFIX.length)
      : principal.subject,
    csrfToken,
    expiresAt,
  };
}

function setSessionCookie(
  req: FastifyRequest,
  reply: FastifyReply,
  value: string,
  maxAgeSeconds: number,
): void {
  const secure = req.protocol === 'https' || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
  reply.header(
    'set-cookie',
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`,
  );
}

/**
 * The console's sign-in: one-time links (`quoll console`), the session cookie (HttpOnly,
 * SameSite=Strict, expiring), sign out, and the admin's list and revocation of sessions.
 */
export function sessionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post(
    '/v1/console/sign-in-links',
    {
      schema: {
        tags: ['console'],
        summary:
          "A one-time sign-in link for the console (used by `quoll console`): the browser that opens it is signed in as this token (same workspace scope); it works once, for 10 minutes (never past the token's own expiry). Needs an API token: a task run's token or a console session is refused (forbidden)",
      },
    },
    async (req): Promise<SignInLinkDto> => {
      const link = await ctx.sessions.createSignInLink(principalOf(req));
      return { path: `/sign-in#code=${link.code}`, expiresAt: link.expiresAt };
    },
  );

  app.post<{ Body: { code?: string; token?: string } }>(
    SESSION_PATH,
    {
      schema: {
        tags: ['console'],
        summary:
          "Start a console session from a sign-in link's code or a pasted API token: sets the HttpOnly SameSite=Strict session cookie and answers the session's CSRF token (no bearer token needed). The session lasts 12 hours at most, never past the API token's expiry, and ends when that token is revoked; a task run's token is refused (forbidden)",
        security: [],
        body: {
          type: 'object',
          properties: { code: { type: 'string', maxLength: 200 }, token: { type: 'string', maxLength: 200 } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply): Promise<ConsoleSessionDto> => {
      checkSameOrigin(req);
      const { code, token } = req.body ?? {};
      if ((code === undefined) === (token === undefined)) {
        throw new ApiError(
          'invalid_request',
          'Send either { "code": "<sign-in code>" } or { "token": "<API token>" }.',
        );
      }
      const started: StartedSession =
        code !== undefined
          ? await ctx.sessions.signInWithCode(code)
          : await ctx.sessions.signInWithToken(token!);
      setSessionCookie(req, reply, started.secret, started.maxAgeSeconds);
      reply.header('cache-control', 'no-store');
      return dto(started.principal, started.csrfToken, started.expiresAt);
    },
  );

  app.get(
    SESSION_PATH,
    {
      schema: {
        tags: ['console'],
        summary: "Who the console's session (or the bearer token) is, and the session's CSRF token",
      },
    },
    async (req, reply): Promise<ConsoleSessionDto> => {
      const principal = principalOf(req);
      reply.header('cache-control', 'no-store');
      const secret = req.headers.authorization ? null : readCookie(req.headers.cookie, SESSION_COOKIE);
      if (secret === null) return dto(principal, null, null);
      const session = (await ctx.sessions.list()).find((s) => s.id === principal.tokenId);
      return dto(principal, ctx.sessions.csrfTokenOf(secret), session?.expiresAt ?? null);
    },
  );

  app.delete(
    SESSION_PATH,
    {
      schema: { tags: ['console'], summary: 'Sign out: ends the session and clears its cookie' },
    },
    async (req, reply) => {
      principalOf(req);
      const secret = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (secret !== null) await ctx.sessions.signOut(secret);
      setSessionCookie(req, reply, '', 0);
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/admin/sessions',
    { schema: { tags: ['console'], summary: 'Live console sessions, newest first (admin token only)' } },
    async (req): Promise<SessionInfo[]> => {
      requireAdmin(principalOf(req));
      return ctx.sessions.list();
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/admin/sessions/:id',
    {
      schema: {
        tags: ['console'],
        summary: 'Revoke a console session; it stops working at once (admin token only)',
      },
    },
    async (req, reply) => {
      requireAdmin(principalOf(req));
      await ctx.sessions.revoke(req.params.id);
      return reply.code(204).send();
    },
  );
}

function requireAdmin(principal: Principal): void {
  if (principal.kind !== 'admin') {
    throw new ApiError('forbidden', 'Listing and revoking console sessions needs an admin token.');
  }
}
