import { chmod, rm } from 'node:fs/promises';
import net from 'node:net';

/** A Unix socket on the host that forwards every connection to the API's TCP port. */
export interface ApiForwarder {
  readonly socket: string;
  close(): Promise<void>;
}

/**
 * Listens on the Unix socket `socket` (mode 0666: the sandboxed task user must connect) and
 * pipes each connection to `target()` (the API's host and port, read per connection).
 * Sandboxes with a network of their own reach the API only through it.
 */
export async function startApiForwarder(
  socket: string,
  target: () => { host: string; port: number },
): Promise<ApiForwarder> {
  await rm(socket, { force: true });
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const { host, port } = target();
    const upstream = net.connect(port, host);
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  await chmod(socket, 0o666);
  return {
    socket,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socket, { force: true });
    },
  };
}
