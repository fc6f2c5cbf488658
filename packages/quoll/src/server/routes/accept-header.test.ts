import { describe, expect, it } from 'vitest';
import { formatOfMediaType } from '../../inference/index.js';
import type { ResultFormat } from '../../inference/index.js';
import { negotiateFormat, parseAccept } from './accept-header.js';

const OFFERS: readonly ResultFormat[] = ['json', 'arrow-file', 'arrow-stream'];
const pick = (accept: string | undefined, preferred: ResultFormat = 'arrow-file'): ResultFormat | null =>
  negotiateFormat(accept, OFFERS, formatOfMediaType, preferred);

describe('parseAccept', () => {
  it('orders ranges by q, then by header order, lower-cased', () => {
    expect(parseAccept('Text/HTML;q=0.2, application/JSON, */*;q=0.8, application/x;level=1')).toEqual([
      { type: 'application/json', q: 1 },
      { type: 'application/x', q: 1 },
      { type: '*/*', q: 0.8 },
      { type: 'text/html', q: 0.2 },
    ]);
  });
});

describe('negotiateFormat', () => {
  it('a named type before a wildcard wins: "application/json, */*" answers JSON', () => {
    expect(pick('application/json, */*')).toBe('json');
  });

  it('media types match case-insensitively', () => {
    expect(pick('Application/Vnd.Apache.Arrow.Stream')).toBe('arrow-stream');
    expect(pick('APPLICATION/JSON; charset=utf-8')).toBe('json');
  });

  it('a higher q wins over header order', () => {
    expect(pick('application/json;q=0.5, application/vnd.apache.arrow.stream')).toBe('arrow-stream');
    expect(pick('*/*;q=0.1, application/json;q=0.9')).toBe('json');
  });

  it('no header or a wildcard picks the preferred format, unless q=0 refuses it', () => {
    expect(pick(undefined)).toBe('arrow-file');
    expect(pick('')).toBe('arrow-file');
    expect(pick('*/*')).toBe('arrow-file');
    expect(pick('application/*', 'json')).toBe('json');
    expect(pick('application/vnd.apache.arrow.file;q=0, */*')).toBe('json');
  });

  it('nothing acceptable gives null', () => {
    expect(pick('text/html')).toBeNull();
    expect(pick('application/json;q=0')).toBeNull();
  });
});
