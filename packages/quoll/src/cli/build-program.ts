import { Command } from 'commander';
import { adminCommand } from './commands/admin-command.js';
import { completionCommand } from './commands/completion-command.js';
import { connectionCommand } from './commands/connection-command.js';
import { consoleCommand } from './commands/console-command.js';
import { modelCommand } from './commands/model-command.js';
import { orchestrationCommand } from './commands/orchestration-command.js';
import { pipelineCommand } from './commands/pipeline-command.js';
import { serverCommand } from './commands/server-command.js';
import { taskCommand } from './commands/task-command.js';
import { workspaceCommand } from './commands/workspace-command.js';

/** Extra command groups that domains add (connection, orchestration, task, admin). */
export type CommandFactory = () => Command;

/** Options of {@link buildProgram}. */
export interface BuildProgramOptions {
  /** Extra command groups. @default [] */
  extra?: CommandFactory[];
  /** `--json` is on the command line: usage errors are printed by the caller, as JSON. @default false */
  json?: boolean;
}

/** The `quoll` command tree. */
export function buildProgram(options: BuildProgramOptions = {}): Command {
  const { extra = [], json = false } = options;
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
  program.addCommand(consoleCommand());
  program.addCommand(completionCommand(() => program));
  for (const f of extra) program.addCommand(f());
  // Every command overrides exit so errors come back to main() for one exit-code policy.
  // Under --json, commander's own error text would not be JSON: main() prints the error instead.
  const quiet = { outputError: (): void => undefined };
  const visit = (c: Command): void => {
    c.exitOverride();
    if (json) c.configureOutput(quiet);
    c.commands.forEach(visit);
  };
  visit(program);
  return program;
}
