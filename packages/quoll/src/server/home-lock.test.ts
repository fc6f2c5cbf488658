import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOME_LOCK_INFO_FILE, HomeLock, HomeLockedError } from './home-lock.js';

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'quoll-home-lock-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('HomeLock', () => {
  it('lets one holder in at a time, in the same process too, and names the holder', async () => {
    const first = await HomeLock.acquire(home);
    await first.announce('http://127.0.0.1:1234');
    const err = await HomeLock.acquire(home).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HomeLockedError);
    const locked = err as HomeLockedError;
    expect(locked.holder).toMatchObject({ pid: process.pid, url: 'http://127.0.0.1:1234' });
    expect(locked.message).toContain(`pid ${process.pid}`);
    expect(locked.message).toContain('http://127.0.0.1:1234');
    await first.release();
    await expect(readFile(join(home, HOME_LOCK_INFO_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    const second = await HomeLock.acquire(home);
    await second.release();
    // Releasing twice is harmless.
    await second.release();
  });

  it('is free again when its holder is SIGKILLed (no stale lock)', async () => {
    const module = fileURLToPath(new URL('./home-lock.ts', import.meta.url));
    // A holder in another process: takes the lock, says so, then waits to be killed.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { HomeLock } = await import(${JSON.stringify(module)});
         const lock = await HomeLock.acquire(${JSON.stringify(home)});
         await lock.announce('http://127.0.0.1:9');
         console.log('held');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('held')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`holder exited with ${String(code)}`)));
    });
    const err = await HomeLock.acquire(home).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HomeLockedError);
    expect((err as HomeLockedError).holder).toMatchObject({ pid: child.pid, url: 'http://127.0.0.1:9' });
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
    // The kernel dropped the lock with the process; its server.json is left behind and replaced.
    const lock = await HomeLock.acquire(home);
    const info = JSON.parse(await readFile(join(home, HOME_LOCK_INFO_FILE), 'utf8')) as { pid: number };
    expect(info.pid).toBe(process.pid);
    await lock.release();
  });
});
