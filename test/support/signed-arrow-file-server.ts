import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const ARROW_FILE = 'application/vnd.apache.arrow.file';

/** A local stand-in for a signed object-store URL (what an HTTPFILE connection points at). */
export interface SignedArrowFileServer {
  /** `http://127.0.0.1:<port>/data/xtest.arrow?sig=<secret>` */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `bytes` as an Arrow file at {@link SignedArrowFileServer.url} only: another path or
 * signature is answered 403, a request that does not ask for `application/vnd.apache.arrow.file`
 * 406, so a test sees its connection's details and headers used exactly.
 *
 * @example const files = await signedArrowFileServer(tableToIpcFile(table), SECRET);
 */
export async function signedArrowFileServer(
  bytes: Uint8Array,
  secret: string,
): Promise<SignedArrowFileServer> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/data/xtest.arrow' || url.searchParams.get('sig') !== secret) {
      res.writeHead(403).end('bad signature');
      return;
    }
    if (req.headers.accept !== ARROW_FILE) {
      res.writeHead(406).end(`ask for ${ARROW_FILE}`);
      return;
    }
    res.writeHead(200, { 'content-type': ARROW_FILE }).end(Buffer.from(bytes));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/data/xtest.arrow?sig=${secret}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
