import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '@quoll/client';
import { hasChromium, launchChromium } from '../support/launch-chromium.js';
import { consoleSignInLink } from '../support/console-link.js';
import { taskWithEndedRuns } from '../support/many-runs.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// The console's task page with runs paged 50 at a time: a shared link to an older run of a task
// (`?run=<id>`, beyond the first page) still shows that run's log, a link to no run of the task
// says so, and "Older runs" pressed twice quickly moves one page per press.

let server: TestServer;
let browser: Browser;
let page: Page;
let task: Task;
let all: string[];

describe.skipIf(!hasChromium)('console deep links to older runs, and the runs pager', () => {
  beforeAll(async () => {
    server = await startTestServer();
    const client = server.client();
    client.setCurrentWorkspace(await client.getWorkspace('deeplink', { createIfNotExist: true }));
    ({ task, all } = await taskWithEndedRuns(server, client, 'deep link', 121));
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(await consoleSignInLink(server));
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stopTestServer(server);
  });

  it('/tasks/<id>?run=<the 100th newest run> shows that run, not the newest', async () => {
    const wanted = all[100]!;
    await page.goto(`${server.url}/tasks/${task.id}?run=${wanted}`);
    await page
      .getByRole('table', { name: 'Runs' })
      .getByRole('link', { name: all[0]!.slice(0, 8) })
      .waitFor();
    const log = page.locator('pre.log');
    await log.waitFor();
    // The run log the page follows is the one the URL names.
    expect(await log.getAttribute('aria-label')).toBe(`Log of run ${wanted}`);
  }, 60_000);

  it('/tasks/<id>?run=<no run of this task> says so and follows no other run', async () => {
    const missing = '00000000-0000-7000-8000-000000000000';
    await page.goto(`${server.url}/tasks/${task.id}?run=${missing}`);
    await page
      .getByRole('table', { name: 'Runs' })
      .getByRole('link', { name: all[0]!.slice(0, 8) })
      .waitFor();
    await page.getByRole('alert').waitFor();
    expect(await page.getByText(`Run ${missing} is not a run of this task.`).count()).toBe(1);
    expect(await page.locator('pre.log').count()).toBe(0);
  }, 60_000);

  it('"Older runs" pressed twice quickly moves one page per press, and the page number matches the rows', async () => {
    await page.goto(`${server.url}/tasks/${task.id}`);
    const table = page.getByRole('table', { name: 'Runs' });
    await table.getByRole('link', { name: all[0]!.slice(0, 8) }).waitFor();
    // Two presses before the first page's answer: the button still holds page 1's nextCursor.
    await page.getByRole('button', { name: 'Older runs' }).dblclick();
    await expect.poll(async () => page.locator('nav.pager [aria-live]').textContent()).toMatch(/runs\)/);
    await expect
      .poll(() => table.locator('tbody tr').first().getByRole('link').textContent())
      .not.toBe(all[0]!.slice(0, 8));
    await page.waitForTimeout(500);
    const label = (await page.locator('nav.pager [aria-live]').textContent()) ?? '';
    const n = Number(/Page (\d+)/.exec(label)?.[1]);
    const first = await table.locator('tbody tr').first().getByRole('link').textContent();
    // Page n starts with run (n-1)*50.
    expect({ label, first }).toEqual({ label, first: all[(n - 1) * 50]!.slice(0, 8) });
  }, 60_000);
});
