import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AuthError } from '../errors/index.js';
import type { ClientOptions } from '../http/index.js';

/**
 * Resolves where to connect, in the order of the spec: explicit `{ url, token }` → env
 * `QUOLL_URL` + `QUOLL_TOKEN` (set inside tasks) → `$QUOLL_HOME/credentials.json` →
 * `./.quoll/credentials.json`.
 */
export function resolveClientOptions(opts: ClientOptions = {}): { url: string; token: string } {
  if (opts.url !== undefined && opts.token !== undefined) return { url: opts.url, token: opts.token };
  const env = opts.env ?? process.env;
  if (env.QUOLL_URL && env.QUOLL_TOKEN)
    return { url: opts.url ?? env.QUOLL_URL, token: opts.token ?? env.QUOLL_TOKEN };
  const cwd = opts.cwd ?? process.cwd();
  const candidates = [
    ...(env.QUOLL_HOME ? [join(resolve(cwd, env.QUOLL_HOME), 'credentials.json')] : []),
    join(cwd, '.quoll', 'credentials.json'),
  ];
  for (const path of candidates) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    let creds: { url?: unknown; token?: unknown } | null = null;
    try {
      creds = JSON.parse(text) as { url?: unknown; token?: unknown };
    } catch {
      // Named below: a broken file should not hide behind "no credentials".
    }
    if (typeof creds?.url === 'string' && typeof creds.token === 'string') {
      return { url: opts.url ?? creds.url, token: opts.token ?? creds.token };
    }
    throw new AuthError(
      'unauthenticated',
      `The credentials file ${path} is not {"url": "...", "token": "..."}; restart "quoll server" on that home to rewrite it, or pass { url, token }.`,
      0,
    );
  }
  throw new AuthError(
    'unauthenticated',
    `No Quoll credentials found: pass new Client({ url, token }), set QUOLL_URL and QUOLL_TOKEN, or start "quoll server" (it writes ${candidates.join(' or ')}).`,
    0,
  );
}
