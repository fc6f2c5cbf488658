// The seed tutorial ("Pipeline Orchestration Comprehensive Tutorial"), section by section, with
// Quoll's TypeScript SDK. `npm run example:seed` starts a fresh embedded server and a local file
// server, runs every section against them, prints tables shaped like the tutorial's, and stops both.
// Options: --summary <file> writes the key results as JSON (the e2e test reads it);
//          --skip-schedule leaves out the scheduled-task section (about 1–2 minutes).
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ZipFile } from 'yazl';
import { arrow, Client, NotFoundError, renderTable, type Pipeline, type Workspace } from '@quoll/client';
import { resolveServerConfig, startServer } from 'quoll';
import { hasSharedFixtures, SHARED_FIXTURES } from '../../test/support/shared-dir.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../../test/support/synthetic-models.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const argv = process.argv.slice(2);
const summaryPath = argv.includes('--summary') ? argv[argv.indexOf('--summary') + 1] : undefined;
const skipSchedule = argv.includes('--skip-schedule');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const section = (title: string): void => console.log(`\n## ${title}\n`);
const summary: Record<string, unknown> = {};

// -- the tutorial's model and data from the shared folder when present (../shared beside the
// repository, or QUOLL_SHARED_DIR, as the tests find it), else the project's own
const fixtures = SHARED_FIXTURES;
const useFixtures = hasSharedFixtures;
const work = await mkdtemp(join(tmpdir(), 'quoll-seed-'));
const modelFileName = join(work, 'rf_model.onnx');
const arrowFile = join(work, 'xtest-1k.arrow');
if (useFixtures) {
  await writeFile(modelFileName, await readFile(join(fixtures, 'rf_model.onnx')));
  await writeFile(arrowFile, await readFile(join(fixtures, 'xtest-1k.arrow')));
} else {
  await writeFile(modelFileName, makeTreeEnsembleRegressor({ features: 18, trees: 20, depth: 5 }));
  await writeFile(arrowFile, tableToIpcFile(makeArrowTensorTable(makeHouseRows(1000, 1), 18)));
}
summary.data = useFixtures ? 'fixtures' : 'generated';

// -- a fresh embedded Quoll and a local file server standing in for the GitHub URL
const server = await startServer(
  // Run directories inside the work folder too, so nothing is left behind in the temp dir.
  resolveServerConfig(
    { home: join(work, 'home'), port: 0, logLevel: 'warn' },
    { ...process.env, QUOLL_RUNS_DIR: process.env.QUOLL_RUNS_DIR ?? join(work, 'runs') },
    work,
  ),
);
const files: Server = createServer((req, res) => {
  if (req.url?.startsWith('/xtest-1k.arrow')) {
    void readFile(arrowFile).then((bytes) =>
      res.writeHead(200, { 'content-type': 'application/vnd.apache.arrow.file' }).end(bytes),
    );
  } else res.writeHead(404).end();
});
await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
const address = files.address();
const fileUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/xtest-1k.arrow?raw=true`;

/** A float32 value in its shortest round-trip form (718013.6875 → "718013.7"), as pyarrow prints it. */
function f32(v: number): string {
  for (let digits = 1; digits <= 9; digits++) {
    const text = v.toPrecision(digits);
    const n = Number(text);
    if (Math.fround(n) === v) return Number.isInteger(n) ? `${n}.0` : String(n);
  }
  return String(v);
}

/** Prints the first `n` rows of an inference result like the tutorial's DataFrame. */
function showHead(table: arrow.Table, n = 20): number[] {
  const time = table.getChild('time');
  const input = table.getChild('in.tensor');
  const out = table.getChild('out.variable');
  const fails = table.getChild('check_failures');
  const values: number[] = [];
  const rows: string[][] = [];
  for (let i = 0; i < Math.min(n, table.numRows); i++) {
    const v = Array.from(out?.get(i) as ArrayLike<number>);
    values.push(v[0] ?? NaN);
    rows.push([
      String(i),
      new Date(Number(time?.get(i))).toISOString().replace('T', ' ').replace('Z', ''),
      `[${Array.from(input?.get(i) as ArrayLike<number>, f32).join(', ')}]`,
      `[${v.map(f32).join(', ')}]`,
      String(fails?.get(i)),
    ]);
  }
  console.log(renderTable(['', 'time', 'in.tensor', 'out.variable', 'check_failures'], rows));
  return values;
}

try {
  const wl = new Client({ url: server.url, token: server.adminToken });

  section('Setting variables for later steps');
  const workspaceName = 'orchestrationworkspace';
  const pipelineName = 'orchestrationpipeline';
  const modelName = 'orchestrationmodel';
  const connectionName = 'houseprice_arrow_table';
  console.log({ workspaceName, pipelineName, modelName, modelFileName, connectionName });

  section('Helper Methods');
  async function getWorkspace(name: string): Promise<Workspace> {
    const found = (await wl.listWorkspaces()).find((ws) => ws.name === name);
    return found ?? wl.createWorkspace(name);
  }
  async function getPipeline(name: string): Promise<Pipeline> {
    try {
      return (await wl.pipelinesByName(name))[0] as Pipeline;
    } catch (err) {
      if (err instanceof NotFoundError) return wl.buildPipeline(name);
      throw err;
    }
  }

  section('Create the Workspace and Pipeline');
  const workspace = await getWorkspace(workspaceName);
  wl.setCurrentWorkspace(workspace);
  const pipeline = await getPipeline(pipelineName);

  section('Upload the Model and Deploy Pipeline');
  const housingModelControl = await (
    await wl.uploadModel(modelName, modelFileName)
  ).configure({ tensorFields: ['tensor'] });
  console.log(String(await pipeline.addModelStep(housingModelControl)));
  await pipeline.deploy();
  console.log(String(pipeline));

  section('Sample Inferences');
  const batchInferences = (await pipeline.inferFromFile(arrowFile)) as arrow.Table;
  summary.sampleInference = {
    rows: batchInferences.numRows,
    columns: batchInferences.schema.fields.map((f) => f.name),
    values: showHead(batchInferences),
  };

  section('Create Connection');
  console.log(String(await wl.createConnection(connectionName, 'HTTPFILE', { host: fileUrl })));

  section('List Data Connections');
  console.log(String(await wl.listConnections()));

  section('Add Connection to Workspace');
  await workspace.addConnection(connectionName);

  section('List Connections in a Workspace');
  console.log(String(await workspace.listConnections()));

  section('Get Connection');
  let connection = await wl.getConnection(connectionName);

  section('Connection Details');
  console.log(await connection.details());

  section('Using a Connection Example');
  await pipeline.deploy();
  const response = await fetch(String((await connection.details()).host), {
    headers: { Accept: 'application/vnd.apache.arrow.file' },
  });
  const arrowTable = arrow.tableFromIPC(new Uint8Array(await response.arrayBuffer()));
  const results = await pipeline.infer(arrowTable);
  summary.connectionInference = { rows: results.numRows, values: showHead(results) };

  section('Remove Connection from Workspace');
  await workspace.removeConnection(connectionName);
  console.log(String(await workspace.listConnections()));

  section('Delete Connection');
  await connection.deleteConnection();
  console.log(String(await wl.listConnections()));
  await pipeline.undeploy();

  section('Preparing the Wallaroo Instance (connection again, attached)');
  connection = await wl.createConnection(connectionName, 'HTTPFILE', { host: fileUrl });
  await workspace.addConnection(connectionName);

  section('Upload the Orchestration');
  const zipPath = join(work, 'remote_inference.zip');
  const zip = new ZipFile();
  zip.addBuffer(await readFile(join(here, 'main.ts')), 'main.ts');
  zip.end();
  const zipBytes: Buffer[] = [];
  for await (const chunk of zip.outputStream) zipBytes.push(chunk as Buffer);
  await writeFile(zipPath, Buffer.concat(zipBytes));
  const orchestration = await wl.uploadOrchestration({ path: zipPath }, { name: 'comprehensive sample' });

  section('Orchestration Status');
  let status: string;
  const seen: string[] = [];
  while ((status = await orchestration.status()) !== 'ready') {
    if (status === 'error')
      throw new Error(`packaging failed:\n${(await orchestration.packagingLogs()).join('\n')}`);
    if (seen.at(-1) !== status) console.log(status);
    seen.push(status);
    await sleep(100);
  }
  console.log(status);
  summary.packaging = { statuses: [...new Set([...seen, status])] };

  section('List Orchestrations');
  console.log(String(await wl.listOrchestrations()));

  section('Task Run Once');
  let taskStart = new Date();
  const task = await orchestration.runOnce({ name: 'house price run once task', jsonArgs: {} });
  console.log(String(task));

  section('Task Status');
  while ((await task.status()) !== 'started') await sleep(100);
  console.log(await task.status());
  // Instead of the tutorial's fixed minute of sleep: wait for the run to end.
  let [run] = await task.lastRuns();
  while (!run || run.status === 'running') {
    await sleep(200);
    [run] = await task.lastRuns();
  }
  console.log(String(await wl.listTasks()));

  section('Task Results');
  let taskEnd = new Date();
  console.log(taskEnd.toISOString());
  const runLogs = await run.logs();
  console.log(runLogs.map(String).join('\n'));
  const onceLogs = await pipeline.logs({ start: taskStart, end: taskEnd, arrow: true });
  console.log(`${onceLogs.numRows} inference log rows between task start and end`);
  summary.runOnce = {
    runStatus: run.status,
    logLines: runLogs.map((l) => l.line),
    inferenceLogRows: onceLogs.numRows,
  };

  if (!skipSchedule) {
    section('Scheduled Tasks');
    taskStart = new Date();
    const taskScheduled = await orchestration.runScheduled({
      name: 'schedule example',
      timeout: 600,
      schedule: '*/1, *, *, *, *',
      jsonArgs: {},
    });
    while ((await taskScheduled.status()) !== 'started') await sleep(100);
    console.log(String(taskScheduled));
    // The tutorial sleeps 90 s; here: until the first tick's run has finished (≤ about 70 s).
    let scheduledRuns = await taskScheduled.lastRuns();
    while (!scheduledRuns.some((r) => r.status !== 'running')) {
      await sleep(1000);
      scheduledRuns = await taskScheduled.lastRuns();
    }
    taskEnd = new Date();
    console.log(taskEnd.toISOString());
    const scheduledLogs = await pipeline.logs({ start: taskStart, end: taskEnd, arrow: true });
    console.log(`${scheduledLogs.numRows} inference log rows from the scheduled run(s)`);
    console.log(String(scheduledRuns[0]));
    console.log((await scheduledRuns[0]!.logs({ limit: 5 })).map(String).join('\n'));

    section('Kill a Task');
    console.log(await taskScheduled.kill());
    console.log(String(await wl.listTasks()));
    console.log(String(await wl.listTasks({ killed: true })));
    summary.scheduled = {
      runs: scheduledRuns.map((r) => r.status),
      inferenceLogRows: scheduledLogs.numRows,
      statusAfterKill: await taskScheduled.status(),
    };
  }

  section('Undeploy the Pipeline');
  await pipeline.undeploy();
  console.log((await pipeline.status()).status);
} finally {
  if (summaryPath) await writeFile(summaryPath, JSON.stringify(summary, null, 2));
  await server.close();
  files.close();
  await rm(work, { recursive: true, force: true });
}
