import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@quoll/client';

/** The built CLI; `npm test` builds first (pretest). */
export const CLI = fileURLToPath(new URL('../../packages/quoll/dist/cli/main.js', import.meta.url));

/** A real `quoll server` process on a free port with its own home. */
export interface TestServer {
  url: string;
  token: string;
  home: string;
  process: ChildProcess;
  /** Server output so far (for debugging failed tests). */
  output(): string;
  client(): Client;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Deletes the home (after stop). */
  cleanup(): Promise<void>;
}

/** Starts `quoll server --port 0` on a fresh (or given) home and waits until it listens. */
export async function startTestServer(
  options: { home?: string; env?: NodeJS.ProcessEnv; args?: string[] } = {},
): Promise<TestServer> {
  const home = options.home ?? (await mkdtemp(join(tmpdir(), 'quoll-test-')));
  const child = spawn(
    process.execPath,
    [CLI, 'server', '--home', home, '--port', '0', '--log-level', 'warn', ...(options.args ?? [])],
    {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        child.stdout.off('data', onData);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`quoll server exited with ${String(code)} before listening:\n${out}`)),
    );
  });
  const creds = JSON.parse(await readFile(join(home, 'credentials.json'), 'utf8')) as { token: string };
  return {
    url,
    token: creds.token,
    home,
    process: child,
    output: () => out,
    client: () => new Client({ url, token: creds.token }),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async cleanup() {
      await rm(home, { recursive: true, force: true });
    },
  };
}
