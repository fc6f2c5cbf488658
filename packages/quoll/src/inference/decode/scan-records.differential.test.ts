import { describe, expect, it } from 'vitest';
import { mulberry32 as random } from '../../../../../test/support/synthetic-data.js';
import { transferredTableBits as bits } from '../../../../../test/support/transferred-table-bits.js';
import { ApiError } from '../../errors/index.js';
import { parseRecords } from '../inference-input.js';
import { recordsToTable } from './records-to-table.js';
import { jsonRecordsToTable, scanRecords } from './scan-records.js';
import type { TransferredTable } from './transferred-table.js';

/**
 * Differential test of the decode worker's byte scanner against the general path (JSON.parse,
 * then recordsToTable): on generated bodies of many shapes and on byte-level mutations of them,
 * whatever the scanner reads the general path reads to the same bits, and whatever it leaves,
 * the combined decode answers as the general path does. Fixed seeds and bounded counts.
 */

type Outcome = { table: unknown } | { code: string; message: string };

function outcomeOf(decode: () => TransferredTable): Outcome {
  try {
    return { table: bits(decode()) };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { code: error.code, message: error.message };
  }
}

const SPELLINGS = [
  '0',
  '-0',
  '0.0',
  '-0.0',
  '0e0',
  '-0E-0',
  '1',
  '-1',
  '2.5',
  '0.1',
  '-0.30000000000000004',
  '1e5',
  '1E5',
  '1e+5',
  '1e-5',
  '1.5E-3',
  '1e22',
  '1e23',
  '1e-22',
  '1e-23',
  '9007199254740993',
  '9007199254740992',
  '900719925474099',
  '9007199254740991',
  '900719925474099.5',
  '90071992547409.95',
  '123456789012345678901234567890',
  '1.7976931348623157e308',
  '1.7976931348623158e308',
  '1.7976931348623159e308',
  '5e-324',
  '2e-324',
  '3e-324',
  '2.2250738585072011e-308',
  '2.2250738585072014e-308',
  '1e-400',
  '-1e-400',
  '0e999999999999',
  '1e0000000000000000000001',
  '0.000000000000000000000001234',
  '1.00000000000000000000000001',
  '3.4028234663852886e38',
  '3.4028235677973366e38',
  '3.4028236e38',
  '1e38',
  '1e39',
  '-1e39',
  '1.401298464324817e-45',
  '7e-46',
  '16777217',
  '0.1e-22',
  '0.1e23',
  '10e21',
  '100e-24',
  `1${'0'.repeat(22)}`,
  `1${'0'.repeat(23)}`,
  `0.${'0'.repeat(21)}1`,
  `0.${'0'.repeat(22)}1`,
  `${'9'.repeat(17)}e-17`,
  '4503599627370497.5',
  '1e400',
  '-1e400',
  '1e309',
  '1e308',
  `1${'0'.repeat(300)}`,
  `0.${'3'.repeat(400)}`,
  `-${'7'.repeat(30)}e-350`,
  // Halfway between 0 and the least denormal (rounds to 0), and just above it (rounds up).
  `2.${'4703282292062327'.repeat(5)}e-324`,
  '2.4703282292062328e-324',
  '2.4703282292062327e-324',
];
const KEYS = [
  'tensor',
  'a',
  'b b',
  'c-1.x',
  'x',
  'constructor',
  'toString',
  '-1',
  'A',
  '~!',
  'hasOwnProperty',
];
const SPACE = ['', ' ', '\n', '\r\n', '\t', '  '];
const TOKENS = [
  'true',
  'false',
  'null',
  '"1"',
  '""',
  '[]',
  '{}',
  '[[1]]',
  '[1,]',
  ',',
  ']',
  '}',
  '[',
  '{',
  ':',
  '"',
  '\\',
  '\u00a0',
  '\uFEFF',
  '\\u0061',
  '"\\u0061"',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '+1',
  '.5',
  '1.',
  '01',
  '-',
  '1e',
  '1e+',
  '1e400',
  '-0',
  '\u2028',
  '\u0000',
  '\u00e9',
  '\ud83d\ude00',
  '"a":1',
  '"a":[1]',
  '"tensor":[1,2]',
  '1e-400',
  '00',
  '0.',
  '-.5',
  'e5',
  '1e5e5',
  '1..2',
  '--1',
  '/**/',
  '\v',
  '\f',
];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)]!;
}

function numberText(rnd: () => number): string {
  const kind = rnd();
  if (kind < 0.4) return pick(rnd, SPELLINGS);
  const value = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 260 - 130);
  if (kind < 0.6) return String(value);
  if (kind < 0.7) return String(Math.fround(value));
  if (kind < 0.8) return value.toFixed(Math.floor(rnd() * 25));
  if (kind < 0.9) return value.toExponential(Math.floor(rnd() * 25));
  return value.toPrecision(1 + Math.floor(rnd() * 30));
}

/** A number that JSON.parse reads as finite. */
function finiteNumberText(rnd: () => number): string {
  for (;;) {
    const text = numberText(rnd);
    if (Number.isFinite(JSON.parse(text))) return text;
  }
}

/** A records body: mostly the plain shape, sometimes nested lists, ragged rows, other key orders. */
function generate(rnd: () => number): string {
  const sp = (): string => (rnd() < 0.7 ? '' : pick(rnd, SPACE));
  const columns = 1 + Math.floor(rnd() * 3);
  const keys: string[] = [];
  while (keys.length < columns) {
    const key = pick(rnd, KEYS);
    if (!keys.includes(key)) keys.push(key);
  }
  const widths = keys.map(() => (rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 4)));
  const nested = keys.map(() => rnd() < 0.1);
  const rows = 1 + Math.floor(rnd() * 5);
  const records: string[] = [];
  for (let row = 0; row < rows; row++) {
    const order = rnd() < 0.05 ? [...keys.keys()].reverse() : [...keys.keys()];
    const fields = order.map((c) => {
      let width = widths[c]!;
      if (rnd() < 0.03) width = Math.max(0, width + (rnd() < 0.5 ? -1 : 1));
      let value: string;
      if (width === 0) value = numberText(rnd);
      else {
        const items = Array.from({ length: width }, () => `${sp()}${numberText(rnd)}${sp()}`);
        value = nested[c] ? `[${items.map((item) => `[${item}]`).join(',')}]` : `[${items.join(',')}]`;
      }
      return `${sp()}"${keys[c]}"${sp()}:${sp()}${value}${sp()}`;
    });
    records.push(`${sp()}{${fields.join(',')}}${sp()}`);
  }
  return `${sp()}[${records.join(',')}]${sp()}`;
}

/** One to three edits: a byte-level character change, a token inserted, a cut, or a record swapped. */
function mutate(rnd: () => number, text: string): string {
  let out = text;
  for (let edits = 1 + Math.floor(rnd() * 3); edits > 0; edits--) {
    const at = Math.floor(rnd() * (out.length + 1));
    const kind = rnd();
    if (kind < 0.3) out = out.slice(0, at) + pick(rnd, TOKENS) + out.slice(at);
    else if (kind < 0.5) out = out.slice(0, at) + pick(rnd, TOKENS) + out.slice(at + 1);
    else if (kind < 0.65) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(rnd() * 3));
    else if (kind < 0.75) out = out.slice(0, at);
    else if (kind < 0.85) {
      // A number somewhere replaced by another spelling (valid or not).
      const numbers = [...out.matchAll(/-?\d[\d.eE+-]*/g)];
      if (numbers.length > 0) {
        const hit = pick(rnd, numbers);
        const with_ = rnd() < 0.5 ? numberText(rnd) : pick(rnd, TOKENS);
        out = out.slice(0, hit.index) + with_ + out.slice(hit.index + hit[0].length);
      }
    } else {
      const byte = String.fromCharCode(Math.floor(rnd() * 256));
      out = out.slice(0, at) + byte + out.slice(at + 1);
    }
  }
  return out;
}

/** Compares the scanner with the general path on `body`; which side answered. */
function compare(body: Uint8Array, label: string): 'scanned' | 'left' {
  const general = outcomeOf(() => recordsToTable(parseRecords(body)));
  const scanned = scanRecords(body);
  if (scanned !== null) {
    // What the scanner reads, the general path reads to the same bits (never a refusal).
    expect(general, label).toEqual({ table: bits(scanned) });
    return 'scanned';
  }
  expect(
    outcomeOf(() => jsonRecordsToTable(body)),
    label,
  ).toEqual(general);
  return 'left';
}

describe('scanRecords against the general path (differential)', () => {
  it('agrees on 5 000 generated bodies and 20 000 mutations of them', () => {
    const rnd = random(20261202);
    const seen = { scanned: 0, left: 0, mutatedScanned: 0 };
    for (let i = 0; i < 5000; i++) {
      const text = generate(rnd);
      seen[compare(new Uint8Array(Buffer.from(text, 'utf8')), text)]++;
      for (let m = 0; m < 4; m++) {
        const mutated = mutate(rnd, text);
        // Both as UTF-8 and byte for byte (latin1), so invalid UTF-8 is met too.
        const encoding = rnd() < 0.8 ? 'utf8' : 'latin1';
        const side = compare(
          new Uint8Array(Buffer.from(mutated, encoding)),
          `${encoding} ${JSON.stringify(mutated)}`,
        );
        if (side === 'scanned') seen.mutatedScanned++;
      }
    }
    // Both sides were exercised, and mutations the scanner still reads were compared too.
    expect(seen.scanned).toBeGreaterThan(1500);
    expect(seen.left).toBeGreaterThan(500);
    expect(seen.mutatedScanned).toBeGreaterThan(500);
  });

  it('agrees on large bodies (the columns grow past their estimate) edited near the end, and on views into a larger buffer', () => {
    const rnd = random(7);
    for (let i = 0; i < 12; i++) {
      // A short record 0, then longer ones: the size estimate falls short and the columns grow.
      const rows = Array.from({ length: 1500 + Math.floor(rnd() * 1000) }, (_, row) =>
        row === 0
          ? '{"t":[1,2],"u":3}'
          : `{"t":[${finiteNumberText(rnd)},${finiteNumberText(rnd)}],"u":${finiteNumberText(rnd)}}`,
      );
      const text = `[${rows.join(i % 2 === 0 ? ',' : ',\n')}]`;
      expect(compare(new Uint8Array(Buffer.from(text, 'utf8')), `large ${i}`)).toBe('scanned');
      const at = text.length - 1 - Math.floor(rnd() * 200);
      const edited = text.slice(0, at) + pick(rnd, TOKENS) + text.slice(at + 1);
      compare(new Uint8Array(Buffer.from(edited, 'utf8')), `large ${i} edited at ${at}`);
      // The body as a view with an offset into a larger buffer, as a worker may receive it.
      const padded = Buffer.from(`xx${text}yy`, 'utf8');
      expect(
        compare(
          new Uint8Array(padded.buffer, padded.byteOffset + 2, padded.length - 4),
          `large ${i} as a view`,
        ),
      ).toBe('scanned');
    }
  });

  it('agrees on every truncation and every single-byte change of a body', () => {
    const text = '[{"a":[1,-2.5e-3,1e23],"b":-0},\r\n {"a":[0.1,5e-324,9007199254740993],"b":1E+2}]';
    const body = Buffer.from(text, 'latin1');
    for (let cut = 0; cut <= body.length; cut++) compare(new Uint8Array(body.subarray(0, cut)), `cut ${cut}`);
    for (let at = 0; at < body.length; at++) {
      for (let byte = 0; byte < 256; byte++) {
        const changed = new Uint8Array(body);
        changed[at] = byte;
        compare(changed, `byte ${at} = ${byte}`);
      }
    }
  });
});
