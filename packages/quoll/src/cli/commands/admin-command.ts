import { Command } from 'commander';
import { ValidationError } from '@quoll/client/errors';
import { resolveServerConfig } from '../../config/index.js';
import { clientFrom } from '../client-options.js';
import { printRows, type OutputOptions } from '../output.js';
import { AUDIT_VIEW, SESSION_VIEW, TOKEN_VIEW } from '../views.js';
import type { SessionInfo } from '../../auth/index.js';

/** `quoll admin rotate-key|migrate|audit|sessions|tokens`. */
export function adminCommand(): Command {
  const cmd = new Command('admin').description(
    'Administration: master key rotation, audit trail, console sessions, API tokens, moving a home to a cluster database',
  );
  cmd
    .command('rotate-key')
    .description(
      'Re-encrypt every connection under a new master key, safe while the server or the nodes serve (no token needed). Embedded home: makes the new key itself; after a restart, --retire-old. Cluster (--database or QUOLL_DATABASE_URL): once every node seals with the new key, run it with QUOLL_MASTER_KEY=<new> and QUOLL_MASTER_KEY_DECRYPT_ONLY=<old>; it re-seals every row (resumable) and retires the old key. --status shows where a cluster stands first.',
    )
    .option('--home <dir>', 'home directory of the instance (default: $QUOLL_HOME, else ./.quoll)')
    .option(
      '--database <url>',
      "a cluster's database, postgres://USER[:PASSWORD]@HOST:PORT/DB (default: $QUOLL_DATABASE_URL; none: the embedded home)",
    )
    .option(
      '--retire-old',
      'embedded home only: finish an earlier rotation (re-seal stragglers, delete master.key.old)',
    )
    .option(
      '--status',
      "cluster only: change nothing; print each live node's seal key and held keys, each key id's state (active, retiring, retired) and connection count, and whether a rotation can proceed or what blocks it (with QUOLL_MASTER_KEY set: a rotation given those keys). Key ids only, never keys. Exit code 0 when a rotation can proceed (perhaps with nothing to do), 3 when something blocks it",
    )
    .option('--json', 'with --status: print JSON')
    .action(async (_local: unknown, c: Command) => {
      // --home is also a global flag; read both levels, as `quoll server` does.
      const opts = c.optsWithGlobals<{
        home?: string;
        database?: string;
        retireOld?: boolean;
        status?: boolean;
        json?: boolean;
      }>();
      const { home, database } = resolveServerConfig(
        { home: opts.home, database: opts.database },
        process.env,
        process.cwd(),
      );
      const commands = await import('./rotate-key-command.js');
      if (opts.status === true) {
        if (database.kind === 'sqlite' || opts.retireOld === true) {
          throw new ValidationError(
            'invalid_request',
            opts.retireOld === true
              ? '--status changes nothing: run it without --retire-old.'
              : "--status is for a cluster: give its database (--database postgres://… or QUOLL_DATABASE_URL). An embedded home's key is in <home>/master.key.",
            0,
          );
        }
        const status = await commands.runClusterKeyStatusCommand({ database, json: opts.json === true });
        // Printed either way; the exit code lets a script wait for, or stop at, a blocked rotation.
        if (!status.rotation.canProceed) process.exitCode = commands.ROTATION_BLOCKED_EXIT_CODE;
        return;
      }
      if (opts.json === true) {
        throw new ValidationError('invalid_request', '--json goes with --status.', 0);
      }
      if (database.kind === 'sqlite') {
        await commands.runRotateKeyCommand({ home, retireOld: opts.retireOld === true });
        return;
      }
      if (opts.retireOld === true) {
        throw new ValidationError(
          'invalid_request',
          '--retire-old is for an embedded home: on a cluster, `quoll admin rotate-key` retires the old key itself once every connection is re-sealed. Run it without --retire-old.',
          0,
        );
      }
      await commands.runClusterRotateKeyCommand({ home, database });
    });
  cmd
    .command('migrate')
    .description(
      "Copy an embedded home (metadata, model files, orchestrations, connections still sealed, inference logs, run logs) into an empty cluster database, then verify row counts and SHA-256s. Safe to run again after an interruption; refuses a database holding anything else (migrate_target_not_empty). Stop the home's server first.",
    )
    .requiredOption('--from-home <dir>', 'the embedded home to copy (its server stopped)')
    .option(
      '--to <url>',
      'the cluster database, postgres://USER[:PASSWORD]@HOST:PORT/DB (default: $QUOLL_DATABASE_URL)',
    )
    .action(async (opts: { fromHome: string; to?: string }) => {
      const to = opts.to ?? process.env.QUOLL_DATABASE_URL;
      if (to === undefined || !/^postgres(ql)?:\/\//.test(to)) {
        throw new ValidationError(
          'invalid_request',
          `--to must be a postgres:// URL (or set QUOLL_DATABASE_URL); got ${to === undefined ? 'nothing' : `"${to.replace(/:[^:@/]*@/, ':*****@')}"`}.`,
          0,
        );
      }
      await (
        await import('./migrate-home-command.js')
      ).runMigrateHomeCommand({ fromHome: opts.fromHome, to });
    });
  cmd
    .command('audit')
    .description('Show who read unmasked connection details, newest first (admin token only)')
    .option('--limit <n>', 'how many entries (default 100)', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { limit?: number }, c: Command) => {
      if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
        throw new ValidationError('invalid_request', '--limit must be a positive integer.', 0);
      }
      const entries = await (await clientFrom(c)).connectionAudit({ limit: opts.limit });
      printRows(opts, entries, AUDIT_VIEW, '(no audit entries)');
    });
  const sessions = cmd
    .command('sessions')
    .description(
      'List live web-console sessions, newest first; `sessions revoke <id>` ends one (admin token only)',
    )
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c, { select: false });
      const list = await client.http.json<SessionInfo[]>('GET', '/v1/admin/sessions');
      printRows(opts, list, SESSION_VIEW, '(no console sessions)');
    });
  sessions
    .command('revoke <id>')
    .description('End a console session at once (its browser is signed out)')
    .action(async (id: string, _opts: unknown, c: Command) => {
      const client = await clientFrom(c, { select: false });
      await client.http.json<unknown>('DELETE', `/v1/admin/sessions/${encodeURIComponent(id)}`);
      process.stdout.write(`revoked session ${id}\n`);
    });
  const tokens = cmd
    .command('tokens')
    .description(
      "List live API tokens (admin, workspace, running tasks'), newest first, never their secrets; `tokens revoke <id>` revokes one (admin token only)",
    )
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c, { select: false });
      printRows(opts, await client.listTokens(), TOKEN_VIEW, '(no API tokens)');
    });
  tokens
    .command('list')
    .description('List live API tokens, newest first (the same as `quoll admin tokens`)')
    .option('--json', 'print JSON')
    .action(async (_opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c, { select: false });
      // `--json` after `list` may be parsed as the parent's option: read both levels.
      const opts = c.optsWithGlobals<OutputOptions>();
      printRows(opts, await client.listTokens(), TOKEN_VIEW, '(no API tokens)');
    });
  tokens
    .command('revoke <id>')
    .description(
      'Revoke an API token at once; the console sessions made from it end too (a console session: `quoll admin sessions revoke`)',
    )
    .action(async (id: string, _opts: unknown, c: Command) => {
      const client = await clientFrom(c, { select: false });
      await client.revokeToken(id);
      process.stdout.write(`revoked token ${id}\n`);
    });
  return cmd;
}
