import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// Review (review-upgrade): the roll's "done" test (no node says schema_ahead) is only sound when
// every node of the previous release has the schema watch. A node of a release before it
// (main a5cd448 and earlier) answers /v1/health with no `schema` at all and never says
// schema_ahead, so on the first roll every old node looks done. The Upgrades section must say so.
describe('review: docs/distributed.md Upgrades names nodes of a release without the schema watch', () => {
  it('says what a node of a release before the watch shows (no schema field) and that it counts as not done', () => {
    const dist = readFileSync(new URL('../docs/distributed.md', import.meta.url), 'utf8');
    const upgrades = dist.slice(dist.indexOf('## Upgrades'), dist.indexOf('## Measured'));
    expect(upgrades).toMatch(/(no|without (a|the)) `?schema`? (field|key)|before the schema watch|predates? (the|this) (watch|check)/i);
  });
});
