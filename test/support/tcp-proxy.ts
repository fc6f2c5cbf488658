import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP pass-through to a server (PostgreSQL in the tests) that the test can cut and restore —
 * a database outage on demand — and that can hold new connections for `delayMs` before
 * passing them on (a slow network while a connection is being made), or freeze the open
 * connections without closing them (a half-open outage).
 */
export class TcpProxy {
  #server: Server | null = null;
  readonly sockets = new Set<Socket>();
  /** Connections {@link TcpProxy.stall} froze (still open; `cut()` drops them). */
  readonly stalled = new Set<Socket>();
  accepted = 0;
  delayMs = 0;
  port = 0;

  constructor(private readonly target: URL) {}

  async open(port = 0): Promise<void> {
    const server = createServer((client) => {
      this.accepted++;
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => client.destroy());
      client.pause();
      setTimeout(() => {
        if (client.destroyed) return;
        const upstream = connect(Number(this.target.port || 5432), this.target.hostname);
        this.sockets.add(upstream);
        upstream.on('close', () => {
          this.sockets.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      }, this.delayMs);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const address = server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : port;
    this.#server = server;
  }

  /**
   * A half-open outage: every open connection stops carrying bytes either way, but neither end
   * is closed (no FIN, no reset), as when the database's host vanished from the network. New
   * connections still pass.
   */
  stall(): void {
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
      this.stalled.add(s);
    }
  }

  /** Refuses new connections and drops every open one; `open(port)` restores it. */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
