// The orchestration of the seed tutorial ("remote_inference/main.py"), in TypeScript.
// It runs inside a Quoll task: `new Client()` needs no arguments there.
import { arrow, Client, NotFoundError, taskArgs, type Pipeline, type Workspace } from '@quoll/client';

const client = new Client();

// Setting variables for later steps (overridable with the task's jsonArgs)
const args = taskArgs<{ workspaceName?: string; pipelineName?: string; connectionName?: string }>();
const workspaceName = args.workspaceName ?? 'orchestrationworkspace';
const pipelineName = args.pipelineName ?? 'orchestrationpipeline';
const connectionName = args.connectionName ?? 'houseprice_arrow_table';

// helper methods to retrieve workspaces and pipelines
async function getWorkspace(name: string): Promise<Workspace> {
  const found = (await client.listWorkspaces()).find((ws) => ws.name === name);
  return found ?? client.createWorkspace(name);
}

async function getPipeline(name: string): Promise<Pipeline> {
  try {
    const [pipeline] = await client.pipelinesByName(name);
    if (pipeline) return pipeline;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  return client.buildPipeline(name);
}

console.log(`Getting the workspace ${workspaceName}`);
const workspace = await getWorkspace(workspaceName);
client.setCurrentWorkspace(workspace);

console.log(`Getting the pipeline ${pipelineName}`);
const pipeline = await getPipeline(pipelineName);
await pipeline.deploy();

// Get the connection
const inferenceSourceConnection = await client.getConnection(connectionName);

console.log('Getting arrow table file');
// Retrieve the file, asking for an Apache Arrow table
const details = await inferenceSourceConnection.details();
const response = await fetch(String(details.host), {
  headers: { Accept: 'application/vnd.apache.arrow.file' },
});
const arrowTable = arrow.tableFromIPC(new Uint8Array(await response.arrayBuffer()));

console.log('Inference time.  Displaying results after.');
// Perform the inference
const result = await pipeline.infer(arrowTable);
const rows = result.toArray().slice(0, 5);
for (const [i, row] of rows.entries()) {
  const r = (row as { toJSON(): Record<string, unknown> }).toJSON();
  console.log(
    i,
    new Date(Number(r.time)).toISOString(),
    `[${Array.from(r['out.variable'] as ArrayLike<number>).join(', ')}]`,
    r.check_failures,
  );
}
console.log(`[${result.numRows} rows x ${result.numCols} columns]`);

await pipeline.undeploy();
