import { AuthError, ValidationError } from '../errors/index.js';
import type { ClientOptions } from '../http/index.js';
import type { ClientPlatform, ClientTarget, FileUse } from './client-platform.js';

function pageOrigin(): string | undefined {
  const location = (globalThis as { location?: { origin?: unknown } }).location;
  return typeof location?.origin === 'string' && location.origin !== 'null' ? location.origin : undefined;
}

function needsNode(path: string, use: FileUse): never {
  throw new ValidationError(
    'invalid_request',
    `${use.what} "${path}" is a file path, which needs Node.js; in a browser pass the file's bytes (a Uint8Array, or a Blob/File) instead.`,
    0,
  );
}

/**
 * The SDK's host outside Node: no file system, no environment. The URL defaults to the page's
 * origin and the token to none (a same-origin session cookie is sent by the browser itself).
 */
export const browserPlatform: ClientPlatform = {
  name: 'browser',
  resolveTarget(options: ClientOptions): ClientTarget {
    const url = options.url ?? pageOrigin();
    if (url === undefined) {
      throw new AuthError(
        'unauthenticated',
        'No Quoll server given: pass new Client({ url, token }) (outside Node the SDK cannot read credentials files or the environment).',
        0,
      );
    }
    return { url, token: options.token ?? null };
  },
  openFile: async (path, use) => needsNode(path, use),
  readFile: async (path, use) => needsNode(path, use),
  async openDirectory(directory) {
    throw new ValidationError(
      'invalid_request',
      `exportLogs() writes files into "${directory}", which needs Node.js; in a browser read the log with logs({ start, end }) instead.`,
      0,
    );
  },
  warn(text) {
    console.warn(text);
  },
};
