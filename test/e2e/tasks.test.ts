import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError, type Client, type Orchestration, type Task } from '@quoll/client';
import {
  lastRunEnded,
  processesTitled,
  readyOrchestration,
  waitFor,
} from '../support/orchestration-helpers.js';
import { signedArrowFileServer, type SignedArrowFileServer } from '../support/signed-arrow-file-server.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/** Stands for a credential inside the connection's URL: it must show as ***** in run logs. */
const SECRET = `sig-${randomBytes(12).toString('hex')}`;
const ROWS = 25;
const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z (stdout|stderr) F /;

/** The seed's remote-inference orchestration, in TypeScript. */
const SEED_MAIN = `
import { writeFile } from 'node:fs/promises';
import { Client, inTask, taskArgs } from '@quoll/client';

const args = taskArgs();
console.log('in task:', inTask(), 'args:', JSON.stringify(args));
const client = new Client();
const workspace = await client.getCurrentWorkspace();
console.log('Getting the workspace', workspace.name);
const connection = await client.getConnection(args.connection_name);
const { host } = await connection.details();
console.log('Getting arrow table file from', host);
const response = await fetch(host, { headers: { Accept: 'application/vnd.apache.arrow.file' } });
if (!response.ok) throw new Error('download failed: ' + response.status);
await writeFile('./xtest.arrow', new Uint8Array(await response.arrayBuffer()));
console.log('Getting the pipeline', args.pipeline_name);
const pipeline = await client.buildPipeline(args.pipeline_name);
await pipeline.addModelStep(await client.getModel(args.model_name));
await pipeline.deploy();
try {
  const result = await pipeline.inferFromFile('./xtest.arrow');
  console.log('Inference time.  Displaying results after.');
  console.log('rows:', result.numRows, 'first:', String(result.getChild('out.variable').get(0)));
} finally {
  await pipeline.undeploy();
}
console.log('Undeployed', args.pipeline_name);
`;

const SLEEPER = `
// A title the test finds on the host: in a sandbox, process.pid is only valid inside.
process.title = 'qs-' + process.env.QUOLL_TASK_RUN_ID.slice(-12);
console.log('pid ' + process.title);
await new Promise((resolve) => setTimeout(resolve, 120_000));
console.log('woke up');
`;

let server: TestServer;
let client: Client;
let files: SignedArrowFileServer;
let arrowUrl: string;
let seed: Orchestration;
let sleeper: Orchestration;
/** Created at the start: one watched, one killed right away (it must never run). */
let everyMinute: Task;
let killedSchedule: Task;

beforeAll(async () => {
  const arrowBytes = tableToIpcFile(makeArrowTensorTable(makeHouseRows(ROWS, 3), 18));
  files = await signedArrowFileServer(arrowBytes, SECRET);
  arrowUrl = files.url;

  server = await startTestServer();
  client = server.client();
  const workspace = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
  client.setCurrentWorkspace(workspace);

  sleeper = await readyOrchestration(client, 'sleeper', { 'main.mjs': SLEEPER });
  // The real-clock schedule starts first so its minute overlaps the other tests.
  everyMinute = await sleeper.runScheduled({ name: 'every minute', schedule: '*/1, *, *, *, *', timeout: 2 });
  killedSchedule = await sleeper.runScheduled({ name: 'killed schedule', schedule: '* * * * *' });
  expect(await killedSchedule.kill()).toBe('pending_kill');

  await client.createConnection('houseprice_arrow_table', 'HTTPFILE', { host: arrowUrl });
  await workspace.addConnection('houseprice_arrow_table');
  await (
    await client.uploadModel('orchestrationmodel', makeTreeEnsembleRegressor({ seed: 5 }))
  ).configure({
    tensorFields: ['tensor'],
  });
  seed = await readyOrchestration(client, 'remote inference', { 'main.ts': SEED_MAIN });
}, 120_000);

afterAll(async () => {
  const code = await server?.stop();
  await server?.cleanup();
  await files?.close();
  expect(code).toBe(0);
});

describe('run once', () => {
  it('runs the seed orchestration: reads a connection, infers, undeploys; logs end with the status line and hide the secret', async () => {
    const task = await seed.runOnce({
      name: 'house price run once',
      jsonArgs: {
        pipeline_name: 'orchestrationpipeline',
        model_name: 'orchestrationmodel',
        connection_name: 'houseprice_arrow_table',
      },
    });
    expect(task.type).toBe('Temporary Run');
    expect(task.schedule).toBeNull();
    expect(String(task)).toMatch(/^Type +Temporary Run$/m);
    expect(String(task)).toMatch(/^Active +True$/m);
    await waitFor('started', async () => ((await task.status()) === 'started' ? true : undefined));
    const run = await lastRunEnded(task, 30_000, 'the run to finish');
    const logs = await run.logs();
    const text = logs.map((l) => l.line).join('\n');
    expect(run.status, text).toBe('success');
    expect(run.exitCode).toBe(0);
    expect(await task.lastRunStatus()).toBe('success');
    expect(await task.status()).toBe('started'); // a run-once task stays started
    expect(text).toContain('in task: true args: {"pipeline_name":"orchestrationpipeline"');
    expect(text).toContain('Getting the workspace orchestrationworkspace');
    expect(text).toMatch(new RegExp(`rows: ${ROWS} first: \\[?-?\\d`));
    expect(text).toContain('Undeployed orchestrationpipeline');
    // The run printed the connection's URL: its secret part is masked in the captured output.
    expect(text).toContain('Getting arrow table file from *****');
    expect(text).not.toContain(SECRET);
    expect(logs.at(-1)?.line).toBe('quoll: run finished: success (exit 0)');
    for (const line of logs) expect(String(line)).toMatch(LOG_LINE);
    expect(String(await run.logs({ limit: 2 })).split('\n')).toHaveLength(2);
    expect((await client.getPipeline('orchestrationpipeline').then((p) => p.status())).status).toBe(
      'Undeployed',
    );
    // Following a finished run replays its log and ends.
    const followed: string[] = [];
    for await (const line of run.followLogs()) followed.push(line.line);
    expect(followed).toEqual(logs.map((l) => l.line));
    expect(inspect(await task.lastRuns())).toMatch(/^task id +pod id +status +created at +updated at$/m);
  });

  it('an exception ends the run as failure with the stack on stderr', async () => {
    const failing = await readyOrchestration(client, 'failing', {
      'main.ts': "console.log('about to fail');\nthrow new Error('boom from the orchestration');\n",
    });
    const task = await failing.runOnce({ name: 'fails' });
    const run = await waitFor('failure', async () => {
      const [r] = await task.lastRuns({ status: 'failure' });
      return r;
    });
    expect(run.exitCode).toBe(1);
    const logs = await run.logs();
    expect(logs.some((l) => l.stream === 'stdout' && l.line === 'about to fail')).toBe(true);
    expect(logs.some((l) => l.stream === 'stderr' && l.line.includes('boom from the orchestration'))).toBe(
      true,
    );
    expect(logs.at(-1)?.line).toBe('quoll: run finished: failure (exit 1)');
    expect(await task.lastRunStatus()).toBe('failure');
  });

  it('a run past its timeout is stopped as timed_out', async () => {
    const task = await sleeper.runOnce({ name: 'times out', timeout: 1 });
    const run = await waitFor('timed_out', async () => (await task.lastRuns({ status: 'timed_out' }))[0]);
    expect((await run.logs()).at(-1)?.line).toBe('quoll: run finished: timed_out (killed after 1 s)');
  });

  it('kill() stops a running run-once task: pending_kill, then killed, and its process is gone', async () => {
    const task = await sleeper.runOnce({ name: 'to kill' });
    const [run] = await waitFor('the run to print', async () => {
      const runs = await task.lastRuns();
      const first = runs[0];
      if (first === undefined) return undefined;
      return (await first.logs()).some((l) => l.line.startsWith('pid ')) ? runs : undefined;
    });
    const title = (await run!.logs()).find((l) => l.line.startsWith('pid '))?.line.slice(4) ?? '';
    expect(processesTitled(title)).toHaveLength(1);
    expect(await task.kill()).toBe('pending_kill');
    await waitFor('killed', async () => ((await task.status()) === 'killed' ? true : undefined));
    const [after] = await task.lastRuns();
    expect(after?.status).toBe('killed');
    await waitFor(
      'the run process to be gone',
      async () => (processesTitled(title).length > 0 ? undefined : true),
      5_000,
    );
    expect((await after!.logs()).at(-1)?.line).toBe('quoll: run finished: killed (the task was killed)');
    expect((await client.listTasks()).map((t) => t.id)).not.toContain(task.id);
    const withKilled = await client.listTasks({ killed: true });
    expect(withKilled.map((t) => t.id)).toContain(task.id);
    expect(inspect(withKilled).split('\n')[0]).toMatch(
      /^id +name +last run status +type +active +schedule +status reason +created at +updated at +workspace id +workspace name$/,
    );
    expect(task.statusReason).toBeNull();
    // A run-once task has no cron ticks, so none skipped or missed.
    expect(String(await task.ticks())).toBe('(no skipped or missed ticks)');
  });

  it('followLogs() yields lines while the run prints them and ends after the final line', async () => {
    const ticker = await readyOrchestration(client, 'ticker', {
      'main.mjs':
        "for (let i = 0; i < 3; i++) { console.log('tick ' + i); await new Promise((r) => setTimeout(r, 300)); }\n",
    });
    const task = await ticker.runOnce({ name: 'ticks' });
    const [run] = await waitFor('a run', async () => {
      const runs = await task.lastRuns();
      return runs.length > 0 ? runs : undefined;
    });
    const seen: string[] = [];
    for await (const line of run!.followLogs()) seen.push(String(line));
    expect(seen.slice(0, 3).map((l) => l.replace(LOG_LINE, ''))).toEqual(['tick 0', 'tick 1', 'tick 2']);
    expect(seen.at(-1)).toMatch(/quoll: run finished: success \(exit 0\)$/);
  });
});

describe('restart recovery', () => {
  it('a run going when the server is SIGKILLed is closed as lost failure on restart, and its process is gone', async () => {
    const first = await startTestServer();
    try {
      const c = first.client();
      const orchestration = await readyOrchestration(c, 'survivor', {
        // The log masks the run's token itself: the test reads it back in base64.
        'main.mjs': `console.log('token ' + process.env.QUOLL_TOKEN);\nconsole.log('token64 ' + Buffer.from(process.env.QUOLL_TOKEN).toString('base64'));\nconsole.log('cwd ' + process.cwd());\n${SLEEPER}`,
      });
      const task = await orchestration.runOnce({ name: 'cut short' });
      const run = await waitFor('the run to print', async () => {
        const [r] = await task.lastRuns();
        if (r === undefined) return undefined;
        return (await r.logs()).some((l) => l.line.startsWith('pid ')) ? r : undefined;
      });
      const runLogs = await run.logs();
      const title = runLogs.find((l) => l.line.startsWith('pid '))?.line.slice(4) ?? '';
      expect(processesTitled(title)).toHaveLength(1);
      expect(runLogs.some((l) => l.line === 'token *****')).toBe(true);
      const token = Buffer.from(
        runLogs.find((l) => l.line.startsWith('token64 '))?.line.slice(8) ?? '',
        'base64',
      ).toString();
      expect(token.startsWith('qk_')).toBe(true);
      // The run's working directory is outside the home: `../..` does not lead to its secrets.
      const cwd = runLogs.find((l) => l.line.startsWith('cwd '))?.line.slice(4) ?? '';
      expect(cwd).not.toBe('');
      expect(cwd.startsWith(first.home)).toBe(false);
      const asRun = (url: string): Promise<Response> =>
        fetch(`${url}/v1/tasks/${task.id}`, { headers: { authorization: `Bearer ${token}` } });
      expect((await asRun(first.url)).status).toBe(200);
      await first.kill();
      const second = await startTestServer({ home: first.home });
      try {
        const c2 = second.client();
        const after = await (await c2.getTask(task.id)).lastRuns();
        expect(after[0]?.status).toBe('failure');
        expect(after[0]?.reason).toBe('lost: the server stopped while the run was active');
        const logs = await after[0]!.logs();
        expect(logs.at(-1)?.line).toBe(
          'quoll: run finished: failure (lost: the server stopped while the run was active)',
        );
        await waitFor(
          'the orphaned run process to be killed',
          async () => (processesTitled(title).length > 0 ? undefined : true),
          5_000,
        );
        // The lost run's token was never revoked by the dead server: the new one revokes it.
        expect((await asRun(second.url)).status).toBe(401);
      } finally {
        await second.stop();
      }
    } finally {
      await first.kill();
      await first.cleanup();
    }
  });
});

describe('following logs across a shutdown', () => {
  it('followLogs() throws shutting_down when the server stops before the run finished', async () => {
    const own = await startTestServer();
    try {
      const c = own.client();
      const orchestration = await readyOrchestration(c, 'long', { 'main.mjs': SLEEPER });
      const task = await orchestration.runOnce({ name: 'followed' });
      const run = await waitFor('a run', async () => (await task.lastRuns())[0]);
      const seen: string[] = [];
      const following = (async () => {
        for await (const line of run.followLogs()) {
          seen.push(line.line);
          if (line.line.startsWith('pid ')) void own.stop();
        }
      })();
      await expect(following).rejects.toMatchObject({ code: 'shutting_down' });
      expect(seen.some((l) => l.startsWith('pid '))).toBe(true);
    } finally {
      await own.stop();
      await own.cleanup();
    }
  });
});

// Last: the every-minute schedule's first tick (created in beforeAll) comes up to a minute after
// its creation, and waiting for it here, after the other blocks, overlaps that minute with them.
describe('continuous and scheduled tasks', () => {
  it('a continuous task restarts its run after it exits, until killed', async () => {
    const quick = await readyOrchestration(client, 'quick', {
      'main.mjs': "console.log('started ' + process.env.QUOLL_TASK_RUN_ID);\n",
    });
    const task = await quick.runContinuously({ name: 'keeps going' });
    expect(task.type).toBe('Continuous Run');
    const runs = await waitFor('a second run', async () => {
      const r = await task.lastRuns();
      return r.length >= 2 ? r : undefined;
    });
    expect(runs[1]?.status).toBe('success');
    await task.kill();
    await waitFor('killed', async () => ((await task.status()) === 'killed' ? true : undefined));
    const count = (await task.lastRuns()).length;
    await new Promise((r) => setTimeout(r, 1_500)); // longer than the first restart delay
    expect(await task.lastRuns()).toHaveLength(count);
  });

  it('an invalid schedule is a ValidationError and creates no task', async () => {
    const before = (await client.listTasks({ killed: true })).length;
    await expect(sleeper.runScheduled({ name: 'bad', schedule: 'every minute' })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(sleeper.runScheduled({ name: 'bad', schedule: '61 * * * *' })).rejects.toMatchObject({
      code: 'invalid_schedule',
    });
    await expect(
      sleeper.runScheduled({ name: 'bad', schedule: '* * * * *', timezone: 'Mars/Olympus' }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(await client.listTasks({ killed: true })).toHaveLength(before);
  });

  it('"*/1, *, *, *, *" starts a run within 70 s; the schedule killed before that tick never runs', async () => {
    expect(everyMinute.schedule).toBe('*/1 * * * *');
    expect(everyMinute.type).toBe('Scheduled Run');
    const run = await waitFor(
      'the first scheduled run',
      async () => (await everyMinute.lastRuns())[0],
      70_000,
    );
    expect(run.tick).toMatch(/:00\.000Z$/);
    await waitFor('killed schedule', async () =>
      (await killedSchedule.status()) === 'killed' ? true : undefined,
    );
    expect(await killedSchedule.lastRuns()).toHaveLength(0);
    expect(await everyMinute.kill()).toBe('pending_kill');
  }, 90_000);
});
