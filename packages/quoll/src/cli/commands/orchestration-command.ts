import { Command } from 'commander';
import { clientFrom } from '../client-options.js';
import { printObject, type OutputOptions } from '../output.js';

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
      const orchestration = await client.uploadOrchestration({ path: zip }, { name: opts.name });
      if (opts.wait) await orchestration.waitUntilReady();
      printObject(opts, orchestration);
    });
  cmd
    .command('list')
    .description('List orchestrations of every workspace the token can see (with -w: of that workspace)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c);
      const workspaceName = c.optsWithGlobals<{ workspace?: string }>().workspace;
      printObject(
        opts,
        await client.listOrchestrations(workspaceName === undefined ? {} : { workspaceName }),
      );
    });
  cmd
    .command('status <id>')
    .description('Show an orchestration and its packaging status')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions, c: Command) => {
      const orchestration = await (await clientFrom(c)).getOrchestration(id);
      await orchestration.status();
      printObject(opts, orchestration);
      if (!opts.json && orchestration.error !== null) process.stdout.write(`error: ${orchestration.error}\n`);
    });
  cmd
    .command('logs <id>')
    .description('Print the packaging log (what quoll, npm and esbuild said)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions, c: Command) => {
      const orchestration = await (await clientFrom(c)).getOrchestration(id);
      printObject(opts, await orchestration.packagingLogs());
    });
  return cmd;
}
