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

describe('formatNanos', () => {
  it('formats RFC 3339 with nine fractional digits', () => {
    expect(formatNanos(1733779300373619457n)).toBe('2024-12-09T21:21:40.373619457Z');
    expect(formatNanos(1733779300000000005n)).toBe('2024-12-09T21:21:40.000000005Z');
  });
});
