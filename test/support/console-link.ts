import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, type TestServer } from './test-server.js';

const exec = promisify(execFile);

/**
 * The console's one-time sign-in link for a test server, as `quoll console --no-open --json`
 * prints it from the server's home (its credentials file, not QUOLL_URL/QUOLL_TOKEN).
 */
export async function consoleSignInLink(server: TestServer): Promise<string> {
  const { stdout } = await exec(
    process.execPath,
    [CLI, '--home', server.home, 'console', '--no-open', '--json'],
    {
      env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
    },
  );
  return (JSON.parse(stdout) as { url: string }).url;
}
