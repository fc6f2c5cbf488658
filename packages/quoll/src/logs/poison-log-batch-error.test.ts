import { describe, expect, it } from 'vitest';
import { PoisonLogBatchError, rowStep } from './poison-log-batch-error.js';

// rowStep is what both writers (embedded and PostgreSQL) use to tell rows that cannot be
// written from transient failures: only the former may be set aside.
describe('rowStep', () => {
  it("takes what a step throws for the rows' fault", () => {
    expect(() =>
      rowStep(7, () => {
        throw new TypeError('cannot encode this column');
      }),
    ).toThrow(PoisonLogBatchError);
  });

  it('passes a failure to allocate memory through as is (retried, never set aside)', () => {
    const oom = new RangeError('Array buffer allocation failed');
    const nodeOom = Object.assign(new Error('Failed to allocate memory'), {
      code: 'ERR_MEMORY_ALLOCATION_FAILED',
    });
    for (const err of [oom, nodeOom]) {
      let thrown: unknown;
      try {
        rowStep(7, () => {
          throw err;
        });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBe(err);
    }
  });
});
