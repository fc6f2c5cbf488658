import type { Clock } from '../clock/index.js';

/**
 * Makes RFC 3339 UTC timestamps with nanosecond digits for captured log lines
 * (`2024-12-09T21:21:40.373619457Z`, the seed's format): milliseconds come from the
 * clock, the six sub-millisecond digits from `process.hrtime`. Stamps from one instance
 * never go backwards, so lines of one run sort in capture order.
 */
export class NanoTimestamper {
  private last = 0n;

  /** @param clock the source of milliseconds. */
  constructor(private readonly clock: Clock) {}

  /** The current time as an RFC 3339 string with 9 fractional digits. */
  stamp(): string {
    const ms = Math.floor(this.clock.now());
    let ns = BigInt(ms) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    // hrtime and the wall clock are not aligned; keep stamps strictly increasing.
    if (ns <= this.last) ns = this.last + 1n;
    this.last = ns;
    return formatNanos(ns);
  }
}

/** Formats nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`. */
export function formatNanos(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // …SS.mmmZ
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${fraction}Z`;
}
