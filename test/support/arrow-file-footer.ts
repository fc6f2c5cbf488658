/**
 * Arrow IPC files with a rewritten footer, for tests of how the server vets footers it did not
 * write: the same record batch listed many times, blocks out of order, and so on.
 */
import { FileBlock, Footer } from 'apache-arrow/ipc/metadata/file';

const MAGIC = Buffer.from('ARROW1');

/**
 * `file` (as written by an Arrow library) with its footer's record batch blocks replaced by what
 * `blocks` returns for the original ones; the messages before the footer are kept as they are.
 *
 * @example
 * // One batch listed 10 000 times (24 bytes of footer each).
 * const aliased = withRecordBatchBlocks(file, ([first]) => Array(10_000).fill(first));
 */
export function withRecordBatchBlocks(
  file: Uint8Array,
  blocks: (original: FileBlock[]) => FileBlock[],
): Buffer {
  const size = file.byteLength;
  const bytes = Buffer.from(file.buffer, file.byteOffset, size);
  const footerLength = bytes.readInt32LE(size - 10);
  const footerStart = size - 10 - footerLength;
  const footer = Footer.decode(bytes.subarray(footerStart, size - 10));
  const rewritten = Footer.encode(
    new Footer(footer.schema, footer.version, blocks([...footer.recordBatches()]), []),
  );
  const length = Buffer.alloc(4);
  length.writeInt32LE(rewritten.byteLength);
  return Buffer.concat([bytes.subarray(0, footerStart), rewritten, length, MAGIC]);
}

export { FileBlock };
