import type { ClientOptions } from '../http/index.js';

/** Where a client connects: the server's URL and its bearer token (null: send none). */
export interface ClientTarget {
  url: string;
  token: string | null;
}

/** A local file opened for upload. */
export interface UploadSource {
  body: Uint8Array | Blob | ReadableStream<Uint8Array>;
  /** The file's base name. */
  fileName: string;
  /** Its size in bytes, when known. */
  size?: number;
}

/** How a file-system call is described in its error message. */
export interface FileUse {
  /** What the file is, e.g. `Model file`. */
  what: string;
  /** What to give instead when the path is not a readable file (Node), e.g. `give the path of an .onnx file`. */
  hint: string;
}

/** One file being written by `exportLogs()`. */
export interface SinkFile {
  write(chunk: string | Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** A directory `exportLogs()` writes into. */
export interface FileSink {
  /** The path a file of this name gets. */
  path(name: string): string;
  /** Creates (or truncates) the file. */
  create(name: string): Promise<SinkFile>;
}

/**
 * What the SDK needs from its host beyond `fetch`: finding credentials, reading and writing
 * local files, printing warnings. The root entry uses the browser implementation; Node gets
 * `@quoll/client/node`'s (the `node` export condition picks it for `import '@quoll/client'`).
 */
export interface ClientPlatform {
  readonly name: 'node' | 'browser';
  /** Explicit options first, then whatever the host can discover (env, credentials files, the page's origin). */
  resolveTarget(options: ClientOptions): ClientTarget;
  /** A local file as an upload body. */
  openFile(path: string, use: FileUse): Promise<UploadSource>;
  /** A local file's bytes. */
  readFile(path: string, use: FileUse): Promise<Uint8Array>;
  /** A directory to write files into (created when missing). */
  openDirectory(directory: string): Promise<FileSink>;
  /** Tells the user something went partly (a truncated log page …): stderr in Node, `console.warn` in a browser. */
  warn(text: string): void;
}
