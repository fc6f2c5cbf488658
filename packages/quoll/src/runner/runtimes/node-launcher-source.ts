import { decodeLaunchMessage } from '../launch-protocol.js';

/**
 * The Node launcher a warm process runs: it waits for one launch-protocol line on stdin,
 * checks it with the same decoder the server's side is typed by, then becomes that run —
 * working directory, environment and `process.argv` as a cold `node <entry>` would have
 * them — and imports the entry. Stdin ending before a message arrives (the server went away)
 * ends the process quietly; a message it cannot read ends it with exit code 70.
 */
export const NODE_LAUNCHER_SOURCE = `// quoll warm-process launcher for Node (generated; see runner/runtimes/node-launcher-source.ts)
import { pathToFileURL } from 'node:url';
const decodeLaunchMessage = ${decodeLaunchMessage.toString()};
const line = await new Promise((resolve) => {
  let buffered = '';
  const onEnd = () => process.exit(0);
  const onData = (chunk) => {
    buffered += chunk;
    const nl = buffered.indexOf('\\n');
    if (nl < 0) return;
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
    resolve(buffered.slice(0, nl));
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
});
// A cold run has no stdin either; and an open pipe would keep the process alive.
process.stdin.destroy();
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
