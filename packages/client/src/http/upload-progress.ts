import type { RequestBody } from './http-transport.js';

/** Called as an upload's bytes leave: bytes sent so far, and the total when known. */
export type UploadProgress = (sent: number, total: number | null) => void;

/**
 * The body, reporting its bytes to `onProgress` as they are read for sending: a stream is
 * passed through a counting stream; bytes and Blobs go in one piece, reported once sent.
 */
export function withUploadProgress(
  body: RequestBody,
  total: number | null,
  onProgress: UploadProgress | undefined,
): { body: RequestBody; finished: () => void } {
  if (onProgress === undefined) return { body, finished: () => undefined };
  if (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream) {
    let sent = 0;
    const counted = body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          sent += chunk.byteLength;
          onProgress(sent, total);
          controller.enqueue(chunk);
        },
      }),
    );
    return { body: counted, finished: () => undefined };
  }
  const size =
    typeof body === 'string'
      ? new TextEncoder().encode(body).byteLength
      : body instanceof Uint8Array
        ? body.byteLength
        : (body as Blob).size;
  onProgress(0, size);
  return { body, finished: () => onProgress(size, size) };
}
