import { access } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { PG_NODE_LEASE_MS, startTestServer, stopTestServer, testServerEnv } from './test-server.js';

describe('stopTestServer', () => {
  it('stops and removes a server that exits 0, and fails, having cleaned up, on one that did not', async () => {
    const clean = await startTestServer();
    await expect(stopTestServer(clean)).resolves.toBeUndefined();
    await expect(access(clean.home)).rejects.toMatchObject({ code: 'ENOENT' });

    const killed = await startTestServer();
    await killed.kill(); // exit code null: a signal ended it
    await expect(stopTestServer(killed)).rejects.toThrow(/exited with null, not 0; its output:/);
    expect(killed.process.exitCode).toBe(null);
    await expect(access(killed.home)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('testServerEnv', () => {
  it('gives a node on the test database a short cluster lease, unless the environment or the test sets one', () => {
    const runsDir = '/tmp/runs';
    // The lease a SIGKILLed node's successor waits out on its home: 5 s, not the product's 15 s.
    expect(PG_NODE_LEASE_MS).toBe('5000');
    expect(testServerEnv({ base: { A: '1' }, onTestDatabase: true, runsDir })).toEqual({
      A: '1',
      QUOLL_CLUSTER_LEASE_MS: '5000',
      QUOLL_RUNS_DIR: runsDir,
    });
    expect(
      testServerEnv({ base: { QUOLL_CLUSTER_LEASE_MS: '15000' }, onTestDatabase: true, runsDir })
        .QUOLL_CLUSTER_LEASE_MS,
    ).toBe('15000');
    expect(
      testServerEnv({
        base: {},
        onTestDatabase: true,
        runsDir,
        env: { QUOLL_CLUSTER_LEASE_MS: '3000', QUOLL_RUNS_DIR: '/elsewhere' },
      }),
    ).toEqual({ QUOLL_CLUSTER_LEASE_MS: '3000', QUOLL_RUNS_DIR: '/elsewhere' });
    // On SQLite (or a database the test gave itself) the lease is the product's.
    expect(testServerEnv({ base: {}, onTestDatabase: false, runsDir })).toEqual({ QUOLL_RUNS_DIR: runsDir });
  });
});
