import { randomBytes } from 'node:crypto';

/** A function that returns a new unique id on every call. */
export type IdGenerator = () => string;

/**
 * Makes a UUID version 7 generator (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit
 * counter (method 1 of §6.2), then 62 random bits. Ids from one generator sort, as strings,
 * in the order they were made — also within one millisecond and when the clock steps back —
 * so a store can break ties between rows created in the same millisecond by `(created_at, id)`
 * without a hidden row number. Ids from different processes interleave by time.
 * @param now time source, epoch ms. @default Date.now
 * @example
 * const newId = createTimeOrderedIdGenerator();
 * newId(); // '0190f0a3-6b2e-7000-8a1c-5d9e0c4b7f21'
 */
export function createTimeOrderedIdGenerator(now: () => number = Date.now): IdGenerator {
  let lastMs = -1;
  let counter = 0;
  return () => {
    let ms = Math.max(0, Math.floor(now()));
    if (ms <= lastMs) {
      // Same (or an earlier) millisecond: keep the last one and count up, so ids stay ordered.
      ms = lastMs;
      counter += 1;
      if (counter > 0xfff) {
        ms += 1;
        counter = 0;
      }
    } else {
      counter = 0;
    }
    lastMs = ms;
    const bytes = randomBytes(16);
    // 48-bit big-endian milliseconds.
    let t = ms;
    for (let i = 5; i >= 0; i--) {
      bytes[i] = t % 256;
      t = Math.floor(t / 256);
    }
    bytes[6] = 0x70 | (counter >> 8);
    bytes[7] = counter & 0xff;
    bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}

/** The process-wide time-ordered id generator. */
export const timeOrderedId: IdGenerator = createTimeOrderedIdGenerator();
