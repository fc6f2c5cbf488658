import { Command, InvalidArgumentError } from 'commander';
import type { Client, Task, TaskRun } from '@quoll/client';
import { clientFrom } from '../client-options.js';
import { printObject, type OutputOptions } from '../output.js';

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

interface CreateOptions extends OutputOptions {
  name: string;
  args?: Record<string, unknown>;
  timeout?: number;
}

async function orchestrationOf(c: Command, id: string): Promise<ReturnType<Client['getOrchestration']>> {
  return (await clientFrom(c)).getOrchestration(id);
}

/** The run `--run` names, else the task's newest run. */
async function pickRun(task: Task, runId: string | undefined): Promise<TaskRun> {
  const runs = await task.lastRuns();
  const run = runId === undefined ? runs[0] : runs.find((r) => r.id === runId);
  if (run === undefined) {
    throw new Error(
      runId === undefined
        ? `Task ${task.id} has no runs yet.`
        : `Task ${task.id} has no run ${runId}; "quoll task status ${task.id}" lists its runs.`,
    );
  }
  return run;
}

/** `quoll task run-once|schedule|continuous|list|status|logs|ticks|kill`. */
export function taskCommand(): Command {
  const cmd = new Command('task').description(
    'Tasks: orchestrations run once, on a cron schedule, or continuously',
  );
  cmd
    .command('run-once <orchestration-id>')
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
      });
      printObject(opts, task);
    });
  cmd
    .command('schedule <orchestration-id>')
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
      });
      printObject(opts, task);
    });
  cmd
    .command('continuous <orchestration-id>')
    .description('Keep one run of an orchestration going (restarted with backoff) until killed')
    .requiredOption('--name <name>', 'task name')
    .option('--args <json>', 'jsonArgs given to each run', parseJsonArgs)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: CreateOptions, c: Command) => {
      const task = await (
        await orchestrationOf(c, id)
      ).runContinuously({ name: opts.name, jsonArgs: opts.args ?? {} });
      printObject(opts, task);
    });
  cmd
    .command('list')
    .description('List tasks (with -w: of that workspace); killed tasks only with --killed')
    .option('--killed', 'include killed tasks')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { killed?: boolean }, c: Command) => {
      const client = await clientFrom(c);
      const workspaceName = c.optsWithGlobals<{ workspace?: string }>().workspace;
      printObject(
        opts,
        await client.listTasks({
          killed: opts.killed === true,
          ...(workspaceName === undefined ? {} : { workspaceName }),
        }),
      );
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
      process.stdout.write(`${String(task)}\nStatus           ${status}\n\n${String(runs)}\n`);
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
            process.stdout.write((opts.json ? JSON.stringify(line) : String(line)) + '\n');
          }
          return;
        }
        printObject(opts, await run.logs(opts.limit !== undefined ? { limit: opts.limit } : {}));
      },
    );
  cmd
    .command('ticks <task-id>')
    .description("List a scheduled task's ticks that produced no run (skipped or missed) and why")
    .option('--limit <n>', 'only the newest N', parseWhole)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { limit?: number }, c: Command) => {
      const task = await (await clientFrom(c)).getTask(id);
      printObject(opts, await task.ticks(opts.limit !== undefined ? { limit: opts.limit } : {}));
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
