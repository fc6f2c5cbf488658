import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionSealer, ConnectionService, FileKeyring } from '../../connections/index.js';
import type { ConnectionScope } from '../../connections/index.js';
import { openStore } from '../../store/index.js';
import { runRotateKeyCommand } from './rotate-key-command.js';

const admin: ConnectionScope = { kind: 'admin' };
let dir: string;
let home: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-rotate-cmd-'));
  home = join(dir, 'home');
  mkdirSync(home);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('runRotateKeyCommand', () => {
  it('rotates the key of a home through its database file and prints progress', async () => {
    // The command applies the real migrations; use a database made by them.
    const stores = await openStore({ kind: 'sqlite', path: join(home, 'quoll.db') });
    const svc = new ConnectionService({
      store: stores.connections,
      sealer: new ConnectionSealer(new FileKeyring({ home })),
    });
    await svc.create(admin, { name: 'c', type: 'HTTP', details: { host: 'h-value' } });
    const lines: string[] = [];
    const result = await runRotateKeyCommand({ home, env: {}, print: (l) => lines.push(l) });
    expect(result?.resealed).toBe(1);
    expect(lines.join('\n')).toContain(`re-sealed 1 connection(s) under key ${result?.newKeyId}`);
    expect((await svc.details(admin, { name: 'c' }, 'x')).details).toEqual({ host: 'h-value' });
    await runRotateKeyCommand({ home, env: {}, print: (l) => lines.push(l), retireOld: true });
    expect(lines).toContain('removed master.key.old');
    await stores.close();
  });

  it('refuses a home without a database instead of creating one', async () => {
    await expect(
      runRotateKeyCommand({ home: join(dir, 'elsewhere'), env: {}, print: () => undefined }),
    ).rejects.toThrow(/No Quoll database/);
    expect(existsSync(join(dir, 'elsewhere'))).toBe(false);
  });
});
