import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/run-cli.js';

// `quoll admin rotate-key --status` exits 0 when a rotation can proceed and 3 when something
// blocks it (test/cluster/rotate-key.test.ts); docs/connections.md tells a script how the other
// outcomes end, so one waiting while it answers 3 stops on an error instead of waiting on.

describe('rotate-key --status exit codes besides 0 and 3', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'quoll-status-exit-'));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('a database that cannot be reached exits 1, never 3', async () => {
    const run = await runCli(
      home,
      ['admin', 'rotate-key', '--status', '--database', 'postgres://postgres@127.0.0.1:1/test'],
      {
        env: { QUOLL_MASTER_KEY: undefined, QUOLL_MASTER_KEY_DECRYPT_ONLY: undefined },
      },
    );
    expect(run.stderr).toMatch(/cannot reach the database at postgres:\/\/postgres@127\.0\.0\.1:1\/test/);
    expect(run.code).toBe(1);
  }, 60_000);

  it('a refused request (a bad key given to judge the rotation by) exits 2', async () => {
    const run = await runCli(
      home,
      ['admin', 'rotate-key', '--status', '--database', 'postgres://postgres@127.0.0.1:1/test'],
      {
        env: { QUOLL_MASTER_KEY: 'not-a-key', QUOLL_MASTER_KEY_DECRYPT_ONLY: undefined },
      },
    );
    expect(run.stderr).toMatch(/^error \[invalid_master_key\]/);
    expect(run.code).toBe(2);
  }, 60_000);
});
