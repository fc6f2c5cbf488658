import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { makeManyNodes } from '../../../../test/support/hostile-inline-models.js';
import { FEED_SLAB_BYTES, FEED_SLAB_MAX_BYTES, FeedSlab } from './feed-slab.js';
import { createSession } from './native-session.js';
import { allocateNumeric, ownedForMessage, transferList } from './tensor-data.js';

describe('FeedSlab', () => {
  it('carves small feeds one after the other out of one buffer, each zeroed and its own', () => {
    const slab = new FeedSlab();
    const feeds = Array.from({ length: 50 }, () => slab.take(Float32Array, 18));
    expect(new Set(feeds.map((feed) => feed.buffer)).size).toBeLessThan(feeds.length);
    feeds.forEach((feed, i) => {
      expect(Array.from(feed)).toEqual(new Array(18).fill(0));
      feed.fill(i + 1);
    });
    // Writing each did not touch any other: no two regions overlap.
    feeds.forEach((feed, i) => expect(Array.from(feed)).toEqual(new Array(18).fill(i + 1)));
  });

  it('never hands a region out again: a full slab is left to the feeds that view it, and a new one starts', () => {
    const slab = new FeedSlab();
    const first = slab.take(Float64Array, 100);
    first.fill(7);
    // 800 bytes a region: a slab holds floor(FEED_SLAB_BYTES / 800) of them, and the next starts a new
    // one. A bounded number of takes, so that a slab that wraps (or rewinds) fails here instead of
    // looping for ever.
    const regions: Float64Array[] = [first];
    for (let i = 0; i < Math.floor(FEED_SLAB_BYTES / 800); i++) regions.push(slab.take(Float64Array, 100));
    const next = regions[regions.length - 1]!;
    expect(next.buffer).not.toBe(first.buffer);
    expect(next.byteOffset).toBe(0);
    expect(next.buffer.byteLength).toBe(FEED_SLAB_BYTES);
    next.fill(9);
    expect(Array.from(first)).toEqual(new Array(100).fill(7));
    // No two regions of one buffer overlap.
    for (const a of regions)
      for (const b of regions)
        if (a !== b && a.buffer === b.buffer)
          expect(
            a.byteOffset + a.byteLength <= b.byteOffset || b.byteOffset + b.byteLength <= a.byteOffset,
          ).toBe(true);
  });

  it('aligns every region to 8 bytes, so a float64 or int64 view may follow a odd-sized one', () => {
    const slab = new FeedSlab();
    slab.take(Uint8Array, 65);
    const after = slab.take(BigInt64Array, 9);
    expect(after.byteOffset % 8).toBe(0);
    expect(after.buffer).toBe(slab.take(Float32Array, 17).buffer);
  });

  it('carves every feed of 1 to FEED_SLAB_MAX_BYTES bytes, and gives larger ones a buffer of their own', () => {
    const slab = new FeedSlab();
    const large = slab.take(Float32Array, FEED_SLAB_MAX_BYTES / 4 + 1);
    expect(large.byteLength).toBe(large.buffer.byteLength);
    const largest = slab.take(Float32Array, FEED_SLAB_MAX_BYTES / 4);
    expect(largest.buffer.byteLength).toBe(FEED_SLAB_BYTES);
    // 64 bytes or less too: V8 keeps such a typed array on its heap only until its .buffer is read.
    const tiny = slab.take(Float32Array, 16);
    const byte = slab.take(Uint8Array, 1);
    expect(tiny.buffer).toBe(largest.buffer);
    expect(byte.buffer).toBe(largest.buffer);
    expect(slab.take(Float32Array, 0).byteLength).toBe(0);
  });

  it('a feed of 64 bytes or less, carved, makes no ArrayBuffer when onnxruntime reads it (its binding reads .buffer, which gives an on-heap typed array one)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const session = createSession(makeManyNodes(1), 1);
    const slab = new FeedSlab();
    const runs = 2000;
    const kept: unknown[] = []; // everything made stays alive: only a collection could lower the count
    // ArrayBuffer bytes a run adds beyond its output (a copy onnxruntime-node makes, kept alive).
    const extraPerRun = (length: number): number => {
      const feeds = Array.from({ length: runs }, () => slab.take(Float32Array, length));
      kept.push(feeds);
      gc();
      const before = process.memoryUsage().arrayBuffers;
      for (const feed of feeds) kept.push(session.run({ x: new ort.Tensor('float32', feed, [length, 1]) }));
      return (process.memoryUsage().arrayBuffers - before - runs * length * 4) / runs;
    };
    // A collection during a loop (freeing earlier garbage) can only lower a reading: take the highest of three.
    const highest = (length: number): number => Math.max(...[0, 1, 2].map(() => extraPerRun(length)));
    const small = highest(16); // 64 bytes: small enough for V8's heap until .buffer is read
    const carved = highest(18); // 72 bytes
    session.release();
    expect(carved).toBeLessThan(8); // a carved feed adds no ArrayBuffer
    // Left to V8's heap, each 64-byte feed got an ArrayBuffer of its own (64 bytes) when onnxruntime read it.
    expect(small).toBeLessThan(8);
  });

  it('a NaN length does not make a later region overlap an earlier one', () => {
    const slab = new FeedSlab();
    const first = slab.take(Float32Array, 20).fill(1);
    // A NaN that became #used would make the next region start at offset 0 of the same slab.
    try {
      slab.take(Float32Array, Number.NaN);
    } catch {
      // refusing it is fine too
    }
    const later = slab.take(Float32Array, 20).fill(2);
    const overlaps =
      later.buffer === first.buffer &&
      later.byteOffset < first.byteOffset + first.byteLength &&
      first.byteOffset < later.byteOffset + later.byteLength;
    expect(overlaps).toBe(false);
    expect(Array.from(first)).toEqual(new Array(20).fill(1));
  });

  it('allocateNumeric with a slab carves the feed and still refuses what the type cannot hold', () => {
    const slab = new FeedSlab();
    const sink = allocateNumeric('int8', 100, 'x', slab);
    expect(sink.data.byteLength).toBeLessThan(sink.data.buffer.byteLength);
    expect(sink.set(0, 127)).toBe(true);
    expect(sink.set(1, 128)).toBe(false);
    expect(sink.data[1]).toBe(0);
  });
});

describe('ownedForMessage', () => {
  it('copies a carved feed into a buffer of its own that transferList moves, leaving the slab untouched', () => {
    const slab = new FeedSlab();
    const mine = slab.take(Float32Array, 18).fill(3);
    const neighbour = slab.take(Float32Array, 18).fill(4);
    const feeds = [{ name: 'x', type: 'float32' as const, dims: [1, 18], data: mine }];
    expect(transferList(feeds)).toEqual([]);
    const owned = ownedForMessage(feeds);
    expect(owned[0]!.data).not.toBe(mine);
    expect(Array.from(owned[0]!.data as Float32Array)).toEqual(Array.from(mine));
    expect(transferList(owned)).toEqual([(owned[0]!.data as Float32Array).buffer]);
    structuredClone(owned, { transfer: transferList(owned) });
    expect(mine.buffer.byteLength).toBe(FEED_SLAB_BYTES);
    expect(Array.from(neighbour)).toEqual(new Array(18).fill(4));
  });

  it('keeps feeds with a buffer of their own as they are', () => {
    const feeds = [{ name: 'x', type: 'float32' as const, dims: [1, 18], data: new Float32Array(18) }];
    expect(ownedForMessage(feeds)).toBe(feeds);
  });
});
