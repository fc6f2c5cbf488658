import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../errors/index.js';
import type { Principal } from './principal.js';
import { hashToken, type TokenService } from './token-service.js';
import type { TokenRecord, TokenStore } from './token-store.js';

/** Subject prefix of console sessions (`console-session:<who signed in>`). */
export const SESSION_SUBJECT_PREFIX = 'console-session:';
/** Subject prefix of one-time sign-in links (`console-link:<who asked>`); never a bearer token. */
export const SIGN_IN_SUBJECT_PREFIX = 'console-link:';
/** Subject prefix of a task run's token (`task-run:<runId>`): it can start no session or link. */
export const TASK_RUN_SUBJECT_PREFIX = 'task-run:';
/**
 * Subject prefixes the server gives its own tokens; an API token's free-text subject may not
 * start with one (it would be taken for a session, a link or a run's token).
 */
export const RESERVED_SUBJECT_PREFIXES: readonly string[] = [
  SESSION_SUBJECT_PREFIX,
  SIGN_IN_SUBJECT_PREFIX,
  TASK_RUN_SUBJECT_PREFIX,
];
/** The session cookie's name. */
export const SESSION_COOKIE = 'quoll_session';
/** The header mutating cookie-authenticated requests must carry (the session's CSRF token). */
export const CSRF_HEADER = 'x-quoll-csrf';
/** How long a console session lives at most (never past the token it came from). */
export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** How long a sign-in link can be used (once). */
export const DEFAULT_SIGN_IN_TTL_MS = 10 * 60 * 1000;

const SESSION_PREFIX = 'qs_';
const LINK_PREFIX = 'ql_';

/** A one-time sign-in link's secret (the link is `<server>/sign-in#code=<code>`). */
export interface SignInLink {
  code: string;
  /** ISO 8601. */
  expiresAt: string;
}

/** A session just started: the cookie value exists only here and in the Set-Cookie header. */
export interface StartedSession {
  id: string;
  /** The cookie value. */
  secret: string;
  csrfToken: string;
  principal: Principal;
  /** ISO 8601: the session TTL from now, or the source token's expiry when that comes first. */
  expiresAt: string;
  /** Seconds until `expiresAt` (the cookie's Max-Age). */
  maxAgeSeconds: number;
}

/** A console session as `quoll admin sessions` lists it. */
export interface SessionInfo {
  id: string;
  /** Who signed in: the subject of the token or link the session came from. */
  subject: string;
  kind: 'admin' | 'workspace';
  workspaceId: number | null;
  createdAt: string;
  expiresAt: string;
}

/** Options of {@link SessionService}. */
export interface SessionServiceOptions {
  /** @default 12 hours */
  sessionTtlMs?: number;
  /** @default 10 minutes */
  signInTtlMs?: number;
}

/**
 * Console sessions: one-time sign-in links, sessions started from a link or a pasted token,
 * their CSRF tokens, listing and revocation. Links and sessions are tokens in the token store
 * (hashes only) with their own subject prefixes, so they expire and revoke like any token and
 * a session sees exactly what the token or principal it came from sees. Each records the API
 * token it came from (its parent): it expires no later than that token and stops working once
 * that token is revoked or expired ({@link TokenService.authenticate} checks). Only an API
 * token can start one: not a task run's token (it must end with its run), a session or a link.
 *
 * @example
 * const link = await sessions.createSignInLink(principal);   // printed by `quoll console`
 * const started = await sessions.signInWithCode(link.code); // the browser's cookie
 * const who = await sessions.authenticate(started.secret);
 */
export class SessionService {
  readonly sessionTtlMs: number;
  readonly #signInTtlMs: number;

  constructor(
    private readonly store: TokenStore,
    private readonly tokens: TokenService,
    private readonly now: () => number,
    options: SessionServiceOptions = {},
  ) {
    this.sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#signInTtlMs = options.signInTtlMs ?? DEFAULT_SIGN_IN_TTL_MS;
  }

  /**
   * A one-time link that signs a browser in as `principal` (same workspace scope); `forbidden`
   * unless the principal is an API token's (not a run's token or a console session).
   */
  async createSignInLink(principal: Principal): Promise<SignInLink> {
    const source = await this.#sourceToken(principal, 'make a sign-in link');
    const code = LINK_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = this.#expiry(this.now(), this.#signInTtlMs, source);
    await this.#insert(code, principal, SIGN_IN_SUBJECT_PREFIX, expiresAt, source.id);
    return { code, expiresAt };
  }

  /** Uses a sign-in link's code (once: a second use, even concurrent, fails) and starts a session. */
  async signInWithCode(code: string): Promise<StartedSession> {
    const invalid = (): ApiError =>
      new ApiError(
        'invalid_token',
        'This sign-in link is not valid (already used, expired or unknown); run `quoll console` for a new one.',
      );
    if (!code.startsWith(LINK_PREFIX)) throw invalid();
    const link = await this.store.findTokenByHash(hashToken(code));
    if (link === null || !link.subject.startsWith(SIGN_IN_SUBJECT_PREFIX) || !this.#live(link))
      throw invalid();
    // The token the link was made from must still be valid; the session is bound to it.
    const source = link.parentId === null ? null : await this.store.findTokenById(link.parentId);
    if (source === null || !this.#live(source, this.now(), true)) throw invalid();
    if (!(await this.store.revokeToken(link.id, new Date(this.now()).toISOString()))) throw invalid();
    return this.#start(principalOf(link, link.subject.slice(SIGN_IN_SUBJECT_PREFIX.length)), source);
  }

  /**
   * Starts a session for a pasted API token (not a link, a session or a task run's token:
   * `forbidden` for those that are valid bearer tokens).
   */
  async signInWithToken(token: string): Promise<StartedSession> {
    if (token.startsWith(LINK_PREFIX) || token.startsWith(SESSION_PREFIX)) {
      throw new ApiError('invalid_token', 'Paste an API token (qk_…), not a sign-in link or session.');
    }
    const principal = await this.tokens.authenticate(`Bearer ${token}`);
    return this.#start(principal, await this.#sourceToken(principal, 'start a console session'));
  }

  /**
   * The principal of a session cookie; `invalid_token` when it is unknown, expired or revoked.
   * Its subject is the session's (`console-session:<who signed in>`), as when the same secret
   * is sent as a bearer token, so `/v1/me` and the audit trail name a session alike either way.
   */
  async authenticate(secret: string): Promise<Principal> {
    if (!secret.startsWith(SESSION_PREFIX)) {
      throw new ApiError('invalid_token', 'The console session is not valid; sign in again.');
    }
    return this.tokens.authenticate(`Bearer ${secret}`);
  }

  /** The CSRF token bound to a session (derived from its secret, so only its holder can know it). */
  csrfTokenOf(secret: string): string {
    return createHmac('sha256', secret).update('quoll-console-csrf').digest('base64url');
  }

  /** Throws `csrf_failed` unless `header` is the session's CSRF token. */
  checkCsrf(secret: string, header: string | string[] | undefined): void {
    const expected = Buffer.from(this.csrfTokenOf(secret));
    const given = Buffer.from(typeof header === 'string' ? header : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError(
        'csrf_failed',
        `A request that changes something with the session cookie must send the session's CSRF token in the ${CSRF_HEADER} header (GET /v1/console/session gives it).`,
      );
    }
  }

  /** Live sessions (the token each came from still valid), newest first. */
  async list(): Promise<SessionInfo[]> {
    const now = this.now();
    const sources = new Map<string, boolean>();
    const sourceLive = async (id: string | null): Promise<boolean> => {
      if (id === null) return false;
      let live = sources.get(id);
      if (live === undefined) {
        const source = await this.store.findTokenById(id);
        live = source !== null && this.#live(source, now, true);
        sources.set(id, live);
      }
      return live;
    };
    const sessions: TokenRecord[] = [];
    for (const t of await this.store.listTokensBySubjectPrefix(SESSION_SUBJECT_PREFIX)) {
      if (this.#live(t, now) && (await sourceLive(t.parentId))) sessions.push(t);
    }
    return sessions.map((t) => ({
      id: t.id,
      subject: t.subject.slice(SESSION_SUBJECT_PREFIX.length),
      kind: t.kind,
      workspaceId: t.workspaceId,
      createdAt: t.createdAt,
      expiresAt: t.expiresAt ?? '',
    }));
  }

  /** Revokes a live session; it stops working at once. `session_not_found` when there is none. */
  async revoke(id: string): Promise<void> {
    if (!(await this.list()).some((s) => s.id === id)) {
      throw new ApiError(
        'session_not_found',
        `No live console session has id "${id}"; list them with \`quoll admin sessions\`.`,
      );
    }
    await this.tokens.revoke(id);
  }

  /** Ends the session whose cookie this is (sign out). */
  async signOut(secret: string): Promise<void> {
    const rec = await this.store.findTokenByHash(hashToken(secret));
    if (rec !== null && rec.subject.startsWith(SESSION_SUBJECT_PREFIX)) await this.tokens.revoke(rec.id);
  }

  async #start(principal: Principal, source: TokenRecord): Promise<StartedSession> {
    const secret = SESSION_PREFIX + randomBytes(32).toString('base64url');
    const now = this.now();
    const expiresAt = this.#expiry(now, this.sessionTtlMs, source);
    const id = await this.#insert(secret, principal, SESSION_SUBJECT_PREFIX, expiresAt, source.id);
    const maxAgeSeconds = Math.max(0, Math.floor((Date.parse(expiresAt) - now) / 1000));
    return { id, secret, csrfToken: this.csrfTokenOf(secret), principal, expiresAt, maxAgeSeconds };
  }

  /**
   * The stored API token behind `principal`; `forbidden` when it is a task run's token, a
   * console session or a link. Whatever may outlive the credential that asks for it (a session,
   * a link, a new token) needs an API token: a run's token must end with its run, and a session
   * with the token it came from.
   * @param what what is asked, for the message ("issue workspace tokens").
   */
  async apiTokenOf(principal: Principal, what: string): Promise<TokenRecord> {
    return this.#sourceToken(
      principal,
      what,
      'use an API token (the admin token in <home>/credentials.json)',
    );
  }

  /**
   * The stored API token behind `principal`, which a session or link will be bound to;
   * `forbidden` when it is a task run's token, a console session or a link.
   */
  async #sourceToken(
    principal: Principal,
    what: string,
    sessionHint = 'run `quoll console` with an API token for a new sign-in link',
  ): Promise<TokenRecord> {
    const source = await this.store.findTokenById(principal.tokenId);
    if (source === null || !this.#live(source, this.now(), true)) {
      throw new ApiError('invalid_token', 'The token is not valid (unknown, revoked or expired).');
    }
    if (source.subject.startsWith(TASK_RUN_SUBJECT_PREFIX)) {
      throw new ApiError(
        'forbidden',
        `A task run's token cannot ${what}: it is valid only while its run lives. Use an API token (\`quoll console\` with the admin token, or a workspace token).`,
      );
    }
    if (
      source.parentId !== null ||
      source.subject.startsWith(SESSION_SUBJECT_PREFIX) ||
      source.subject.startsWith(SIGN_IN_SUBJECT_PREFIX)
    ) {
      throw new ApiError('forbidden', `A console session cannot ${what}: ${sessionHint}.`);
    }
    return source;
  }

  /** `ttlMs` after `now`, but never past the expiry of the token it comes from. */
  #expiry(now: number, ttlMs: number, source: TokenRecord): string {
    const own = now + ttlMs;
    const cap = source.expiresAt === null ? own : Date.parse(source.expiresAt);
    return new Date(Math.min(own, cap)).toISOString();
  }

  async #insert(
    secret: string,
    principal: Principal,
    prefix: string,
    expiresAt: string,
    parentId: string,
  ): Promise<string> {
    const id = randomUUID();
    await this.store.insertToken({
      id,
      tokenHash: hashToken(secret),
      kind: principal.kind,
      workspaceId: principal.kind === 'workspace' ? principal.workspaceId : null,
      subject: prefix + principal.subject,
      createdAt: new Date(this.now()).toISOString(),
      expiresAt,
      revokedAt: null,
      parentId,
    });
    return id;
  }

  /** Unrevoked and unexpired; `neverExpires` accepts no expiry at all (API tokens). */
  #live(t: TokenRecord, now = this.now(), neverExpires = false): boolean {
    if (t.revokedAt !== null) return false;
    return t.expiresAt === null ? neverExpires : Date.parse(t.expiresAt) > now;
  }
}

/** The principal a stored link or session stands for. */
function principalOf(t: TokenRecord, subject: string): Principal {
  return t.kind === 'workspace' && t.workspaceId !== null
    ? { kind: 'workspace', workspaceId: t.workspaceId, subject, tokenId: t.id }
    : { kind: 'admin', subject, tokenId: t.id };
}

/** Whether a principal came from a sign-in link's code (never valid as a bearer token). */
export function isSignInLink(principal: Principal): boolean {
  return principal.subject.startsWith(SIGN_IN_SUBJECT_PREFIX);
}
