import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { ValidationError } from '../errors/index.js';
import type { ClientPlatform, FileSink, FileUse, UploadSource } from '../platform/index.js';
import { resolveClientOptions } from './resolve-client-options.js';

async function checkFile(path: string, use: FileUse): Promise<number> {
  const size = await stat(path).then(
    (s) => (s.isFile() ? s.size : null),
    () => null,
  );
  if (size === null) {
    throw new ValidationError(
      'invalid_request',
      `${use.what} "${path}" does not exist or is not a file; ${use.hint}.`,
      0,
    );
  }
  return size;
}

/** The SDK's host in Node: credentials from the environment or files, uploads streamed from disk, warnings on stderr. */
export const nodePlatform: ClientPlatform = {
  name: 'node',
  resolveTarget(options) {
    return resolveClientOptions(options);
  },
  async openFile(path, use): Promise<UploadSource> {
    const size = await checkFile(path, use);
    return {
      body: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
      fileName: basename(path),
      size,
    };
  },
  async readFile(path, use) {
    await checkFile(path, use);
    return readFile(path);
  },
  async openDirectory(directory): Promise<FileSink> {
    await mkdir(directory, { recursive: true });
    return {
      path: (name) => join(directory, name),
      async create(name) {
        const fh = await open(join(directory, name), 'w');
        return {
          // writeFile writes all of it from the current position (write() may write part).
          write: (chunk) => fh.writeFile(chunk),
          close: () => fh.close(),
        };
      },
    };
  },
  warn(text) {
    process.stderr.write(`${text}\n`);
  },
};
