import { access } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startTestServer, stopTestServer } from './test-server.js';

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
