import type { IncomingHttpHeaders } from 'node:http';
import { CSRF_HEADER, isSignInLink, SESSION_COOKIE, type Principal } from '../auth/index.js';
import { ApiError } from '../errors/index.js';
import type { ServerContext } from './server-context.js';

/** What authentication reads of a request (a Fastify request, or Node's for a raw route). */
export interface RequestHead {
  headers: IncomingHttpHeaders;
  method: string;
}

/** Methods that change nothing, so a session cookie alone may make them. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Who a request acts as: the bearer token when one is sent (a sign-in link's code is never
 * one), else the console's session cookie. With the cookie, a request that may change
 * something must also carry the session's CSRF token and, when the browser says where it
 * comes from, come from this server's own origin.
 */
export async function authenticateRequest(ctx: ServerContext, req: RequestHead): Promise<Principal> {
  const header = req.headers.authorization;
  if (header !== undefined && header !== '') {
    const principal = await ctx.tokens.authenticate(header);
    if (isSignInLink(principal)) {
      throw new ApiError(
        'invalid_token',
        'A sign-in link is not a bearer token: open the link in a browser, or use an API token.',
      );
    }
    return principal;
  }
  const secret = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (secret === null) return ctx.tokens.authenticate(undefined);
  const principal = await ctx.sessions.authenticate(secret);
  if (!SAFE_METHODS.has(req.method)) {
    checkSameOrigin(req);
    ctx.sessions.checkCsrf(secret, req.headers[CSRF_HEADER]);
  }
  return principal;
}

/**
 * For a GET that changes something (`createIfNotExist` creating a workspace, an unmasked read
 * writing an audit row): when the session cookie signs it in, the same origin and CSRF checks
 * as any other change (`csrf_failed`); a bearer token needs neither.
 */
export function checkCookieMayChange(ctx: ServerContext, req: RequestHead): void {
  const header = req.headers.authorization;
  if (header !== undefined && header !== '') return;
  const secret = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (secret === null) return;
  checkSameOrigin(req);
  ctx.sessions.checkCsrf(secret, req.headers[CSRF_HEADER]);
}

/** Refuses a request whose Origin header (when sent) is not this server's origin. */
export function checkSameOrigin(req: RequestHead): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  const host = req.headers.host;
  let same = false;
  try {
    same = host !== undefined && new URL(origin).host === host;
  } catch {
    same = false;
  }
  if (!same) {
    throw new ApiError(
      'csrf_failed',
      `Origin "${origin}" is not this server's origin; the console's session works only on pages the server itself serves.`,
    );
  }
}

/** The value of cookie `name` in a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at === -1) continue;
    if (part.slice(0, at).trim() === name) {
      const value = part.slice(at + 1).trim();
      return value === '' ? null : value;
    }
  }
  return null;
}
