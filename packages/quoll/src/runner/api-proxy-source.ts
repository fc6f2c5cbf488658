/**
 * The script that serves the Quoll API inside a sandbox whose network is its own (loopback
 * only): it listens on `127.0.0.1:<port>` — the server's port, so `QUOLL_URL` keeps working —
 * forwards each connection to a Unix socket bound in from the host (where the server
 * forwards it to the API), then runs the command after `--` with the same stdio and exits
 * with its status. It ignores SIGTERM itself: the command gets it from its process group, and
 * the proxy ends when the command does.
 *
 * Usage: `node api-proxy.mjs <port> <socket> -- <command…>`
 */
export const API_PROXY_SOURCE = `// quoll API proxy for sandboxed runs (generated; see runner/api-proxy-source.ts)
import { spawn } from 'node:child_process';
import net from 'node:net';
import { constants } from 'node:os';
const [port, socket, separator, ...command] = process.argv.slice(2);
if (separator !== '--' || command.length === 0) {
  process.stderr.write('usage: api-proxy.mjs <port> <socket> -- <command...>\\n');
  process.exit(64);
}
const server = net.createServer((client) => {
  const upstream = net.connect(socket);
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(Number(port), '127.0.0.1', () => {
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);
  child.on('error', (err) => {
    process.stderr.write('quoll: cannot start ' + command[0] + ': ' + err.message + '\\n');
    process.exit(127);
  });
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
});
server.on('error', (err) => {
  process.stderr.write('quoll: the API proxy cannot listen on 127.0.0.1:' + port + ': ' + err.message + '\\n');
  process.exit(71);
});
`;
