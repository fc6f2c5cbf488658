import { describe, expect, it } from 'vitest';
import { mulberry32 as random } from '../../../../../test/support/synthetic-data.js';
import { transferredTableBits as bits } from '../../../../../test/support/transferred-table-bits.js';
import { ApiError } from '../../errors/index.js';
import { parseRecords } from '../inference-input.js';
import { recordsToTable } from './records-to-table.js';
import { jsonRecordsToTable, longDecimal, scanRecords } from './scan-records.js';
import type { ColumnAllocator } from './scan-records.js';
import type { TransferredTable } from './transferred-table.js';

const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));

/** The general path's answer: its table, or its error's code and message. */
function general(body: Uint8Array): TransferredTable | { code: string; message: string } {
  try {
    return recordsToTable(parseRecords(body));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { code: error.code, message: error.message };
  }
}

/**
 * A model worker's kind of allocator at its worst: every array reused when one is free (the
 * scan's outgrown ones, and every table it made before), over a buffer larger than asked and
 * full of stale values (NaN, -0, huge numbers), so a scan that read a value it did not write
 * would differ from the general path.
 */
function dirtyColumns(): ColumnAllocator & { reused: number } {
  const free: ArrayBuffer[] = [];
  const stale = [Number.NaN, -0, 1e300, -7.25];
  let fills = 0;
  const alloc = {
    reused: 0,
    float64(length: number): Float64Array {
      const at = free.findIndex((buffer) => buffer.byteLength >= length * 8);
      const buffer = at === -1 ? new ArrayBuffer(length * 8 + 104) : free.splice(at, 1)[0]!;
      if (at !== -1) alloc.reused++;
      new Float64Array(buffer).fill(stale[fills++ % stale.length]!);
      return new Float64Array(buffer, 0, length);
    },
    free(values: Float64Array): void {
      free.push(values.buffer as ArrayBuffer);
    },
  };
  return alloc;
}

/** One dirty allocator for every scan of this file, its tables handed back after each comparison. */
const dirty = dirtyColumns();

/** The buffers of a scanned table, back to {@link dirty} (as the parent sends them back to the worker). */
function handBack(table: TransferredTable): void {
  for (const chunk of table.batches.flat()) {
    const leaf = chunk.values === null ? chunk.children[0]! : chunk;
    dirty.free(leaf.values as Float64Array);
  }
}

/** The scanner reads `text` and agrees bit for bit with the general path, in new arrays and in reused dirty ones. */
function expectScannedAsGeneral(text: string): void {
  const body = bytes(text);
  const scanned = scanRecords(body);
  expect(scanned, text.slice(0, 200)).not.toBeNull();
  const expected = general(body);
  expect('code' in expected ? expected : bits(expected)).toEqual(bits(scanned!));
  const reused = scanRecords(body, dirty);
  expect(bits(reused!), text.slice(0, 200)).toEqual(bits(scanned!));
  handBack(reused!);
}

/** A decode's table as bits, or its error's code and message. */
function outcome(decode: () => TransferredTable | { code: string; message: string }): unknown {
  try {
    const got = decode();
    return 'code' in got ? got : bits(got);
  } catch (error) {
    return { code: (error as ApiError).code, message: (error as ApiError).message };
  }
}

/** The scanner leaves `text` to the general path, and the combined decode answers as it does. */
function expectLeftToGeneral(text: string): void {
  const body = bytes(text);
  expect(scanRecords(body), text.slice(0, 200)).toBeNull();
  expect(outcome(() => jsonRecordsToTable(body))).toEqual(outcome(() => general(body)));
}

/** Numbers as JSON writers print them, and as hand-written bodies spell them. */
const NUMBER_SPELLINGS = [
  '0',
  '-0',
  '0.0',
  '-0.0',
  '1',
  '-1',
  '2.5',
  '47.606300354003906',
  '-122.0199966430664',
  '0.1',
  '0.30000000000000004',
  '1e5',
  '1E5',
  '1e+5',
  '1e-5',
  '1.5E-3',
  '-7e0',
  '123456789012345678',
  '9007199254740993',
  '9007199254740992',
  '900719925474099',
  '9007199254740991',
  '1e22',
  '1e23',
  '1e-22',
  '1e-23',
  '1.7976931348623157e308',
  '5e-324',
  '2.2250738585072014e-308',
  '1e-400',
  '0e999999999999',
  '0.000000000000000000000001234',
  '1.00000000000000000000000001',
  '123.456e-2',
  '100000000000000000000000',
  `1${'0'.repeat(300)}`,
  `0.${'3'.repeat(400)}`,
  '4.9406564584124654e-324',
  '1.7976931348623158e308',
];

describe('scanRecords', () => {
  it('reads the plain records shape exactly as JSON.parse and recordsToTable do', () => {
    const rnd = random(1);
    const rows = Array.from({ length: 300 }, () => ({
      tensor: Array.from({ length: 18 }, () => Math.fround((rnd() - 0.5) * 10 ** Math.floor(rnd() * 12))),
    }));
    expectScannedAsGeneral(JSON.stringify(rows));
    // White space everywhere JSON allows it.
    expectScannedAsGeneral(JSON.stringify(rows.slice(0, 20), null, 2));
    expectScannedAsGeneral(` \t\r\n[ { "tensor" : [ 1 , 2 ] } ,\n{"tensor":[3,4]} ] \n`);
    // Several columns, single numbers per row, keys of any printable ASCII.
    expectScannedAsGeneral('[{"a":1,"b b":[1,2,3],"c-1.x":-0},{"a":2,"b b":[4,5,6],"c-1.x":7}]');
    expectScannedAsGeneral('[{"x":1}]');
    // One row of 100 000 values, and 50 000 rows of one (the columns grow past the estimate).
    expectScannedAsGeneral(`[{"t":[${Array.from({ length: 100_000 }, (_, i) => i / 7).join(',')}]}]`);
    expectScannedAsGeneral(
      `[{"t":[1]},${Array.from({ length: 50_000 }, (_, i) => `{"t":[${i}]}`).join(',')}]`,
    );
  });

  it('reads into reused buffers full of stale values as into new ones', () => {
    const before = dirty.reused;
    const rows = (n: number): string =>
      JSON.stringify(
        Array.from({ length: n }, (_, i) => ({ t: [i / 3, -i, 47.606300354003906 + i], s: i * 0.1 })),
      );
    for (const n of [400, 50, 400, 1, 1200, 400]) expectScannedAsGeneral(rows(n));
    expect(dirty.reused - before).toBeGreaterThan(4);
  });

  it('converts every spelling of a number to the float64 JSON.parse gives', () => {
    for (const spelling of NUMBER_SPELLINGS) {
      expectScannedAsGeneral(`[{"t":[${spelling},${spelling}]},{"t":[1,${spelling}]}]`);
      expectScannedAsGeneral(`[{"t":${spelling}},{"t":${spelling}}]`);
    }
    // Random doubles printed shortest, fixed and exponential.
    const rnd = random(2);
    const values: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const value = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 200 - 100);
      values.push(
        String(value),
        value.toFixed(Math.floor(rnd() * 20)),
        value.toExponential(Math.floor(rnd() * 20)),
      );
    }
    expectScannedAsGeneral(`[{"t":[${values.join(',')}]}]`);
  });

  it('leaves every other shape to the general path, which answers it', () => {
    for (const text of [
      // Valid, but not the plain shape.
      '{"tensor":[[1,2],[3,4]]}',
      '[{"a":[1],"b":[2]},{"b":[2],"a":[1]}]',
      '[{"a":[1],"a":[2]}]',
      '[{"a\\u0062":[1]}]',
      '[{"é":[1]}]',
      '[{"0":[1]}]',
      '[{"__proto__":[1]}]',
      '[{"":[1]}]',
      `[{"${'k'.repeat(300)}":[1]}]`,
      '[{"t":[[1,2],[3,4]]}]',
      '[{"t":[1,2]},{"t":[1,2,3]}]',
      '[{"t":[1,2,3]},{"t":[1,2]}]',
      '[{"t":[1]},{"t":2}]',
      '[{"t":1},{"t":[2]}]',
      // Refused by the general path, naming the column and row.
      '[{"t":[1]},{"t":[1e999]}]',
      '[{"t":[1]},{"t":[-1e400]}]',
      '[{"t":[true]}]',
      '[{"t":[1]},{"t":[false]}]',
      '[{"t":[null]}]',
      '[{"t":["1"]}]',
      '[{"t":[]}]',
      '[{"t":[1]},{"t":[1],"u":[2]}]',
      '[{"t":[1],"u":[2]},{"t":[1]}]',
      '[{"t":[1]},{"u":[1]}]',
      '[{"t":[1]},{}]',
      '[{}]',
      '[]',
      '[1]',
      '[{"t":[1]},[1]]',
      // Not JSON.
      '',
      ' ',
      '[{"t":[01]}]',
      '[{"t":[1.]}]',
      '[{"t":[.5]}]',
      '[{"t":[-]}]',
      '[{"t":[+1]}]',
      '[{"t":[1e]}]',
      '[{"t":[1e+]}]',
      '[{"t":[NaN]}]',
      '[{"t":[Infinity]}]',
      '[{"t":[0x10]}]',
      '[{"t":[1,]}]',
      '[{"t":[1]},]',
      '[{"t":[1]}] x',
      '[{"t":[1]}]]',
      '\uFEFF[{"t":[1]}]',
      '[{"t":[1]}\u00a0]',
    ]) {
      expectLeftToGeneral(text);
    }
  });

  it('leaves nesting beyond any records body to the general path, which refuses it from the bytes before parsing', () => {
    for (const text of [
      `[{"t":${'['.repeat(10_000)}1${']'.repeat(10_000)}}]`,
      `[{"t":${'['.repeat(10_000)}`,
    ]) {
      const body = bytes(text);
      expect(scanRecords(body)).toBeNull();
      // The parse alone refuses both as well (a shape error, not JSON); the depth check refuses
      // them first, without building 10 000 levels.
      expect(outcome(() => general(body))).toHaveProperty('code');
      expect(outcome(() => jsonRecordsToTable(body))).toEqual({
        code: 'invalid_inference_input',
        message: expect.stringContaining('more than 64 levels deep') as string,
      });
    }
  });

  it('refuses nothing the general path accepts and accepts nothing it refuses: every prefix, and 4 000 random edits', () => {
    const text = '[{"a":[1,-2.5,3e2,47.606300354003906],"b":0.1},{"a":[0,-0,1E-3,9007199254740993],"b":-7}]';
    for (let cut = 0; cut < text.length; cut++) expectLeftToGeneral(text.slice(0, cut));
    const rnd = random(3);
    const alphabet = '0123456789-+.eE,[]{}": \ntrufalsn\\a';
    const seen = { scanned: 0, left: 0 };
    for (let i = 0; i < 4000; i++) {
      const chars = [...text];
      for (let edits = 1 + Math.floor(rnd() * 3); edits > 0; edits--) {
        const at = Math.floor(rnd() * chars.length);
        const ch = alphabet[Math.floor(rnd() * alphabet.length)]!;
        const kind = rnd();
        if (kind < 0.5) chars[at] = ch;
        else if (kind < 0.75) chars.splice(at, 1);
        else chars.splice(at, 0, ch);
      }
      const mutated = chars.join('');
      const body = bytes(mutated);
      const scanned = scanRecords(body);
      const expected = general(body);
      if (scanned === null) {
        seen.left++;
        expect(
          outcome(() => jsonRecordsToTable(body)),
          mutated,
        ).toEqual(outcome(() => expected));
      } else {
        seen.scanned++;
        // What the scanner reads, the general path reads to the same bits.
        expect('code' in expected ? expected : bits(expected), mutated).toEqual(bits(scanned));
      }
    }
    // Both sides were exercised.
    expect(seen.scanned).toBeGreaterThan(100);
    expect(seen.left).toBeGreaterThan(100);
  });

  it('converts 17-19 digit decimals (float32 values printed as doubles) to the bits JSON.parse gives, or leaves them', () => {
    const rnd = random(917);
    const f32 = new Float32Array(1);
    let converted = 0;
    let left = 0;
    const texts: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      f32[0] = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 12 - 4);
      texts.push(String(f32[0]));
      // Near halfway between two doubles, written with 17-19 significant digits.
      const x = (1 + rnd()) * 2 ** Math.floor(rnd() * 40 - 20);
      const halfway = (x + (x + x * 2 ** -52)) / 2;
      texts.push(halfway.toPrecision(17), halfway.toPrecision(19), x.toPrecision(18));
    }
    for (const text of texts) {
      const scanned = scanRecords(bytes(`[{"a": [${text}, 1]}]`));
      expect(scanned, text).not.toBeNull();
      const got = (scanned!.batches[0]![0]!.children[0]!.values as Float64Array)[0];
      expect(Object.is(got, JSON.parse(text) as number), text).toBe(true);
    }
    // The double-double division directly: its answer is exact or NaN (left to JSON.parse).
    for (let i = 0; i < 50_000; i++) {
      const mantissa = 900719925474099 + Math.floor(rnd() * 8106479329266892);
      const lowDigits = 1 + Math.floor(rnd() * 4);
      const low = Math.floor(rnd() * 10 ** lowDigits);
      const power = Math.floor(rnd() * 23);
      const digits = `${mantissa}${String(low).padStart(lowDigits, '0')}`;
      const text =
        power === 0
          ? digits
          : power >= digits.length
            ? `0.${digits.padStart(power, '0')}`
            : `${digits.slice(0, digits.length - power)}.${digits.slice(digits.length - power)}`;
      const value = longDecimal(mantissa, 10 ** lowDigits, low, 10 ** power);
      if (Number.isNaN(value)) left++;
      else {
        converted++;
        expect(value, text).toBe(JSON.parse(text) as number);
      }
    }
    // Nearly all take the fast way; the few near halfway are left to the exact conversion.
    expect(converted).toBeGreaterThan(49_000);
    expect(left).toBeGreaterThan(0);
  });
});
