import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleSignInLink } from '../support/console-link.js';
import { CHROMIUM, hasChromium, launchChromium } from '../support/launch-chromium.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../support/shared-fixtures.js';
import { makeTreeEnsembleRegressor } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

/**
 * The web console in a real Chromium against a real server: sign in with the one-time link,
 * the seed flow through the UI, connections, an orchestration run followed live, a schedule
 * killed, and a scoped token that sees nothing of another workspace. Screenshots of each page
 * go to a temporary directory (printed), never into the repository.
 */

const inCi = process.env.CI === 'true';
const CONSOLE_BUILT = existsSync(new URL('../../packages/quoll/console/index.html', import.meta.url));
if (!hasChromium && !inCi) console.warn(`skipped: no Chromium at ${CHROMIUM} (set QUOLL_TEST_CHROMIUM)`);

/** Prints line 0, waits, then lines 1–4: the test sees line 0 before the rest exists. */
const MAIN = `
console.log('console line 0');
await new Promise((r) => setTimeout(r, 2500));
for (let i = 1; i < 5; i++) console.log('console line ' + i);
`;

let server: TestServer;
let browser: Browser;
let shots: string;
/** A record for "try it" and what its first output must read. */
let input: string;
let expected: RegExp;
let model: Buffer;
/** The deployed pipeline's page (for the dark-scheme pass). */
let pipelinePath: string;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

describe('the built console', () => {
  it('ships its JavaScript within 300 KB gzipped, and the server finds its index.html', () => {
    const assets = new URL('../../packages/quoll/console/assets/', import.meta.url);
    expect(CONSOLE_BUILT).toBe(true);
    const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThan(0);
    const gzipped = js.reduce((sum, f) => sum + gzipSync(readFileSync(new URL(f, assets))).length, 0);
    expect(gzipped).toBeLessThanOrEqual(300 * 1024);
  });
});

describe.skipIf(!hasChromium && !inCi)('the web console in Chromium', () => {
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    expect(CONSOLE_BUILT, 'npm run build builds the console into packages/quoll/console').toBe(true);
    server = await startTestServer();
    shots = await mkdtemp(join(tmpdir(), 'quoll-console-shots-'));
    console.log(`console screenshots: ${shots}`);
    if (hasSharedFixtures) {
      model = await readFile(`${SHARED_FIXTURES}rf_model.onnx`);
      input = JSON.stringify(JSON.parse(await readFile(`${SHARED_FIXTURES}xtest-1.df.json`, 'utf8')));
      expected = /718013\.\d/;
    } else {
      // The generated model's own number, from the API, is what the UI must show.
      model = Buffer.from(makeTreeEnsembleRegressor({ seed: 7 }));
      input = JSON.stringify([{ tensor: Array.from({ length: 18 }, (_, i) => i + 1) }]);
      const client = server.client();
      client.setCurrentWorkspace(await client.getWorkspace('console-reference', { createIfNotExist: true }));
      const ref = await client.buildPipeline('reference');
      await ref.addModelStep(await client.uploadModel('reference', new Uint8Array(model)));
      await ref.deploy();
      const [row] = (await ref.infer(JSON.parse(input) as Array<Record<string, number[]>>)) as Array<
        Record<string, number[]>
      >;
      await ref.undeploy();
      const v = row!['out.variable']![0]!;
      expected = new RegExp(String(Number(v.toPrecision(10))).replace('.', '\\.'));
    }
    browser = await launchChromium();
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
    page = await context.newPage();
    page.on('pageerror', (err) => errors.push(err.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await server?.cleanup();
  });

  it('signs in with the one-time link into an HttpOnly SameSite=Strict session; the link does not work twice', async () => {
    const link = await consoleSignInLink(server);
    await page.goto(link);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(page.url()).toBe(`${server.url}/`);
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'quoll_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(await page.evaluate('document.cookie')).toBe('');
    await page.getByText('ok', { exact: true }).first().waitFor();
    await shot(page, '01-overview');
    // A second browser cannot reuse it.
    const other = await browser.newPage();
    await other.goto(link);
    await other.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
    await other.close();
  });

  it('runs the seed flow: upload the model, build and deploy, try it, read the rows in the log explorer', async () => {
    await page.getByRole('link', { name: 'Workspaces' }).click();
    await page.getByLabel('New workspace name').fill('consolews');
    await page.getByRole('button', { name: 'Create workspace' }).click();
    await page.getByRole('cell', { name: 'consolews' }).waitFor();
    await shot(page, '02-workspaces');

    await page.getByRole('link', { name: 'Models' }).click();
    await page.getByLabel('Workspace').selectOption({ label: 'consolews' });
    await page.getByLabel('Model name').fill('housemodel');
    await page
      .getByLabel('ONNX model file')
      .setInputFiles({ name: 'rf_model.onnx', mimeType: 'application/octet-stream', buffer: model });
    await page.getByRole('button', { name: 'Upload model' }).click();
    await page.getByText(/Uploaded housemodel version/).waitFor();
    await page.getByRole('cell', { name: 'housemodel', exact: true }).waitFor();
    await shot(page, '03-models');

    await page.getByRole('link', { name: 'Pipelines' }).click();
    await page.getByLabel('Workspace').selectOption({ label: 'consolews' });
    await page.getByLabel('Pipeline name').fill('housepipe');
    await page.getByRole('button', { name: 'Build pipeline' }).click();
    await page.waitForURL(/\/pipelines\/\d+\/housepipe$/, { timeout: 60_000 });
    await page.locator('.stat .badge', { hasText: 'Running' }).waitFor({ timeout: 60_000 });
    // Status per replica and worker, as status() gives it: this server's one replica, running.
    const { replicas, workers } = await (
      await server
        .client()
        .getWorkspace('consolews')
        .then((w) => {
          const c = server.client();
          c.setCurrentWorkspace(w);
          return c.getPipeline('housepipe');
        })
    ).status();
    expect(replicas).toHaveLength(1);
    const replica = page.getByRole('table', { name: 'Replicas' }).getByRole('row').nth(1);
    await replica.getByText('Running', { exact: true }).waitFor();
    expect(await replica.textContent()).toContain(replicas[0]!.node);
    expect(await replica.getByRole('cell').nth(3).textContent()).toBe(String(replicas[0]!.workers));
    await page.getByText(`${workers} worker`).first().waitFor();
    await shot(page, '04-pipeline');
    pipelinePath = new URL(page.url()).pathname;

    await page.getByRole('link', { name: 'Try it' }).click();
    expect(page.url()).toMatch(/\?tab=try$/);
    await page.getByLabel('Input records (JSON)').fill(input);
    await page.getByRole('button', { name: 'Infer' }).click();
    const result = page.getByRole('table', { name: 'Result' });
    await result.getByText(expected).waitFor();
    await shot(page, '05-try-it');

    await page.getByRole('link', { name: 'Inference logs' }).click();
    const rows = page.getByRole('table', { name: 'Inference log rows' });
    await rows.getByText(expected).first().waitFor();
    // The page settles: the rows are counted and not loading again and again.
    await page.getByText(/^\d+ rows?\b/).waitFor();
    await page.waitForTimeout(500);
    expect(await page.getByText('Loading…').count()).toBe(0);
    expect(await page.locator('.chart canvas').count()).toBeGreaterThan(0);
    await expect(page.getByLabel('Chart column').inputValue()).resolves.toBe('out.variable');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export JSON' }).click();
    const file = await (await download).path();
    const exported = JSON.parse(await readFile(file, 'utf8')) as Array<Record<string, unknown>>;
    expect(exported.length).toBeGreaterThan(0);
    expect(exported[0]).toHaveProperty('out.variable');
    // Shown without the inputs (most of a page's bytes) until asked for: then in.tensor too.
    expect(await rows.getByRole('columnheader', { name: 'in.tensor' }).count()).toBe(0);
    await shot(page, '06-log-explorer');
    await page.getByLabel('Show input columns (in.*)').check();
    await rows.getByRole('columnheader', { name: 'in.tensor' }).waitFor();
    expect(page.url()).toContain('inputs=1');
    await rows.getByText(expected).first().waitFor();
    await shot(page, '06b-log-explorer-inputs');

    // Back goes to the previous page of the console: the rows without the inputs, then try it.
    await page.goBack();
    expect(page.url()).not.toContain('inputs=1');
    await expect.poll(() => rows.getByRole('columnheader', { name: 'in.tensor' }).count()).toBe(0);
    await page.goBack();
    expect(page.url()).toMatch(/\?tab=try$/);
    await page.getByLabel('Input records (JSON)').waitFor();
  }, 180_000);

  it('creates a connection shown masked, and reveals it with the audit notice', async () => {
    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByLabel('Connection name').fill('consoleconn');
    const detailsField = page.getByLabel('Details (JSON; stored encrypted, shown masked)');
    await detailsField.fill('{"url": "https://example.com", "token": "s3cret-value"}');
    // The details' label sits as far below the name field as the fields of a row sit apart.
    const nameBox = (await page.getByLabel('Connection name').boundingBox())!;
    const detailsLabel = (await page.locator('label.field', { has: detailsField }).boundingBox())!;
    expect(detailsLabel.y - (nameBox.y + nameBox.height)).toBeGreaterThanOrEqual(8);
    await page.getByRole('button', { name: 'Create connection' }).click();
    await page.getByRole('cell', { name: 'consoleconn', exact: true }).waitFor();
    expect(await page.content()).not.toContain('s3cret-value');
    await page.getByText('recorded in the audit trail').waitFor();
    const row = page
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'consoleconn', exact: true }) });
    const masked = (await row.boundingBox())!.height;
    const attachAt = (await page.getByRole('button', { name: 'Attach consoleconn' }).boundingBox())!.x;
    await page.getByRole('button', { name: 'Reveal consoleconn' }).click();
    await page.getByLabel('Details of consoleconn').getByText('s3cret-value').waitFor();
    // Revealing shows the details on one line in the masked text's place: the row keeps its
    // height and the columns their widths (no layout shift).
    expect((await row.boundingBox())!.height).toBe(masked);
    expect((await page.getByRole('button', { name: 'Attach consoleconn' }).boundingBox())!.x).toBe(attachAt);
    const audit = await server.client().connectionAudit();
    expect(audit.some((e) => e.connectionName === 'consoleconn')).toBe(true);
    await shot(page, '07-connections');
  });

  it('uploads an orchestration zip, runs it once and shows its lines as they arrive', async () => {
    await page.getByRole('link', { name: 'Orchestrations' }).click();
    await page.getByLabel('Workspace').selectOption({ label: 'consolews' });
    await page.getByLabel('Orchestration name (default: the file name)').fill('consoleorch');
    const zip = await createZip([{ path: 'main.mjs', content: MAIN }]);
    await page
      .getByLabel('Orchestration zip')
      .setInputFiles({ name: 'consoleorch.zip', mimeType: 'application/zip', buffer: zip });
    const row = page.getByRole('row').filter({ hasText: 'consoleorch' });
    await row.locator('.badge', { hasText: 'ready' }).waitFor({ timeout: 60_000 });
    await row.getByRole('button', { name: 'Packaging log' }).click();
    await page.getByLabel('Packaging log of consoleorch').waitFor();
    await shot(page, '08-orchestrations');

    await row.getByRole('link', { name: 'Create a task' }).click();
    await page.getByLabel('Task name').fill('once');
    await page.getByRole('button', { name: 'Create task' }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/);
    const log = page.locator('pre.log');
    await log.getByText('console line 0').waitFor({ timeout: 30_000 });
    // Line 0 is on screen while the run still sleeps: the later lines arrive after it.
    expect(await log.textContent()).not.toContain('console line 4');
    await log.getByText('console line 4').waitFor({ timeout: 30_000 });
    await page.getByText('run ended').waitFor({ timeout: 30_000 });
    // Once its log has ended, the page shows the run as ended too (no manual refresh).
    await page
      .getByRole('table', { name: 'Runs' })
      .getByText('success', { exact: true })
      .waitFor({ timeout: 10_000 });
    await shot(page, '09-task-run-log');
  }, 120_000);

  it('uploads an orchestration zip dropped on the drop zone (a real drop event with the file)', async () => {
    await page.getByRole('link', { name: 'Orchestrations' }).click();
    await page.getByLabel('Workspace').selectOption({ label: 'consolews' });
    // No name typed: the file's name (without .zip) names it.
    await page.getByLabel('Orchestration name (default: the file name)').fill('');
    const zip = await createZip([{ path: 'main.mjs', content: "console.log('dropped');\n" }]);
    const zone = page.locator('.dropzone').filter({ hasText: 'Orchestration zip' });
    // A DataTransfer holding the zip as a File, made in the page (what a drop from the desktop carries).
    const transfer = await page.evaluateHandle((bytes: number[]) => {
      const g = globalThis as unknown as {
        DataTransfer: new () => { items: { add(file: File): void } };
      };
      const dt = new g.DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], 'droppedorch.zip', { type: 'application/zip' }));
      return dt;
    }, Array.from(zip));
    await zone.dispatchEvent('dragenter', { dataTransfer: transfer });
    await zone.dispatchEvent('dragover', { dataTransfer: transfer });
    // The zone shows that it will take the file.
    await expect.poll(() => zone.getAttribute('class')).toContain('over');
    await zone.dispatchEvent('drop', { dataTransfer: transfer });
    // Packaging may already be done when the list first shows the row.
    await page.getByText(/^Uploaded droppedorch; (packaging…|ready\.)$/).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'droppedorch' });
    await row.locator('.badge', { hasText: 'ready' }).waitFor({ timeout: 60_000 });
    // The upload's message follows its packaging, not only the row.
    await page.getByText('Uploaded droppedorch; ready.').waitFor();
    // The server holds that very zip, under the file's name.
    const held = (await server.client().listOrchestrations()).find((o) => o.name === 'droppedorch');
    expect(held?.toJSON()).toMatchObject({
      fileName: 'droppedorch.zip',
      sha: createHash('sha256').update(zip).digest('hex'),
      status: 'ready',
    });
    await shot(page, '08b-orchestration-dropped');
  }, 90_000);

  it('schedules the orchestration with the next five ticks previewed, and kills the task', async () => {
    await page.getByRole('link', { name: 'Orchestrations' }).click();
    await page
      .getByRole('row')
      .filter({ hasText: 'consoleorch' })
      .getByRole('link', { name: 'Create a task' })
      .click();
    await page.getByLabel('Kind').selectOption('scheduled');
    await page.getByLabel('Schedule (cron, 5 fields)').fill('*/10 * * * *');
    await page.getByLabel('Time zone').fill('UTC');
    const ticks = page.getByLabel('Next five ticks').locator('li');
    await expect.poll(() => ticks.count()).toBe(5);
    expect(await ticks.first().textContent()).toMatch(/:[0-5]0/);
    await page.getByLabel('Task name').fill('every ten');
    await shot(page, '10-schedule-form');
    await page.getByRole('button', { name: 'Create task' }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]+$/);
    await page.getByText('Scheduled Run').waitFor();
    await page.getByRole('button', { name: 'Kill task' }).click();
    await page.locator('.stat .badge', { hasText: 'killed' }).first().waitFor({ timeout: 30_000 });
    await shot(page, '11-task-killed');
    await page.getByRole('link', { name: 'Tasks', exact: true }).first().click();
    await page.getByLabel('Include killed tasks').check();
    await page.getByRole('cell', { name: 'every ten' }).waitFor();
    await shot(page, '12-tasks');
    await page.getByRole('button', { name: 'Dark theme' }).click();
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('cell', { name: 'housepipe', exact: true }).waitFor();
    await shot(page, '13-overview-dark');
    expect(errors).toEqual([]);
  }, 60_000);

  it('shows every page in the dark scheme (screenshots), the schedule preview with its error too', async () => {
    // The previous test switched to the dark theme; it is kept across page loads.
    const visits: Array<[string, string, () => Promise<unknown>]> = [
      ['workspaces', '/workspaces', () => page.getByRole('cell', { name: 'consolews' }).waitFor()],
      ['models', '/models', () => page.getByRole('cell', { name: 'housemodel', exact: true }).waitFor()],
      ['pipelines', '/pipelines', () => page.getByRole('cell', { name: 'housepipe' }).first().waitFor()],
      ['pipeline', pipelinePath, () => page.locator('.stat .badge', { hasText: 'Running' }).waitFor()],
      [
        'log-explorer',
        `${pipelinePath}?tab=logs`,
        () => page.getByRole('table', { name: 'Inference log rows' }).getByText(expected).first().waitFor(),
      ],
      [
        'connections',
        '/connections',
        () => page.getByRole('cell', { name: 'consoleconn', exact: true }).waitFor(),
      ],
      [
        'orchestrations',
        '/orchestrations',
        () => page.getByRole('row').filter({ hasText: 'consoleorch' }).first().waitFor(),
      ],
      ['tasks', '/tasks?killed=1', () => page.getByRole('cell', { name: 'every ten' }).waitFor()],
    ];
    for (const [name, path, ready] of visits) {
      await page.goto(`${server.url}${path}`);
      await ready();
      await expect.poll(() => page.getByText('Loading…').count()).toBe(0);
      expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
      await shot(page, `14-dark-${name}`);
    }
    await page.goto(`${server.url}/orchestrations`);
    await page
      .getByRole('row')
      .filter({ hasText: 'consoleorch' })
      .getByRole('link', { name: 'Create a task' })
      .first()
      .click();
    await page.getByLabel('Kind').selectOption('scheduled');
    await page.getByLabel('Time zone').fill('Europe/Paris');
    await expect.poll(() => page.getByLabel('Next five ticks').locator('li').count()).toBe(5);
    await shot(page, '14-dark-schedule-form');
    await page.getByLabel('Schedule (cron, 5 fields)').fill('61 * * * *');
    await page.getByLabel('Next five ticks').locator('.bad').waitFor();
    expect(await page.getByRole('button', { name: 'Create task' }).isDisabled()).toBe(true);
    await shot(page, '14-dark-schedule-form-error');
    expect(errors).toEqual([]);
  }, 90_000);

  it('a workspace-scoped token pasted into the sign-in page sees nothing of another workspace', async () => {
    const client = server.client();
    const other = await client.getWorkspace('otherws', { createIfNotExist: true });
    const token = await client.createWorkspaceToken(other, { subject: 'other-reader' });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const scoped = await context.newPage();
    await scoped.goto(`${server.url}/pipelines`);
    await scoped.waitForURL(/\/sign-in$/);
    await scoped.getByLabel('API token').fill(token);
    await scoped.getByRole('button', { name: 'Sign in' }).click();
    await scoped.getByRole('heading', { name: 'Overview' }).waitFor();
    await scoped.getByText('workspace').filter({ hasText: 'only' }).first().waitFor();
    for (const [path, empty] of [
      ['/pipelines', 'No pipeline yet.'],
      ['/models', 'No model uploaded yet.'],
      ['/orchestrations', 'No orchestration uploaded yet.'],
      ['/connections', 'No connection.'],
    ] as const) {
      await scoped.goto(`${server.url}${path}`);
      await scoped.getByText(empty).waitFor();
    }
    await scoped.goto(`${server.url}/tasks?killed=1`);
    await scoped.getByText('No task matches.').waitFor();
    await scoped.goto(`${server.url}/workspaces`);
    await scoped.getByRole('cell', { name: 'otherws' }).waitFor();
    expect(await scoped.getByRole('cell', { name: 'consolews' }).count()).toBe(0);
    const body = await scoped.content();
    for (const secret of ['housepipe', 'housemodel', 'consoleorch', 'consoleconn'])
      expect(body).not.toContain(secret);
    await shot(scoped, '14-scoped-workspaces');
    const wsId = (await client.getWorkspace('consolews')).id;
    await scoped.goto(`${server.url}/pipelines/${wsId}/housepipe`);
    await scoped.getByRole('alert').waitFor();
    await context.close();
  }, 60_000);
});
