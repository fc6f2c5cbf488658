import { Command } from 'commander';
import type { ConnectionAuditEntryDto } from '@quoll/client';
import { resolveServerConfig } from '../../config/index.js';
// Imported directly, not through connections/index.ts: see the header of rotate-key-command.ts.
import { clientFrom } from '../client-options.js';
import { printRows, type OutputOptions } from '../output.js';

const auditColumns: [string, (e: ConnectionAuditEntryDto) => string | number][] = [
  ['at', (e) => e.at],
  ['subject', (e) => e.subject],
  ['connection', (e) => e.connectionName],
  ['action', (e) => e.action],
];

/** `quoll admin rotate-key|audit`. */
export function adminCommand(): Command {
  const cmd = new Command('admin').description('Administration: master key rotation, audit trail');
  cmd
    .command('rotate-key')
    .description(
      'Re-encrypt every connection under a new master key (safe while the server runs). Works on the home directly, no token needed.',
    )
    .option('--home <dir>', 'home directory of the instance (default: $QUOLL_HOME, else ./.quoll)')
    .option('--retire-old', 'finish an earlier rotation: re-seal stragglers and delete master.key.old')
    .action(async (_local: unknown, c: Command) => {
      // --home is also a global flag; read both levels, as `quoll server` does.
      const opts = c.optsWithGlobals<{ home?: string; retireOld?: boolean }>();
      const { home } = resolveServerConfig({ home: opts.home }, process.env, process.cwd());
      await (
        await import('../../connections/rotate-key-command.js')
      ).runRotateKeyCommand({ home, retireOld: opts.retireOld === true });
    });
  cmd
    .command('audit')
    .description('Show who read unmasked connection details, newest first (admin token only)')
    .option('--limit <n>', 'how many entries (default 100)', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { limit?: number }, c: Command) => {
      if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
        throw new Error('--limit must be a positive integer.');
      }
      const entries = await (await clientFrom(c)).connectionAudit({ limit: opts.limit });
      printRows(opts, entries, auditColumns);
    });
  return cmd;
}
