import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { ApiTokenDto } from '@quoll/client/wire';
import type { Principal } from './principal.js';
import type { TokenRecord, TokenStore } from './token-store.js';
import { ApiError } from '../errors/index.js';

/** Prefix of every Quoll API token, so leaked tokens are recognisable. */
const TOKEN_PREFIX = 'qk_';

/** SHA-256 of a token, hex: what the store keeps. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A token just issued: the plain value exists only here and in what the caller writes. */
export interface IssuedToken {
  id: string;
  token: string;
}

/**
 * An API token as the admin lists it: never its secret (which is not kept) or its hash. The
 * wire shape of `GET /v1/admin/tokens`, so the server answers exactly what the SDK reads.
 */
export type TokenInfo = ApiTokenDto;

/** How long a cached token lookup is trusted before the store is asked again. */
export const DEFAULT_TOKEN_CACHE_TTL_MS = 5_000;

interface CachedToken {
  principal: Principal;
  /** The token a session was made from (revoking that one evicts this entry too). */
  parentId: string | null;
  /** When the token (or the token it was made from) expires (epoch ms), `null` for never. */
  expiresAt: number | null;
  /** When this cache entry must be checked against the store again (epoch ms). */
  recheckAt: number;
}

/**
 * Issues, checks and revokes bearer tokens. Lookups are cached in memory (token → principal)
 * because every request authenticates; a revocation through this service evicts at once,
 * and one made by another process (another server on the same database, the CLI) is seen
 * within `cacheTtlMs`, when the entry is checked against the store again.
 * The store keeps only SHA-256 hashes.
 */
export class TokenService {
  private readonly cache = new Map<string, CachedToken>();

  /**
   * @param store where tokens are kept (hashes only)
   * @param now clock, epoch ms
   * @param cacheTtlMs how long a cached lookup is trusted. @default 5000
   */
  constructor(
    private readonly store: TokenStore,
    private readonly now: () => number,
    private readonly cacheTtlMs: number = DEFAULT_TOKEN_CACHE_TTL_MS,
  ) {}

  /** Issues an admin token (sees every workspace); `ttlMs` bounds its life. */
  async issueAdmin(subject = 'admin', ttlMs?: number): Promise<IssuedToken> {
    return this.issue('admin', null, subject, ttlMs === undefined ? null : this.now() + ttlMs);
  }

  /** Issues a token that sees one workspace only; `ttlMs` bounds its life. */
  async issueForWorkspace(workspaceId: number, subject: string, ttlMs?: number): Promise<IssuedToken> {
    return this.issue('workspace', workspaceId, subject, ttlMs === undefined ? null : this.now() + ttlMs);
  }

  private async issue(
    kind: 'admin' | 'workspace',
    workspaceId: number | null,
    subject: string,
    expiresAt: number | null,
  ): Promise<IssuedToken> {
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const id = randomUUID();
    await this.store.insertToken({
      id,
      tokenHash: hashToken(token),
      kind,
      workspaceId,
      subject,
      createdAt: new Date(this.now()).toISOString(),
      expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
      revokedAt: null,
      parentId: null,
    });
    return { id, token };
  }

  /** Resolves an `Authorization` header to a principal, or throws an `AuthError`-kind ApiError. */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined || header === '') {
      throw new ApiError(
        'unauthenticated',
        'Missing bearer token: send "Authorization: Bearer <token>" (the admin token is in <home>/credentials.json).',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError('unauthenticated', 'Malformed Authorization header: expected "Bearer <token>".');
    }
    // The cache is keyed by the presented token itself: hashing is only needed on a miss.
    const now = this.now();
    const cached = this.#fresh(match[1], now);
    if (cached !== null) return cached;
    const hash = hashToken(match[1]);
    const rec = await this.store.findTokenByHash(hash);
    // A console session or sign-in link lives no longer than the token it was made from: when
    // that one is revoked or expires (a run's token when its run ends), so does the session.
    const parent = rec?.parentId ? await this.store.findTokenById(rec.parentId) : null;
    const expiresAt = earliest(expiryOf(rec), expiryOf(parent));
    if (
      !rec ||
      rec.revokedAt !== null ||
      (rec.parentId !== null && (parent === null || parent.revokedAt !== null)) ||
      (expiresAt !== null && expiresAt <= now)
    ) {
      this.cache.delete(match[1]);
      throw new ApiError(
        'invalid_token',
        'The bearer token is not valid (unknown, revoked or expired); use the token in <home>/credentials.json.',
      );
    }
    const principal: Principal =
      rec.kind === 'admin' || rec.workspaceId === null
        ? { kind: 'admin', subject: rec.subject, tokenId: rec.id }
        : { kind: 'workspace', workspaceId: rec.workspaceId, subject: rec.subject, tokenId: rec.id };
    this.cache.set(match[1], {
      principal,
      parentId: rec.parentId,
      expiresAt,
      recheckAt: now + this.cacheTtlMs,
    });
    return principal;
  }

  /**
   * The principal {@link authenticate} would answer for `header` without asking the store: the
   * cached lookup of a well-formed bearer token while it is trusted; null for anything else (no
   * or another header, a token not cached or due for its recheck), which `authenticate` answers.
   * Lets the request path skip a promise per request.
   */
  cachedPrincipal(header: string | undefined): Principal | null {
    if (header === undefined || header === '') return null;
    // The same header as the last call (a client's every request): its token as read then,
    // without the match and the substring (whose hash the cache look-up would compute again).
    let token = header === this.#lastHeader ? this.#lastToken : undefined;
    if (token === undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match?.[1]) return null;
      token = match[1];
      this.#lastHeader = header;
      this.#lastToken = token;
    }
    return this.#fresh(token, this.now());
  }

  /** The last header {@link cachedPrincipal} read a token from, and that token. */
  #lastHeader: string | undefined = undefined;
  #lastToken: string | undefined = undefined;

  /** The cached principal of `token` while its entry is trusted and the token unexpired, else null. */
  #fresh(token: string, now: number): Principal | null {
    const cached = this.cache.get(token);
    if (cached && now < cached.recheckAt && (cached.expiresAt === null || cached.expiresAt > now)) {
      return cached.principal;
    }
    return null;
  }

  /**
   * Revokes a token by id; it stops working at once, and so do the console sessions and
   * sign-in links made from it. True when this call revoked it (false: already revoked, or none).
   */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.store.revokeToken(id, new Date(this.now()).toISOString());
    // The sessions made from it end with it.
    for (const [token, entry] of this.cache) {
      if (entry.principal.tokenId === id || entry.parentId === id) this.cache.delete(token);
    }
    return revoked;
  }

  /**
   * Live API tokens (unrevoked, unexpired; run tokens too, console sessions not), newest first.
   * `quoll admin tokens list`.
   */
  async list(): Promise<TokenInfo[]> {
    const tokens = await this.store.listApiTokens(new Date(this.now()).toISOString());
    return tokens.map((t) => ({
      id: t.id,
      subject: t.subject,
      kind: t.kind,
      workspaceId: t.workspaceId,
      createdAt: t.createdAt,
      expiresAt: t.expiresAt,
    }));
  }

  /**
   * Revokes a live API token (or a run's token) by id: it stops working at once, and the
   * console sessions made from it end with it. `token_not_found` when no live API token has
   * this id (a console session's id included: `SessionService.revoke` ends those).
   */
  async revokeApiToken(id: string): Promise<void> {
    const rec = await this.store.findTokenById(id);
    const expiresAt = expiryOf(rec);
    const live =
      rec !== null &&
      rec.parentId === null &&
      rec.revokedAt === null &&
      (expiresAt === null || expiresAt > this.now());
    if (!live || !(await this.revoke(id))) {
      throw new ApiError(
        'token_not_found',
        `No live API token has id "${id}"; list them with \`quoll admin tokens list\` (console sessions: \`quoll admin sessions\`).`,
        { id },
      );
    }
  }
}

/** A stored token's expiry (epoch ms), null for none (or no token). */
function expiryOf(rec: TokenRecord | null | undefined): number | null {
  return rec?.expiresAt ? Date.parse(rec.expiresAt) : null;
}

/** The earlier of two expiries, null meaning never. */
function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}
