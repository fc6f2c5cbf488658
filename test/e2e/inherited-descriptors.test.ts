// A server started with a descriptor left open (`exec 200<>/root-only-file`, as `flock 200`
// or a supervisor does): no run — sandboxed or not — finds that file at any descriptor, so it
// can neither read nor overwrite it, and the server keeps its own.
import { closeSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lastRunEnded, readyOrchestration, waitFor } from '../support/orchestration-helpers.js';
import { probeSandbox } from '../support/probe-sandbox.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const dir = mkdtempSync(join(tmpdir(), 'quoll-inherited-fds-'));
const hostFile = join(dir, 'host-only.txt');
writeFileSync(hostFile, 'host secret\n', { mode: 0o600 });
const probe = await probeSandbox('the sandboxed case');

/** Lists its descriptors and what they are, then tries the inherited one by number. */
const PROBE = `
import { readdirSync, readlinkSync, readFileSync, writeFileSync } from 'node:fs';
const fds = {};
for (const n of readdirSync('/proc/self/fd')) { try { fds[n] = readlinkSync('/proc/self/fd/' + n); } catch {} }
let read; try { read = readFileSync('/proc/self/fd/200', 'utf8'); } catch (e) { read = 'refused: ' + e.code; }
let wrote; try { writeFileSync('/proc/self/fd/200', 'overwritten by a run\\n'); wrote = 'written'; } catch (e) { wrote = 'refused: ' + e.code; }
console.log('REPORT ' + JSON.stringify({ fds, read, wrote }));
`;

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) {
    await s.stop();
    await s.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function reportOf(
  server: TestServer,
): Promise<{ fds: Record<string, string>; read: string; wrote: string }> {
  const orchestration = await readyOrchestration(server.client(), 'fds', { 'main.mjs': PROBE });
  const task = await orchestration.runOnce({ name: 'fds', timeout: 60 });
  const run = await lastRunEnded(task, 90_000);
  const logs = await run.logs();
  expect(run.status, logs.map((l) => l.line).join('\n')).toBe('success');
  const line = logs.find((l) => l.line.startsWith('REPORT '))?.line ?? 'REPORT {}';
  return JSON.parse(line.slice('REPORT '.length)) as {
    fds: Record<string, string>;
    read: string;
    wrote: string;
  };
}

describe.each([
  { name: 'sandboxed', sandbox: 'bubblewrap', skip: !probe.status.sandboxed },
  { name: 'unsandboxed', sandbox: 'off', skip: false },
])('a $name run of a server holding an inherited descriptor', ({ sandbox, skip }) => {
  it.skipIf(skip)(
    'never reaches the file behind it',
    async () => {
      const fd = openSync(hostFile, 'r+');
      let server: TestServer;
      try {
        server = await startTestServer({ env: { QUOLL_SANDBOX: sandbox }, inheritFds: { 200: fd } });
      } finally {
        closeSync(fd);
      }
      servers.push(server);
      // Both share the host network (the default): the server says what that lets a run reach.
      await waitFor('the run isolation lines', async () =>
        server.output().includes('task runs:') ? true : undefined,
      );
      // The server itself holds it (the test would prove nothing otherwise).
      expect(readlinkSync(`/proc/${String(server.process.pid)}/fd/200`)).toBe(hostFile);
      const report = await reportOf(server);
      expect(server.output()).toContain("warning: task runs share this host's network");
      expect(Object.values(report.fds)).not.toContain(hostFile);
      expect(report.read).not.toContain('host secret');
      expect(readFileSync(hostFile, 'utf8')).toBe('host secret\n');
      // What stands at 200, if anything, is /dev/null.
      if (report.fds['200'] !== undefined) expect(report.fds['200']).toBe('/dev/null');
    },
    150_000,
  );
});
