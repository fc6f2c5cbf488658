import { describe, expect, it } from 'vitest';
import { LineSplitter } from './line-splitter.js';
import { formatNanos } from './nano-timestamper.js';

function split(chunks: Buffer[], max?: number): string[] {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l), max);
  for (const c of chunks) s.push(c);
  s.end();
  return lines;
}

describe('LineSplitter', () => {
  it('splits across chunks, drops \\r, keeps empty lines and flushes a last line without newline', () => {
    expect(split([Buffer.from('a\r\nb'), Buffer.from('c\n\nlast')])).toEqual(['a', 'bc', '', 'last']);
  });

  it('decodes a UTF-8 character split between chunks', () => {
    const bytes = Buffer.from('é!\n');
    expect(split([bytes.subarray(0, 1), bytes.subarray(1)])).toEqual(['é!']);
  });

  it('cuts an endless line into pieces of at most maxLineChars', () => {
    expect(split([Buffer.from('abcdefg')], 3)).toEqual(['abc', 'def', 'g']);
    expect(split([Buffer.from('abcdef\n')], 3)).toEqual(['abc', 'def']);
  });
});

describe('LineSplitter redaction', () => {
  const SECRET = 'hunter2-s3cret';
  const redact = (text: string): string => text.split(SECRET).join('*****');

  function splitRedacted(chunks: Buffer[], max: number, maxSecretChars?: number): string[] {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), {
      maxLineChars: max,
      redact,
      ...(maxSecretChars !== undefined ? { maxSecretChars } : {}),
    });
    for (const c of chunks) s.push(c);
    s.end();
    return lines;
  }

  it('masks a secret that straddles the cut of a long line', () => {
    // The secret starts 4 chars before the 16-char cut.
    const line = `${'x'.repeat(12)}${SECRET}${'y'.repeat(10)}`;
    const pieces = splitRedacted([Buffer.from(`${line}\n`)], 16);
    expect(pieces.join('')).toBe(`${'x'.repeat(12)}*****${'y'.repeat(10)}`);
    expect(pieces.join('')).not.toContain('hunter');
    expect(pieces.every((p) => p.length <= 16)).toBe(true);
  });

  it('masks a secret that straddles a forced cut of an endless line (no newline yet)', () => {
    // Far more than maxLineChars + maxSecretChars arrives without a newline, in small chunks,
    // with the secret placed across the first natural cut (position 16).
    const text = `${'x'.repeat(12)}${SECRET}${'y'.repeat(200)}`;
    const chunks: Buffer[] = [];
    for (let i = 0; i < text.length; i += 5) chunks.push(Buffer.from(text.slice(i, i + 5)));
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), { maxLineChars: 16, redact, maxSecretChars: 20 });
    for (const c of chunks) s.push(c);
    // Pieces were handed out before the end of the line: memory stays bounded.
    expect(lines.length).toBeGreaterThan(0);
    s.end();
    expect(lines.join('')).toBe(`${'x'.repeat(12)}*****${'y'.repeat(200)}`);
    expect(lines.every((p) => p.length <= 16)).toBe(true);
  });
});

describe('formatNanos', () => {
  it('formats RFC 3339 with nine fractional digits', () => {
    expect(formatNanos(1733779300373619457n)).toBe('2024-12-09T21:21:40.373619457Z');
    expect(formatNanos(1733779300000000005n)).toBe('2024-12-09T21:21:40.000000005Z');
  });
});
