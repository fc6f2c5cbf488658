import { ValidationError } from '../errors/index.js';

const UNITS: Record<string, number> = { kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/**
 * Parses a data size such as `"1.5 MiB"`, `"10MiB"` or `"1 gib"` (a number, optional spaces, and
 * one of KiB, MiB, GiB, TiB in any case) into bytes. Anything else, or a size that is not
 * positive, is a `ValidationError` with code `invalid_data_size`.
 *
 * @example
 * parseDataSize('1.5 MiB'); // 1572864
 */
export function parseDataSize(text: string): number {
  const m = typeof text === 'string' ? /^(\d+(\.\d+)?)\s*([KMGT]iB)$/i.exec(text.trim()) : null;
  if (m === null) {
    throw new ValidationError(
      'invalid_data_size',
      `Invalid data size format "${String(text)}". Please use the format: <number><unit> (e.g. 1.5MiB or 1 GiB).`,
      0,
      { dataSizeLimit: text },
    );
  }
  const bytes = Math.floor(Number(m[1]) * (UNITS[(m[3] ?? '').toLowerCase()] ?? NaN));
  if (!(bytes > 0)) {
    throw new ValidationError('invalid_data_size', `File size must be positive; got "${text}".`, 0, {
      dataSizeLimit: text,
    });
  }
  return bytes;
}
