import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * How the server sends the console's files: hashed assets immutable for a year, index.html
 * revalidated by ETag (304), brotli or gzip as the build compressed them when the browser asks,
 * the plain file otherwise. Raw HTTP (fetch would decompress and hide the encoding).
 */

const CONSOLE = new URL('../../packages/quoll/console/', import.meta.url);
let server: TestServer;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(path: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The entry script index.html loads (the build names it by its hash). */
function entryScript(): string {
  const html = readFileSync(new URL('index.html', CONSOLE), 'utf8');
  const src = /<script type="module"[^>]* src="([^"]+)"/.exec(html)?.[1];
  expect(src, 'index.html loads one module script').toBeDefined();
  return src!;
}

beforeAll(async () => {
  expect(existsSync(new URL('index.html', CONSOLE)), 'npm run build builds the console').toBe(true);
  server = await startTestServer();
});

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe('console assets', () => {
  it('a percent-encoded API path is no console path: without a token it is refused as its plain spelling is', async () => {
    for (const path of ['/%76%31/openapi.json', '/%76%32', '/%76%31/workspaces', '/v%31/openapi.json']) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(res.body.toString(), path).toContain('Missing bearer token');
    }
    // With a token the router's decoding still reaches the route.
    const withToken = await get('/%76%31/openapi.json', { authorization: `Bearer ${server.token}` });
    expect(withToken.status).toBe(200);
    expect((JSON.parse(withToken.body.toString()) as { openapi: string }).openapi).toMatch(/^3\./);
    // What is public stays public, however it is spelt; an encoded API path that no route
    // answers is refused like its plain spelling, not served the console page.
    expect((await get('/%76%31/health')).status).toBe(200);
    expect((await get('/workspaces')).status).toBe(200);
    expect((await get('/%76%31/no-such-route')).status).toBe((await get('/v1/no-such-route')).status);
  });

  it('sends a hashed asset immutable, as brotli or gzip when asked (the built bytes either way), plain otherwise', async () => {
    const path = entryScript();
    const file = readFileSync(new URL(`.${path}`, CONSOLE));
    const br = await get(path, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.status).toBe(200);
    expect(br.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('accept-encoding');
    expect(br.body.length).toBeLessThan(file.length);
    expect(brotliDecompressSync(br.body).equals(file)).toBe(true);

    const gz = await get(path, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(file)).toBe(true);

    const plain = await get(path);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(file)).toBe(true);
    expect(plain.headers.etag).toBe(br.headers.etag);
  });

  it('revalidates index.html (every page path) by ETag: 304 with no body for the same, 200 otherwise', async () => {
    const first = await get('/pipelines/1/somepipe');
    expect(first.status).toBe(200);
    expect(first.headers['cache-control']).toBe('no-cache');
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.body.toString()).toContain('<div id="app">');

    const again = await get('/', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const listed = await get('/tasks', { 'if-none-match': `"other", ${etag}` });
    expect(listed.status).toBe(304);

    const stale = await get('/', { 'if-none-match': '"not-this-one"' });
    expect(stale.status).toBe(200);
    expect(stale.body.toString()).toContain('<div id="app">');
  });
});
