import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '@quoll/client';
import { hasChromium, launchChromium } from '../support/launch-chromium.js';
import { insertEndedRuns } from '../support/many-runs.js';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { CLI, startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Review (runs lane): a shared link to an older run of a task must still show that run's log.
// Before paging, the page held the newest 10 000 runs and found the run; now it holds 50 and
// silently shows the newest run instead of the one in the URL.

const exec = promisify(execFile);
let server: TestServer;
let browser: Browser;
let page: Page;
let task: Task;
let all: string[];

describe.skipIf(!hasChromium)('review: console deep link to an older run', () => {
  beforeAll(async () => {
    server = await startTestServer();
    const client = server.client();
    client.setCurrentWorkspace(await client.getWorkspace('deeplink', { createIfNotExist: true }));
    const orchestration = await readyOrchestration(client, 'quick', { 'main.mjs': "console.log('done');\n" });
    task = await orchestration.runOnce({ name: 'deep link' });
    const real = await lastRunEnded(task);
    all = [real.id, ...(await insertEndedRuns(server, task.id, 120))];
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    const { stdout } = await exec(
      process.execPath,
      [CLI, '--home', server.home, 'console', '--no-open', '--json'],
      {
        env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
      },
    );
    await page.goto((JSON.parse(stdout) as { url: string }).url);
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
