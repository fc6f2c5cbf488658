/** One media range of an `Accept` header. */
export interface AcceptRange {
  /** The media range without parameters, lower-cased: `application/json`, `application/*`, `*\/*`. */
  type: string;
  /** Its quality, 0 to 1 (1 when not given or unreadable). */
  q: number;
}

/**
 * Parses an `Accept` header into media ranges, best first: higher `q` first, then header
 * order. Media types are case-insensitive, so ranges are lower-cased.
 */
export function parseAccept(header: string): AcceptRange[] {
  const ranges: { range: AcceptRange; at: number }[] = [];
  header.split(',').forEach((part, at) => {
    const [type = '', ...params] = part.split(';').map((p) => p.trim());
    if (type === '') return;
    let q = 1;
    for (const param of params) {
      const m = /^q\s*=\s*([0-9.]+)$/i.exec(param);
      if (m?.[1] !== undefined) {
        const value = Number(m[1]);
        if (Number.isFinite(value)) q = Math.min(1, Math.max(0, value));
      }
    }
    ranges.push({ range: { type: type.toLowerCase(), q }, at });
  });
  // Array.prototype.sort is stable, but the explicit tie-break documents the rule.
  return ranges.sort((a, b) => b.range.q - a.range.q || a.at - b.at).map((r) => r.range);
}

/**
 * Picks the answer format from an `Accept` header: the best-ranked acceptable range that
 * names one of the formats (`formatOf` maps a media type to a format or `null`). A wildcard
 * (`*\/*`, `application/*`) picks `preferred`, unless the header refuses it with `q=0`, then
 * the first of `offers` that is not refused. No header picks `preferred`. Returns `null` when
 * nothing offered is acceptable (the caller answers `not_acceptable`).
 */
export function negotiateFormat<F extends string>(
  accept: string | undefined,
  offers: readonly F[],
  formatOf: (mediaType: string) => F | null,
  preferred: F,
): F | null {
  if (accept === undefined || accept.trim() === '') return preferred;
  // One media range without parameters (what clients send, once per request: `application/json`)
  // answers as the parse below would, without building its ranges.
  if (!accept.includes(',') && !accept.includes(';')) {
    const type = accept.trim().toLowerCase();
    return type === '*/*' || type === 'application/*' ? preferred : formatOf(type);
  }
  const ranges = parseAccept(accept);
  const refused = new Set<F>();
  for (const r of ranges) {
    const f = r.q === 0 ? formatOf(r.type) : null;
    if (f !== null) refused.add(f);
  }
  for (const r of ranges) {
    if (r.q === 0) continue;
    if (r.type === '*/*' || r.type === 'application/*') {
      if (!refused.has(preferred)) return preferred;
      const other = offers.find((f) => !refused.has(f));
      if (other !== undefined) return other;
      continue;
    }
    const f = formatOf(r.type);
    if (f !== null && !refused.has(f)) return f;
  }
  return null;
}
