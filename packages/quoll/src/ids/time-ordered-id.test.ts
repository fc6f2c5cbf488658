import { describe, expect, it } from 'vitest';
import { createTimeOrderedIdGenerator } from './time-ordered-id.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('createTimeOrderedIdGenerator', () => {
  it('makes RFC 9562 version 7 UUIDs carrying the millisecond', () => {
    const id = createTimeOrderedIdGenerator(() => Date.UTC(2025, 0, 1))();
    expect(id).toMatch(UUID_V7);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(Date.UTC(2025, 0, 1));
  });

  it('ids sort in creation order within one millisecond, past the 12-bit counter, and when time steps back', () => {
    let t = 1_000;
    const next = createTimeOrderedIdGenerator(() => t);
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push(next());
    t = 500;
    for (let i = 0; i < 10; i++) ids.push(next());
    t = 10_000;
    ids.push(next());
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
