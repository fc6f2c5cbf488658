import { Command } from 'commander';
import { adminCommand } from './commands/admin-command.js';
import { connectionCommand } from './commands/connection-command.js';
import { modelCommand } from './commands/model-command.js';
import { orchestrationCommand } from './commands/orchestration-command.js';
import { pipelineCommand } from './commands/pipeline-command.js';
import { serverCommand } from './commands/server-command.js';
import { taskCommand } from './commands/task-command.js';
import { workspaceCommand } from './commands/workspace-command.js';

/** Extra command groups that domains add (connection, orchestration, task, admin). */
export type CommandFactory = () => Command;

/** The `quoll` command tree. */
export function buildProgram(extra: CommandFactory[] = []): Command {
  const program = new Command('quoll')
    .description(
      'Quoll: a self-hosted platform for ML workloads — models, pipelines, inference, connections, orchestrations, tasks',
    )
    .version('0.1.0')
    .option('--url <url>', 'server URL (default: $QUOLL_URL, else the credentials file)')
    .option('--token <token>', 'API token (default: $QUOLL_TOKEN, else the credentials file)')
    .option('--home <dir>', 'read credentials from <dir>/credentials.json')
    .option('-w, --workspace <name>', "workspace to act in (default: the token's default workspace)")
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(serverCommand());
  program.addCommand(workspaceCommand());
  program.addCommand(modelCommand());
  program.addCommand(pipelineCommand());
  program.addCommand(connectionCommand());
  program.addCommand(orchestrationCommand());
  program.addCommand(taskCommand());
  program.addCommand(adminCommand());
  for (const f of extra) program.addCommand(f());
  // Subcommands inherit exitOverride so errors come back to main() for one exit-code policy.
  for (const c of program.commands) c.exitOverride();
  return program;
}
