import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

/** The package's export map as consumers meet it (through the workspace link to the built package). */
const require = createRequire(import.meta.url);

type Entry = {
  Client: new (options?: Record<string, unknown>) => { url: string; authHeader(): Record<string, string> };
  nodePlatform?: { name: string };
  QuollError: new (...args: never[]) => Error;
};

describe('@quoll/client entry points', () => {
  it('import in Node resolves to the Node entry: new Client() reads QUOLL_URL/QUOLL_TOKEN', async () => {
    const sdk = (await import('@quoll/client')) as unknown as Entry;
    const node = (await import('@quoll/client/node')) as unknown as Entry;
    expect(sdk.Client).toBe(node.Client);
    expect(sdk.nodePlatform?.name).toBe('node');
    const client = new sdk.Client({ env: { QUOLL_URL: 'http://127.0.0.1:1', QUOLL_TOKEN: 't' } });
    expect(client.url).toBe('http://127.0.0.1:1');
    expect(client.authHeader()).toEqual({ Authorization: 'Bearer t' });
  });

  it('require() gets the CommonJS copy of the same API', () => {
    const sdk = require('@quoll/client') as Entry & { arrow: { tableFromIPC: unknown } };
    expect(require.resolve('@quoll/client')).toMatch(/dist[/\\]cjs[/\\]node[/\\]index\.js$/);
    expect(sdk.nodePlatform?.name).toBe('node');
    expect(typeof sdk.arrow.tableFromIPC).toBe('function');
    const client = new sdk.Client({ env: { QUOLL_URL: 'http://127.0.0.1:2', QUOLL_TOKEN: 'c' } });
    expect(client.url).toBe('http://127.0.0.1:2');
    const wire = require('@quoll/client/wire') as { ERROR_CODES: Record<string, unknown> };
    expect(Object.keys(wire.ERROR_CODES).length).toBeGreaterThan(10);
  });

  it('the root entry without the node condition never reads files or the environment', async () => {
    const root = (await import('../index.js')) as unknown as Entry;
    expect(root.nodePlatform).toBeUndefined();
    // Outside a page there is no origin to default to: the error says what to pass.
    expect(() => new root.Client({ env: { QUOLL_URL: 'http://x', QUOLL_TOKEN: 't' } })).toThrow(
      /pass new Client\(\{ url, token \}\)/,
    );
    expect(new root.Client({ url: 'http://h:1' }).authHeader()).toEqual({});
  });

  it("the errors and format entries hold the root entry's own classes and functions", async () => {
    const sdk = await import('@quoll/client');
    const errors = await import('@quoll/client/errors');
    const format = await import('@quoll/client/format');
    // One module instance: an error thrown by the Client is instanceof the light entry's class.
    expect(errors.QuollError).toBe(sdk.QuollError);
    expect(errors.ValidationError).toBe(sdk.ValidationError);
    expect(format.renderTable).toBe(sdk.renderTable);
    expect(format.renderFields([['name', 'x']])).toBe(sdk.renderFields([['name', 'x']]));
    const cjsErrors = require('@quoll/client/errors') as { QuollError: unknown };
    expect(require.resolve('@quoll/client/errors')).toMatch(/dist[/\\]cjs[/\\]errors[/\\]index\.js$/);
    expect(cjsErrors.QuollError).toBe((require('@quoll/client') as Entry).QuollError);
  });
});
