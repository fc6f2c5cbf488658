// The cost of forwarding on a cluster, in one run (interleaved, median of 5): infer over HTTP,
// Arrow IPC batch 1000, c=1, sent to the node holding the pipeline's one replica (the
// reference) and to a --no-inference node of the same cluster, which forwards it (streamed)
// to that node. Needs PostgreSQL (QUOLL_TEST_PG_URL, default
// postgres://postgres@127.0.0.1:5432/postgres); creates and drops its own database.
// Run: npm run bench -- replicas
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@quoll/client';
import { createTestDatabase } from '../test/support/postgres-test-database.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { median, printTable, waitFor, writeResults } from './support.js';

const WIDTH = 18;
/** Rounds of 3 s per target, interleaved: this machine's load makes single rounds noisy. */
const ROUNDS = 5;
const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
const db = await createTestDatabase();
const nodes: { child: ChildProcess; url: string; home: string; token: string }[] = [];
const results: Record<string, unknown> = {};
try {
  for (const extra of [[], ['--no-inference']]) {
    const home = mkdtempSync(join(tmpdir(), 'quoll-replbench-home-'));
    // Every node of a cluster needs the same master key.
    if (nodes[0] !== undefined) copyFileSync(join(nodes[0].home, 'master.key'), join(home, 'master.key'));
    const child = spawn(
      process.execPath,
      [cli, 'server', '--home', home, '--port', '0', '--log-level', 'warn', '--database', db.url, ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const url = (await waitFor(child, /listening on (http:\S+)/))[1] ?? '';
    const token = (JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string })
      .token;
    nodes.push({ child, url, home, token });
  }
  const [holder, forwarder] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  const client = new Client({ url: holder.url, token: holder.token });
  const m = await (
    await client.uploadModel('bench', makeTreeEnsembleRegressor({ seed: 1 }))
  ).configure({
    tensorFields: ['tensor'],
  });
  const p = await client.buildPipeline('bench');
  await p.addModelStep(m);
  await p.deploy({ config: { replicas: 1 } });
  const path = new URL(p.url()).pathname;
  const body = tableToIpcFile(makeArrowTensorTable(makeHouseRows(1000, 1), WIDTH));
  const targets = [
    { name: 'direct (replica node)', url: `${holder.url}${path}`, token: holder.token },
    { name: 'forwarded (--no-inference node)', url: `${forwarder.url}${path}`, token: forwarder.token },
  ];
  const rate: Record<string, number[]> = {};
  const servedBy = new Set<string>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      const post = async (): Promise<void> => {
        const res = await fetch(t.url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${t.token}`,
            'content-type': 'application/vnd.apache.arrow.file',
            accept: 'application/vnd.apache.arrow.file',
          },
          body,
        });
        if (res.status !== 200) throw new Error(`${t.name}: HTTP ${res.status} ${await res.text()}`);
        servedBy.add(res.headers.get('x-quoll-served-by') ?? '?');
        await res.arrayBuffer();
      };
      for (let i = 0; i < 20; i++) await post();
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < 3_000) {
        await post();
        n++;
      }
      (rate[t.name] ??= []).push((n * 1000) / ((performance.now() - start) / 1000));
    }
  }
  if (servedBy.size !== 1) throw new Error(`answers came from ${[...servedBy].join(', ')}, not one replica`);
  const direct = median(rate[targets[0]!.name] ?? []);
  const forwarded = median(rate[targets[1]!.name] ?? []);
  results.inferArrow1000 = {
    directRowsPerSec: direct,
    forwardedRowsPerSec: forwarded,
    ratio: forwarded / direct,
  };
  printTable(
    ['measure', 'direct', 'forwarded', 'forwarded / direct'],
    [
      [
        'infer Arrow 1000, c=1 (rows/s)',
        Math.round(direct),
        Math.round(forwarded),
        (forwarded / direct).toFixed(2),
      ],
    ],
  );
} finally {
  for (const n of nodes) {
    n.child.kill('SIGTERM');
    await new Promise((resolve) => n.child.once('exit', resolve));
    rmSync(n.home, { recursive: true, force: true });
  }
  await db.drop();
}
writeResults('replicas', results);
