import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from '../support/launch-chromium.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * `@quoll/client` unmodified in a browser bundle: esbuild bundles the package by its name for
 * `platform: 'browser'` (so the export conditions choose the browser-safe root) and the bundle
 * runs the seed flow in a real Chromium against a real server.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const inCi = process.env.CI === 'true';
if (!hasChromium && !inCi) {
  console.warn(`skipped: no Chromium at ${CHROMIUM} (set QUOLL_TEST_CHROMIUM); the bundle checks still run`);
}

/** What the page runs: the seed flow through the SDK, with the page's origin as the server. */
const PAGE_SCRIPT = `
import { Client, NotFoundError, arrow } from '@quoll/client';

window.runQuoll = async ({ token, model }) => {
  const client = new Client({ token }); // url: the page's origin
  const ws = await client.getWorkspace('browserws', { createIfNotExist: true });
  client.setCurrentWorkspace(ws);
  const version = await client.uploadModel('scale', new Blob([new Uint8Array(model)]), { fileName: 'scale.onnx' });
  const pipeline = await client.buildPipeline('browserpipe');
  await pipeline.clear();
  await pipeline.addModelStep(version);
  await pipeline.deploy();
  const records = await pipeline.infer([{ tensor: [1, 2] }, { tensor: [3, 4] }]);
  const type = new arrow.FixedSizeList(2, new arrow.Field('item', new arrow.Float32(), false));
  const input = new arrow.Table({ tensor: arrow.vectorFromArray([[5, 6]], type) });
  const table = await pipeline.infer(input);
  let missing = null;
  try {
    await client.getPipeline('no-such-pipeline');
  } catch (err) {
    missing = { isNotFound: err instanceof NotFoundError, code: err.code };
  }
  const listed = String(await client.listOrchestrations());
  const printedModel = String(version);
  await pipeline.undeploy();
  return {
    origin: client.url,
    records: records.map((r) => r['out.scaled']),
    tableOut: Array.from(table.getChild('out.scaled').get(0)),
    missing,
    listed,
    printedModel,
  };
};
`;

async function bundle(): Promise<{ code: string; metafile: Metafile }> {
  const result = await build({
    stdin: { contents: PAGE_SCRIPT, resolveDir: REPO, sourcefile: 'page.js', loader: 'js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new Error('esbuild wrote nothing');
  return { code: out.text, metafile: result.metafile };
}

describe('@quoll/client in a browser bundle', () => {
  it('bundles for the browser from the root entry, with no Node built-ins and none of the Node entry', async () => {
    const { metafile } = await bundle();
    const inputs = Object.keys(metafile.inputs);
    const client = inputs.filter((p) => p.includes('packages/client/'));
    expect(client.length).toBeGreaterThan(10);
    // The root entry, not the Node one and not the CommonJS copy.
    expect(client).toContain('packages/client/dist/index.js');
    expect(client.filter((p) => p.includes('/dist/node/') || p.includes('/dist/cjs/'))).toEqual([]);
    expect(inputs.filter((p) => p.startsWith('node:') || /(^|\/)(fs|path|stream|util)$/.test(p))).toEqual([]);
    // apache-arrow's browser build, through its own "browser" mapping.
    expect(inputs.some((p) => p.includes('apache-arrow/') && p.endsWith('.mjs'))).toBe(true);
    const imports = Object.values(metafile.outputs).flatMap((o) => o.imports);
    expect(imports.filter((i) => i.external)).toEqual([]);
  });

  describe.skipIf(!hasChromium && !inCi)('in Chromium', () => {
    let server: TestServer;
    let close: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      server = await startTestServer();
    });

    afterAll(async () => {
      await close?.();
      await server.stop();
      await server.cleanup();
    });

    it('runs the seed flow from the page: Blob upload, deploy, records and Arrow inference, typed errors, printing', async () => {
      const { code } = await bundle();
      const browser = await launchChromium();
      close = () => browser.close();
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      // The page is served at the server's own origin (as the console is), so the SDK's
      // default URL is that origin and no CORS is involved.
      const pageUrl = `${server.url}/__browser-sdk-test`;
      await page.route(pageUrl, (route) =>
        route.fulfill({
          contentType: 'text/html',
          body: `<!doctype html><script type="module">${code.replace(/<\/script/gi, '<\\/script')}</script>`,
        }),
      );
      await page.goto(pageUrl);
      await page.waitForFunction(() => 'runQuoll' in globalThis);
      const model = Array.from(makeScaleModel({ width: 2, factor: 2 }));
      const result = await page.evaluate(
        (args) => (globalThis as unknown as { runQuoll: (a: unknown) => Promise<unknown> }).runQuoll(args),
        { token: server.token, model },
      );
      expect(errors).toEqual([]);
      expect(result).toMatchObject({
        origin: server.url,
        records: [
          [2, 4],
          [6, 8],
        ],
        tableOut: [10, 12],
        missing: { isNotFound: true, code: 'pipeline_not_found' },
        listed: '(no orchestrations)',
      });
      expect((result as { printedModel: string }).printedModel).toMatch(/^name\s+scale$/m);
    });
  });
});
