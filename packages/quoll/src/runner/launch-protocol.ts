/**
 * The message the server sends a warm process to make it a particular run: one JSON line on
 * its stdin. Versioned, so a launcher file left by another server version refuses a message
 * it does not understand instead of misreading it. Language-neutral: a runtime's launcher
 * (Node's here, Python's later) reads the same line.
 */
export const LAUNCH_PROTOCOL_VERSION = 1;

/** Version 1: run `entry` in `cwd` with `env` added and `argv` after the entry. */
export interface LaunchMessageV1 {
  v: 1;
  kind: 'run';
  /** Working directory (inside path). */
  cwd: string;
  /** Per-run variables, set before the entry starts. */
  env: Record<string, string>;
  /** The entry file (inside path). */
  entry: string;
  /** Arguments after the entry. */
  argv: string[];
}

/** Every message a warm process may receive. */
export type LaunchMessage = LaunchMessageV1;

/** The line written to a warm process's stdin. */
export function encodeLaunchMessage(message: LaunchMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * Parses and checks one line. Self-contained (no imports, no outer names) because its
 * source is also embedded in the Node launcher file, so both sides check the same way.
 *
 * @throws Error naming what is wrong with the line.
 */
export function decodeLaunchMessage(line: string): LaunchMessage {
  const m = JSON.parse(line) as Record<string, unknown> | null;
  if (m === null || typeof m !== 'object') throw new Error('launch message: not an object');
  if (m.v !== 1)
    throw new Error(`launch message: unsupported protocol version ${String(m.v)} (this launcher speaks 1)`);
  if (m.kind !== 'run') throw new Error(`launch message: unknown kind ${String(m.kind)}`);
  if (typeof m.cwd !== 'string' || typeof m.entry !== 'string')
    throw new Error('launch message: cwd and entry must be strings');
  const env = m.env as Record<string, unknown> | null;
  if (env === null || typeof env !== 'object' || Object.values(env).some((x) => typeof x !== 'string'))
    throw new Error('launch message: env must map names to strings');
  if (!Array.isArray(m.argv) || m.argv.some((x) => typeof x !== 'string'))
    throw new Error('launch message: argv must be a list of strings');
  return {
    v: 1,
    kind: 'run',
    cwd: m.cwd,
    env: env as Record<string, string>,
    entry: m.entry,
    argv: m.argv as string[],
  };
}
