import yazl from 'yazl';

/** One entry of a zip built by {@link createZip}. */
export type ZipEntrySpec =
  | { path: string; content: string | Buffer; mode?: number }
  | { path: string; symlinkTarget: string }
  | { path: string; directory: true };

/**
 * Builds a zip in memory, including the malicious shapes yazl itself refuses to write:
 * names such as `../evil.js`, `/abs.js` or `C:/x.js`, and symlink entries (unix mode
 * `S_IFLNK` in the external attributes, target as content). A bomb is just a big buffer
 * of zeros, which deflates about 1000:1.
 *
 * yazl validates names, so unsafe names are written under a same-length placeholder and
 * patched in the finished bytes (names are not covered by the CRC).
 *
 * @example
 * const zip = await createZip([{ path: 'main.ts', content: 'console.log(1)' }]);
 */
export async function createZip(entries: readonly ZipEntrySpec[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const patches: { placeholder: Buffer; real: Buffer }[] = [];
  entries.forEach((e, i) => {
    let name = e.path;
    if (!isNameYazlAccepts(e.path)) {
      const real = Buffer.from(e.path, 'utf8');
      const placeholder = placeholderOf(i, real.length);
      patches.push({ placeholder, real });
      name = placeholder.toString('latin1');
    }
    if ('directory' in e) {
      zip.addEmptyDirectory(name);
    } else if ('symlinkTarget' in e) {
      zip.addBuffer(Buffer.from(e.symlinkTarget), name, { mode: 0o120777, compress: false });
    } else {
      zip.addBuffer(typeof e.content === 'string' ? Buffer.from(e.content) : e.content, name, {
        ...(e.mode !== undefined ? { mode: e.mode } : {}),
      });
    }
  });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  let out: Buffer = Buffer.concat(chunks);
  for (const { placeholder, real } of patches) out = replaceAll(out, placeholder, real);
  return out;
}

function isNameYazlAccepts(path: string): boolean {
  return !(
    path.startsWith('/') ||
    /^[A-Za-z]:/.test(path) ||
    path.split('/').includes('..') ||
    path.includes('\\')
  );
}

/** A name of exactly `length` bytes that cannot occur elsewhere in the archive. */
function placeholderOf(index: number, length: number): Buffer {
  const tag = `Q${index}Z`;
  if (length < tag.length + 1) throw new Error(`createZip: name too short to patch (${length} bytes)`);
  return Buffer.from((tag + 'x'.repeat(length)).slice(0, length), 'latin1');
}

function replaceAll(buf: Buffer, from: Buffer, to: Buffer): Buffer {
  let at = buf.indexOf(from);
  if (at < 0) throw new Error('createZip: placeholder not found');
  while (at >= 0) {
    to.copy(buf, at);
    at = buf.indexOf(from, at + to.length);
  }
  return buf;
}
