// Where a cluster deploy's time goes: (1) an embedded server deploys and undeploys a small
// pipeline ROUNDS times (wall time and the server's CPU for each deploy), (2) three nodes on one
// PostgreSQL database deploy it through A with `replicas: 1` (one node loads) and with every
// node serving (three load at once, on this machine's cores), alternately, waiting for every
// replica (the SDK's default).
// Run: ROUNDS=3 node --import tsx bench/deploy-load-probe.ts
import { chmod, copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../test/support/postgres-test-database.js';
import { makeHouseRows } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { startTestServer, type TestServer } from '../test/support/test-server.js';
import { cpuSeconds } from './support.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const rows = [{ tensor: Array.from(makeHouseRows(1, 3)) }];

async function pipelineOn(server: TestServer) {
  const model = await server.client().uploadModel('house', makeTreeEnsembleRegressor({ seed: 3 }));
  const pipeline = await server.client().buildPipeline('spread');
  await pipeline.addModelStep(model);
  return pipeline;
}

const embedded = await startTestServer({});
try {
  const pipeline = await pipelineOn(embedded);
  for (let i = 0; i < ROUNDS; i++) {
    const cpu = cpuSeconds(embedded.process);
    let t = performance.now();
    await pipeline.deploy();
    const deployMs = performance.now() - t;
    const deployCpuMs = (cpuSeconds(embedded.process) - cpu) * 1000;
    await pipeline.infer(rows);
    t = performance.now();
    await pipeline.undeploy();
    console.log(
      `embedded: deploy ${deployMs.toFixed(0)} ms (server CPU ${deployCpuMs.toFixed(0)} ms), undeploy ${(performance.now() - t).toFixed(0)} ms`,
    );
  }
} finally {
  await embedded.stop();
  await embedded.cleanup();
}

const db = await createTestDatabase();
const nodes: TestServer[] = [];
try {
  const start = async (home: string | undefined, id: string): Promise<TestServer> => {
    const server = await startTestServer({
      ...(home === undefined ? {} : { home }),
      args: ['--database', db.url],
      env: { QUOLL_NODE_ID: id },
    });
    nodes.push(server);
    return server;
  };
  const withKeyOf = async (server: TestServer): Promise<string> => {
    const home = await mkdtemp(join(tmpdir(), 'quoll-deploy-probe-'));
    await copyFile(join(server.home, 'master.key'), join(home, 'master.key'));
    await chmod(join(home, 'master.key'), 0o600);
    return home;
  };
  const a = await start(undefined, 'probe-a');
  await Promise.all([start(await withKeyOf(a), 'probe-b'), start(await withKeyOf(a), 'probe-c')]);
  const pipeline = await pipelineOn(a);
  for (let i = 0; i < ROUNDS; i++) {
    for (const config of [{ replicas: 1 }, {}]) {
      const cpu = nodes.map((n) => cpuSeconds(n.process));
      let t = performance.now();
      await pipeline.deploy({ config });
      const deployMs = performance.now() - t;
      const cpuMs = nodes.map((n, j) => ((cpuSeconds(n.process) - (cpu[j] ?? 0)) * 1000).toFixed(0));
      t = performance.now();
      await pipeline.undeploy();
      console.log(
        `cluster, ${config.replicas === 1 ? 'replicas: 1' : 'every node'}: deploy through A ${deployMs.toFixed(0)} ms (CPU of A, B, C ${cpuMs.join(', ')} ms), undeploy ${(performance.now() - t).toFixed(0)} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
} finally {
  for (const server of nodes) {
    await server.stop();
    await server.cleanup();
  }
  await db.drop();
}
