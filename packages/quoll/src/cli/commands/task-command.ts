import { Command, InvalidArgumentError } from 'commander';
import type { Client, Task, TaskLimitsDto, TaskRun } from '@quoll/client';
import { QuollError, ValidationError } from '@quoll/client/errors';
import { renderFields } from '@quoll/client/format';
import { clientFrom, listScope, parseWorkspaceId } from '../client-options.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { TASK_RUN_VIEW, TASK_TICK_VIEW, TASK_VIEW, runLogLine } from '../views.js';

function parseJsonArgs(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError('give a JSON object, e.g. \'{"pipeline_name": "p"}\'.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidArgumentError('give a JSON object, e.g. \'{"pipeline_name": "p"}\'.');
  }
  return parsed as Record<string, unknown>;
}

function parseWhole(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('give a whole number.');
  return n;
}

/** A positive whole number of bytes with an optional unit (`512MiB`, `1 GiB`, `1048576`). */
function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|tib)?$/i.exec(text.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? 'b').toLowerCase()];
  const bytes = m !== null && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new InvalidArgumentError(
      'give a positive number of bytes, optionally with a unit (e.g. 512MiB, 1GiB).',
    );
  }
  return bytes;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

function parsePositive(text: string): number {
  const n = parseWhole(text);
  if (n === 0) throw new InvalidArgumentError('give a whole number above 0.');
  return n;
}

interface LimitOptions {
  memory?: number;
  processes?: number;
  openFiles?: number;
  cpuSeconds?: number;
  disk?: number;
}

interface CreateOptions extends OutputOptions, LimitOptions {
  name: string;
  args?: Record<string, unknown>;
  timeout?: number;
}

/** The per-run resource limit flags, shared by every command that creates a task. */
function withLimitOptions(c: Command): Command {
  return c
    .option(
      '--memory <size>',
      "memory of each run's processes (e.g. 512MiB); tighter than the server's only",
      parseSize,
    )
    .option(
      '--processes <n>',
      "processes and threads of a run; tighter than the server's only",
      parsePositive,
    )
    .option(
      '--open-files <n>',
      "open files of each run's processes; tighter than the server's only",
      parsePositive,
    )
    .option(
      '--cpu-seconds <n>',
      "CPU seconds of each run's processes; tighter than the server's only",
      parsePositive,
    )
    .option(
      '--disk <size>',
      "what a run may write: its directory's size on disk and each file (e.g. 1GiB); tighter than the server's only",
      parseSize,
    );
}

/** The `limits` of a task from its flags; undefined when none is given (the server's apply). */
function limitsOf(opts: LimitOptions): { limits?: TaskLimitsDto } {
  const limits: TaskLimitsDto = {
    ...(opts.memory !== undefined ? { memoryBytes: opts.memory } : {}),
    ...(opts.processes !== undefined ? { processes: opts.processes } : {}),
    ...(opts.openFiles !== undefined ? { openFiles: opts.openFiles } : {}),
    ...(opts.cpuSeconds !== undefined ? { cpuSeconds: opts.cpuSeconds } : {}),
    ...(opts.disk !== undefined ? { diskBytes: opts.disk } : {}),
  };
  return Object.keys(limits).length === 0 ? {} : { limits };
}

async function orchestrationOf(c: Command, id: string): Promise<ReturnType<Client['getOrchestration']>> {
  return (await clientFrom(c)).getOrchestration(id);
}

/**
 * The run `--run` names (read by id), else the task's newest run (a page of one): never the
 * task's whole run history, which grows with its age.
 */
async function pickRun(task: Task, runId: string | undefined): Promise<TaskRun> {
  const run =
    runId === undefined
      ? (await task.lastRuns({ limit: 1 }))[0]
      : await task.getRun(runId).catch((err: unknown) => {
          if (err instanceof QuollError && err.code === 'task_run_not_found') return undefined;
          throw err;
        });
  if (run === undefined) {
    throw new ValidationError(
      'invalid_request',
      runId === undefined
        ? `Task ${task.id} has no runs yet.`
        : `Task ${task.id} has no run ${runId}; "quoll task status ${task.id}" lists its runs.`,
      0,
    );
  }
  return run;
}

/** `quoll task run-once|schedule|continuous|list|status|logs|ticks|kill`. */
export function taskCommand(): Command {
  const cmd = new Command('task').description(
    'Tasks: orchestrations run once, on a cron schedule, or continuously',
  );
  withLimitOptions(cmd.command('run-once <orchestration-id>'))
    .description('Run an orchestration once, now')
    .requiredOption('--name <name>', 'task name')
    .option('--args <json>', 'jsonArgs given to the run (taskArgs())', parseJsonArgs)
    .option('--timeout <seconds>', 'stop the run after this many seconds (default 900)', parseWhole)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: CreateOptions, c: Command) => {
      const task = await (
        await orchestrationOf(c, id)
      ).runOnce({
        name: opts.name,
        jsonArgs: opts.args ?? {},
        ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
        ...limitsOf(opts),
      });
      printOne(opts, task, TASK_VIEW);
    });
  withLimitOptions(cmd.command('schedule <orchestration-id>'))
    .description('Run an orchestration at every tick of a 5-field cron schedule (UTC unless --timezone)')
    .requiredOption('--name <name>', 'task name')
    .requiredOption('--schedule <cron>', 'e.g. "*/5 * * * *"')
    .option('--timezone <iana>', 'time zone the schedule is read in, e.g. Europe/Paris')
    .option('--args <json>', 'jsonArgs given to each run', parseJsonArgs)
    .option('--timeout <seconds>', 'stop each run after this many seconds (default 900)', parseWhole)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: CreateOptions & { schedule: string; timezone?: string }, c: Command) => {
      const task = await (
        await orchestrationOf(c, id)
      ).runScheduled({
        name: opts.name,
        schedule: opts.schedule,
        jsonArgs: opts.args ?? {},
        ...(opts.timezone !== undefined ? { timezone: opts.timezone } : {}),
        ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
        ...limitsOf(opts),
      });
      printOne(opts, task, TASK_VIEW);
    });
  withLimitOptions(cmd.command('continuous <orchestration-id>'))
    .description('Keep one run of an orchestration going (restarted with backoff) until killed')
    .requiredOption('--name <name>', 'task name')
    .option('--args <json>', 'jsonArgs given to each run', parseJsonArgs)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: CreateOptions, c: Command) => {
      const task = await (
        await orchestrationOf(c, id)
      ).runContinuously({ name: opts.name, jsonArgs: opts.args ?? {}, ...limitsOf(opts) });
      printOne(opts, task, TASK_VIEW);
    });
  cmd
    .command('list')
    .description(
      'List tasks, newest first, of every workspace the token can see (-w or --workspace-id: one); killed ones only with --killed',
    )
    .option('--killed', 'include killed tasks')
    .option('--workspace-id <id>', 'only this workspace', parseWorkspaceId)
    .option('--orchestration-sha <sha>', 'only tasks of orchestrations uploaded with this zip (SHA-256)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { killed?: boolean; orchestrationSha?: string }, c: Command) => {
      const client = await clientFrom(c, { select: false });
      const tasks = await client.listTasks({
        killed: opts.killed === true,
        ...listScope(c),
        ...(opts.orchestrationSha !== undefined ? { orchestrationSha: opts.orchestrationSha } : {}),
      });
      printRows(opts, tasks, TASK_VIEW, '(no tasks)');
    });
  cmd
    .command('status <task-id>')
    .description('Show a task, its status and its newest runs')
    .option('--limit <n>', 'runs to show', parseWhole, 10)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { limit: number }, c: Command) => {
      const task = await (await clientFrom(c)).getTask(id);
      const status = await task.status();
      const runs = await task.lastRuns({ limit: opts.limit });
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ...task.toJSON(), runs }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        `${renderFields([...TASK_VIEW.map(([h, f]): [string, ReturnType<typeof f>] => [h, f(task)]), ['status', status]])}\n\n`,
      );
      printRows({}, runs, TASK_RUN_VIEW, '(no task runs)');
    });
  cmd
    .command('logs <task-id>')
    .description("Print a run's output (the newest run unless --run); --follow streams it until the run ends")
    .option('--run <id>', 'which run')
    .option('--limit <n>', 'only the last N lines', parseWhole)
    .option('--follow', 'keep printing lines as they come until the run ends')
    .option('--json', 'print JSON (one object per line with --follow)')
    .action(
      async (
        id: string,
        opts: OutputOptions & { run?: string; limit?: number; follow?: boolean },
        c: Command,
      ) => {
        const task = await (await clientFrom(c)).getTask(id);
        const run = await pickRun(task, opts.run);
        if (opts.follow) {
          for await (const line of run.followLogs()) {
            process.stdout.write((opts.json ? JSON.stringify(line) : runLogLine(line)) + '\n');
          }
          return;
        }
        const lines = await run.logs(opts.limit !== undefined ? { limit: opts.limit } : {});
        if (opts.json) process.stdout.write(JSON.stringify(lines, null, 2) + '\n');
        else
          process.stdout.write(
            lines.length === 0 ? '(no logs yet)\n' : `${lines.map(runLogLine).join('\n')}\n`,
          );
      },
    );
  cmd
    .command('ticks <task-id>')
    .description("List a scheduled task's ticks that produced no run (skipped or missed) and why")
    .option('--limit <n>', 'only the newest N', parseWhole)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { limit?: number }, c: Command) => {
      const task = await (await clientFrom(c)).getTask(id);
      printRows(
        opts,
        await task.ticks(opts.limit !== undefined ? { limit: opts.limit } : {}),
        TASK_TICK_VIEW,
        '(no skipped or missed ticks)',
      );
    });
  cmd
    .command('kill <task-id>')
    .description('Kill a task: no run starts after this; a running run is stopped')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions, c: Command) => {
      const task = await (await clientFrom(c)).getTask(id);
      const status = await task.kill();
      if (opts.json) process.stdout.write(JSON.stringify({ id: task.id, status }) + '\n');
      else process.stdout.write(`${task.id}: ${status}\n`);
    });
  return cmd;
}
