import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BlobStore, ReceivedFile } from '../blobs/index.js';
import { ApiError } from '../errors/index.js';

/** The fields of a multipart upload besides the file: plain fields and those of a JSON `metadata` part. */
export type UploadFields = Record<string, string | number | boolean | null>;

/** A multipart upload read off the request: its file spooled (under the route's cap) and its fields. */
export interface MultipartUpload {
  file: ReceivedFile;
  /** The file part's own file name, when it has one. */
  fileName: string | null;
  fields: UploadFields;
  /** The spooled file as a stream (for services that take one); the spool is removed when it ends. */
  open(): Readable;
  /** Removes the spooled file (when it was not handed over). */
  discard(): Promise<void>;
}

/** What a multipart form may add to its file's size (boundaries, headers, the small fields). */
export const MULTIPART_SLACK_BYTES = 1024 * 1024;

/** At most this many parts, fields and bytes per field: a form is a file and a few names. */
const FORM_LIMITS = { parts: 20, fields: 16, fieldSize: 64 * 1024, files: 2 } as const;

/** The metadata part is small JSON, whether sent as a field or (as Python's requests and FormData Blobs do) as a file part. */
async function readSmallPart(stream: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      stream.resume();
      throw new ApiError(
        'invalid_request',
        `The multipart "metadata" part is over ${maxBytes} bytes; send a small JSON object.`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Lets an upload route scope take `multipart/form-data` besides its raw body types: the form
 * is parsed only when the handler reads it ({@link readMultipartUpload}), as a stream.
 */
export async function acceptMultipart(app: FastifyInstance): Promise<void> {
  await app.register(multipart, { throwFileSizeLimit: true, limits: FORM_LIMITS });
}

/** The `filename` of a `Content-Disposition` header (a raw upload may name its file there). */
export function dispositionFileName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star?.[1] !== undefined) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''));
    } catch {
      // Not percent-encoding after all: fall back to the plain parameter.
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(header);
  const name = (plain?.[2] ?? plain?.[1])?.trim();
  return name === undefined || name === '' ? undefined : name.split(/[\\/]/).pop();
}

function addFields(target: UploadFields, name: string, value: string): void {
  if (name !== 'metadata') {
    target[name] = value;
    return;
  }
  // Wallaroo's API clients send { "name", "workspace_id", … } as a JSON part named metadata.
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ApiError(
      'invalid_request',
      'The multipart "metadata" part is not JSON; send a JSON object such as {"name": "…"}.',
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ApiError(
      'invalid_request',
      'The multipart "metadata" part must be a JSON object such as {"name": "…"}.',
    );
  }
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') target[k] = v;
  }
}

/**
 * Reads a `multipart/form-data` upload (what Wallaroo's API clients send: a `file` part and an
 * optional JSON `metadata` part, in either order). The file streams through the same cap as a
 * raw upload of the route into the blob store's temporary area; fields are small and few.
 * @throws ApiError `invalid_request` without exactly one file part, `payload_too_large` over the cap.
 */
export async function readMultipartUpload(
  req: FastifyRequest,
  blobs: BlobStore,
  maxBytes: number,
  what: string,
): Promise<MultipartUpload> {
  const fields: UploadFields = {};
  let received: { file: ReceivedFile; fileName: string | null } | null = null;
  try {
    for await (const part of req.parts({ limits: { ...FORM_LIMITS, fileSize: maxBytes + 1 } })) {
      if (part.type === 'field') {
        addFields(fields, part.fieldname, typeof part.value === 'string' ? part.value : String(part.value));
        continue;
      }
      if (part.fieldname === 'metadata') {
        addFields(fields, 'metadata', await readSmallPart(part.file, FORM_LIMITS.fieldSize));
        continue;
      }
      if (received !== null) {
        part.file.resume();
        throw new ApiError(
          'invalid_request',
          `Send one file per upload; this form has more than one (the ${what}).`,
        );
      }
      // The blob store enforces the cap while it hashes and writes.
      const file = await blobs.receive(part.file, maxBytes, what);
      received = { file, fileName: part.filename || null };
    }
  } catch (err) {
    if (received !== null) await blobs.discard(received.file);
    const code = (err as { code?: unknown }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new ApiError(
        'payload_too_large',
        `The ${what} is larger than the cap of ${maxBytes} bytes; send a smaller file.`,
        {
          maxBytes,
        },
      );
    }
    if (typeof code === 'string' && code.startsWith('FST_') && !(err instanceof ApiError)) {
      throw new ApiError('invalid_request', `The multipart form is not readable: ${(err as Error).message}.`);
    }
    if (isMalformedForm(err)) {
      throw new ApiError(
        'invalid_request',
        `The multipart form is not readable: ${err.message}. Send a multipart/form-data body with its boundary, ended by the closing boundary.`,
      );
    }
    throw err;
  }
  if (received === null) {
    throw new ApiError(
      'invalid_request',
      `The multipart form has no file part; send the ${what} as a part named "file" (or as the raw body).`,
    );
  }
  const { file, fileName } = received;
  return {
    file,
    fileName,
    fields,
    open() {
      const stream = createReadStream(file.path);
      stream.once('close', () => void blobs.discard(file));
      return stream;
    },
    discard: () => blobs.discard(file),
  };
}

/**
 * Busboy reports a form it cannot parse (no boundary in the Content-Type, a body cut short
 * before its closing boundary, a malformed part header) as a plain `Error` with neither a code
 * nor a syscall: the client's mistake, not the server's. A disk error (a syscall), a dropped
 * connection (a code) or a bug (a TypeError and the like) is none of these.
 */
function isMalformedForm(err: unknown): err is Error {
  return (
    err instanceof Error &&
    err.constructor === Error &&
    (err as NodeJS.ErrnoException).code === undefined &&
    (err as NodeJS.ErrnoException).syscall === undefined
  );
}

/** A text field of the form (a number becomes its decimal text); undefined when absent. */
export function textField(fields: UploadFields, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = fields[name];
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
  }
  return undefined;
}
