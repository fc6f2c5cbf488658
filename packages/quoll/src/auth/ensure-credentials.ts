import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenService } from './token-service.js';

/** What `<home>/credentials.json` holds. */
export interface Credentials {
  url: string;
  token: string;
}

/**
 * Makes `<home>/credentials.json` name this server's URL and a working admin token.
 * The first start of a home issues the token; later starts keep it and refresh the URL
 * (the port may differ). The file is written atomically with mode 0600.
 */
export async function ensureCredentials(
  home: string,
  url: string,
  tokens: TokenService,
): Promise<Credentials> {
  const path = join(home, 'credentials.json');
  let token: string | undefined;
  try {
    const existing = JSON.parse(await readFile(path, 'utf8')) as Partial<Credentials>;
    if (typeof existing.token === 'string') {
      await tokens.authenticate(`Bearer ${existing.token}`);
      token = existing.token;
    }
  } catch {
    // Missing, unreadable or revoked: issue a fresh admin token below.
  }
  token ??= (await tokens.issueAdmin('admin')).token;
  const creds: Credentials = { url, token };
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return creds;
}
