import { Command } from 'commander';
import type { Orchestration } from '@quoll/client';
import { clientFrom, listScope, parseWorkspaceId } from '../client-options.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { formatBytes, Progress } from '../progress.js';
import { ORCHESTRATION_VIEW, packagingLogLine } from '../views.js';

/** Waits for packaging, showing the status and the newest packaging log line on a terminal. */
async function waitPackaged(orchestration: Orchestration, opts: OutputOptions): Promise<void> {
  const progress = Progress.start(`packaging ${orchestration.id}`, opts);
  if (!progress.visible) {
    await orchestration.waitUntilReady();
    return;
  }
  const waiting = orchestration.waitUntilReady();
  let settled = false;
  const poll = (async () => {
    while (!settled) {
      const logs = await orchestration.packagingLogs().catch(() => null);
      const last = logs?.at(-1);
      if (!settled)
        progress.update(`${orchestration.toJSON().status}${last ? ` (${last.source}: ${last.line})` : ''}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  try {
    await waiting;
    progress.done('ready');
  } catch (err) {
    progress.clear();
    throw err;
  } finally {
    settled = true;
    await poll;
  }
}

/** `quoll orchestration upload|list|status|logs`. */
export function orchestrationCommand(): Command {
  const cmd = new Command('orchestration').description(
    'Orchestrations: user code uploaded as a zip, packaged, then run as tasks',
  );
  cmd
    .command('upload <zip>')
    .description('Upload a zip into the workspace (-w, else the default); it is packaged in the background')
    .option('--name <name>', 'name of the orchestration', '')
    .option('--wait', 'wait until packaging is over; exit non-zero if it failed')
    .option('--json', 'print JSON')
    .action(async (zip: string, opts: OutputOptions & { name: string; wait?: boolean }, c: Command) => {
      const client = await clientFrom(c);
      const progress = Progress.start(`uploading ${zip}`, opts);
      const orchestration = await client
        .uploadOrchestration(
          { path: zip },
          {
            name: opts.name,
            onProgress: (sent, total) =>
              progress.update(`${formatBytes(sent)}${total === null ? '' : ` of ${formatBytes(total)}`}`),
          },
        )
        .finally(() => progress.clear());
      progress.done(`orchestration ${orchestration.id}`);
      if (opts.wait) await waitPackaged(orchestration, opts);
      printOne(opts, orchestration, ORCHESTRATION_VIEW);
    });
  cmd
    .command('list')
    .description('List orchestrations of every workspace the token can see (-w or --workspace-id: one)')
    .option('--workspace-id <id>', 'only this workspace', parseWorkspaceId)
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c, { select: false });
      printRows(
        opts,
        await client.listOrchestrations(listScope(c)),
        ORCHESTRATION_VIEW,
        '(no orchestrations)',
      );
    });
  cmd
    .command('status <id>')
    .description('Show an orchestration and its packaging status')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions, c: Command) => {
      const orchestration = await (await clientFrom(c)).getOrchestration(id);
      await orchestration.status();
      printOne(opts, orchestration, ORCHESTRATION_VIEW);
      if (!opts.json && orchestration.error !== null) process.stdout.write(`error: ${orchestration.error}\n`);
    });
  cmd
    .command('logs <id>')
    .description('Print the packaging log (what quoll, npm and esbuild said)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions, c: Command) => {
      const orchestration = await (await clientFrom(c)).getOrchestration(id);
      const lines = await orchestration.packagingLogs();
      if (opts.json) process.stdout.write(JSON.stringify(lines, null, 2) + '\n');
      else
        process.stdout.write(
          lines.length === 0 ? '(no packaging logs yet)\n' : `${lines.map(packagingLogLine).join('\n')}\n`,
        );
    });
  return cmd;
}
