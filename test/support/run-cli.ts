import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI } from './test-server.js';

const exec = promisify(execFile);

/** How a CLI run exited and what it printed. */
export interface CliResult {
  /** The exit code; -1 when the process did not exit with one (a signal, a failed spawn). */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI on a server's home (`quoll --home <home> …`) with `QUOLL_URL` and
 * `QUOLL_TOKEN` cleared, so the home's own credentials are what it uses. Never throws: a
 * failing command answers its exit code and output like a succeeding one.
 *
 * @example const { code, stdout } = await runCli(server.home, ['workspace', 'list', '--json']);
 */
export async function runCli(
  home: string,
  args: readonly string[],
  options: {
    /** Added to the environment after the clearing. @default {} */
    env?: NodeJS.ProcessEnv;
  } = {},
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, '--home', home, ...args], {
      env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '', ...options.env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
