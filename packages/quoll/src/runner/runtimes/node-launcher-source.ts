import { decodeLaunchMessage } from '../launch-protocol.js';

/**
 * The Node launcher a warm process runs: it waits for one launch-protocol line on stdin,
 * checks it with the same decoder the server's side is typed by, then becomes that run —
 * working directory, environment and `process.argv` as a cold `node <entry>` would have
 * them — and imports the entry. Stdin ending before a message arrives (the server went away)
 * ends the process quietly; a message it cannot read ends it with exit code 70.
 */
export const NODE_LAUNCHER_SOURCE = `// quoll warm-process launcher for Node (generated; see runner/runtimes/node-launcher-source.ts)
import { readSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const decodeLaunchMessage = ${decodeLaunchMessage.toString()};
// The line, read with blocking read(2) calls on fd 0: a waiting process has nothing else to do,
// and no stdin stream is built (that costs every run a few modules' start-up) nor left open.
const line = (() => {
  const chunks = [];
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      // A non-blocking stdin (not what the server gives): wait a little and read again.
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    // Stdin ended before a message (the server went away): end quietly.
    if (n === 0) process.exit(0);
    const nl = buf.subarray(0, n).indexOf(10);
    chunks.push(Buffer.from(buf.subarray(0, nl < 0 ? n : nl)));
    if (nl >= 0) return Buffer.concat(chunks).toString('utf8');
  }
})();
let job;
try {
  job = decodeLaunchMessage(line);
} catch (err) {
  process.stderr.write('quoll launcher: ' + (err instanceof Error ? err.message : String(err)) + '\\n');
  process.exit(70);
}
process.chdir(job.cwd);
for (const [key, value] of Object.entries(job.env)) process.env[key] = value;
process.argv.splice(1, process.argv.length - 1, job.entry, ...job.argv);
await import(pathToFileURL(job.entry).href);
`;
