import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '@quoll/client';
import { CHROMIUM, hasChromium, launchChromium } from '../support/launch-chromium.js';
import { consoleSignInLink } from '../support/console-link.js';
import { taskWithEndedRuns } from '../support/many-runs.js';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// The console's paged lists keep their page in the URL: a list paged in the browser
// (`?page=<n>`, here the workspaces and the tasks with their filters) and a task's runs paged on
// the server (`?page=<n>&per=<runs a page>`). Reload keeps the page, back and forward move
// between pages, the pager works from the keyboard as before, and a page number past the end or
// not a number shows the nearest page and corrects the URL in place (replaceState: no new
// history entry).

const inCi = process.env.CI === 'true';
if (!hasChromium && !inCi) console.warn(`skipped: no Chromium at ${CHROMIUM} (set QUOLL_TEST_CHROMIUM)`);

let server: TestServer;
let browser: Browser;
let page: Page;
/** Workspace names in the order the console lists them (61: 25 + 25 + 11 on three pages). */
let workspaceNames: string[];
let task: Task;
/** A second run-once task with one run, newer than all of `task`'s. */
let other: Task;
/** The scheduled tasks' names in the order the console lists them (30: 25 + 5 on two pages). */
let scheduledNames: string[];
/** The task's runs, newest first (121: 50 + 50 + 21 on three pages). */
let all: string[];
const errors: string[] = [];
/** The runs requests the page made (their query), in order. */
const runRequests: URLSearchParams[] = [];

/** The pager's live text ("Page 2 of 3 (61 rows)", or on a task page "Page 2 (50 runs)"). */
async function pagerText(): Promise<string> {
  return ((await page.locator('nav.pager [aria-live]').textContent()) ?? '').trim();
}

/** The text of the first cell of the table's first row. */
async function firstCell(table: string, column = 1): Promise<string> {
  return (
    (await page
      .getByRole('table', { name: table })
      .locator(`tbody tr:first-child td:nth-child(${column})`)
      .textContent()) ?? ''
  ).trim();
}

/** The URL's path and query, as the page shows it. */
function where(): string {
  const url = new URL(page.url());
  return url.pathname + url.search;
}

/** How many entries the tab's history has (the test files have no DOM types: a string runs in the page). */
async function historyLength(): Promise<number> {
  return page.evaluate<number>('history.length');
}

/** What has the focus: its tag and text. */
async function focused(): Promise<string> {
  return page.evaluate<string>(
    `(() => { const el = document.activeElement; return el === null ? '' : el.tagName.toLowerCase() + ' ' + (el.textContent || '').trim(); })()`,
  );
}

describe.skipIf(!hasChromium && !inCi)('console list pages in the URL', () => {
  beforeAll(async () => {
    server = await startTestServer();
    const client = server.client();
    for (let i = 0; i < 60; i++) await client.createWorkspace(`pagews-${String(i).padStart(2, '0')}`);
    workspaceNames = (await client.listWorkspaces()).map((w) => w.name);
    client.setCurrentWorkspace(await client.getWorkspace('pagews-00'));
    ({ task, all } = await taskWithEndedRuns(server, client, 'paged runs', 121));
    // 30 scheduled tasks that never tick in the test (1 January, 00:00): 31 tasks, two pages.
    const orchestration = await readyOrchestration(client, 'idle', { 'main.mjs': "console.log('idle');\n" });
    for (let i = 0; i < 30; i++)
      await orchestration.runScheduled({
        name: `yearly ${String(i).padStart(2, '0')}`,
        schedule: '0 0 1 1 *',
      });
    other = await orchestration.runOnce({ name: 'other task' });
    await lastRunEnded(other);
    scheduledNames = (await client.listTasks())
      .map((t) => t.toJSON())
      .filter((t) => t.type === 'Scheduled Run')
      .map((t) => t.name);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.pathname === `/v1/tasks/${task.id}/runs`) runRequests.push(url.searchParams);
    });
    await page.goto(await consoleSignInLink(server));
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stopTestServer(server);
  });

  it('a list paged in the browser: Next by keyboard puts ?page=2 in the URL, reload keeps it, back and forward move between pages', async () => {
    expect(workspaceNames).toHaveLength(61);
    await page.goto(`${server.url}/workspaces`);
    await expect.poll(pagerText).toBe('Page 1 of 3 (61 rows)');
    // The pager by keyboard, as before: focus Next, Enter; the focus stays on Next.
    await page.getByRole('button', { name: 'Next' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(pagerText).toBe('Page 2 of 3 (61 rows)');
    expect(where()).toBe('/workspaces?page=2');
    expect(await firstCell('Workspaces', 2)).toBe(workspaceNames[25]);
    expect(await focused()).toBe('button Next');

    await page.reload();
    await expect.poll(pagerText).toBe('Page 2 of 3 (61 rows)');
    expect(await firstCell('Workspaces', 2)).toBe(workspaceNames[25]);
    expect(where()).toBe('/workspaces?page=2');

    await page.getByRole('button', { name: 'Next' }).click();
    await expect.poll(pagerText).toBe('Page 3 of 3 (61 rows)');
    expect(where()).toBe('/workspaces?page=3');
    expect(await firstCell('Workspaces', 2)).toBe(workspaceNames[50]);

    await page.goBack();
    await expect.poll(pagerText).toBe('Page 2 of 3 (61 rows)');
    expect(where()).toBe('/workspaces?page=2');
    expect(await firstCell('Workspaces', 2)).toBe(workspaceNames[25]);
    await page.goForward();
    await expect.poll(pagerText).toBe('Page 3 of 3 (61 rows)');
    expect(await firstCell('Workspaces', 2)).toBe(workspaceNames[50]);

    // Previous to the first page: the URL loses its page (the first page is the plain URL).
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.getByRole('button', { name: 'Previous' }).click();
    await expect.poll(pagerText).toBe('Page 1 of 3 (61 rows)');
    expect(where()).toBe('/workspaces');
    expect(errors).toEqual([]);
  }, 60_000);

  it('a page number past the end shows the last page, one not a number the first; the URL is corrected in place', async () => {
    for (const [asked, shown, corrected] of [
      ['99', 'Page 3 of 3 (61 rows)', '/workspaces?page=3'],
      ['abc', 'Page 1 of 3 (61 rows)', '/workspaces'],
      ['0', 'Page 1 of 3 (61 rows)', '/workspaces'],
      ['-4', 'Page 1 of 3 (61 rows)', '/workspaces'],
      ['', 'Page 1 of 3 (61 rows)', '/workspaces'],
      ['2.2', 'Page 2 of 3 (61 rows)', '/workspaces?page=2'],
    ] as const) {
      const before = await historyLength();
      await page.goto(`${server.url}/workspaces?page=${asked}`);
      await expect.poll(() => where(), { message: `?page=${asked}` }).toBe(corrected);
      expect(await pagerText()).toBe(shown);
      expect(await page.locator('tbody tr').count()).toBeGreaterThan(0);
      // goto added one entry; the correction replaced it rather than adding another.
      expect(await historyLength()).toBe(before + 1);
    }
    // A page with several lists: each has its own key, and both corrections land (no task is
    // running or failed here: one page each); a key no list of the page has is left alone.
    await page.goto(`${server.url}/?running-page=3&failures-page=x&page=2`);
    await page.getByRole('table', { name: 'Recent failures' }).waitFor();
    await expect.poll(() => where()).toBe('/?page=2');
    expect(errors).toEqual([]);
  }, 60_000);

  it('a filtered list keeps its filters beside its page; changing a filter goes back to the first page', async () => {
    expect(scheduledNames).toHaveLength(30);
    await page.goto(`${server.url}/tasks?type=Scheduled+Run&page=2`);
    await expect.poll(pagerText).toBe('Page 2 of 2 (30 rows)');
    expect(await firstCell('Tasks')).toBe(scheduledNames[25]);
    await page.reload();
    await expect.poll(pagerText).toBe('Page 2 of 2 (30 rows)');
    expect(await firstCell('Tasks')).toBe(scheduledNames[25]);

    await page.getByRole('button', { name: 'Previous' }).click();
    await expect.poll(pagerText).toBe('Page 1 of 2 (30 rows)');
    expect(new URL(page.url()).searchParams.get('type')).toBe('Scheduled Run');
    await page.getByRole('button', { name: 'Next' }).click();
    await expect.poll(pagerText).toBe('Page 2 of 2 (30 rows)');

    // A filter that leaves the run-once tasks (one page): the first page, and no page in the URL.
    await page.getByLabel('Type').selectOption('Temporary Run');
    await page.getByRole('table', { name: 'Tasks' }).getByRole('link', { name: 'paged runs' }).waitFor();
    const url = new URL(page.url());
    expect(url.searchParams.get('type')).toBe('Temporary Run');
    expect(url.searchParams.has('page')).toBe(false);
    expect(errors).toEqual([]);
  }, 60_000);

  it("a task's runs (paged on the server): ?page=3 opens the third page, reload keeps it, back and forward move", async () => {
    const runs = page.getByRole('table', { name: 'Runs' });
    await page.goto(`${server.url}/tasks/${task.id}?page=3`);
    await runs.getByRole('link', { name: all[100]!.slice(0, 8) }).waitFor();
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    expect(await firstCell('Runs')).toBe(all[100]!.slice(0, 8));
    // Opened cold, page 3 is found by reading pages 1 and 2 once (50 runs each, never all).
    expect(runRequests.map((q) => [q.get('limit'), q.has('cursor')])).toEqual([
      ['50', false],
      ['50', true],
      ['50', true],
    ]);

    // A reload reads page 3 only: where it starts is known (for the tab's life).
    runRequests.length = 0;
    await page.reload();
    await runs.getByRole('link', { name: all[100]!.slice(0, 8) }).waitFor();
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    expect(runRequests.map((q) => [q.get('limit'), q.has('cursor')])).toEqual([['50', true]]);

    await page.getByRole('button', { name: 'Newer runs' }).click();
    await expect.poll(pagerText).toBe('Page 2 (50 runs)');
    expect(where()).toBe(`/tasks/${task.id}?page=2`);
    expect(await firstCell('Runs')).toBe(all[50]!.slice(0, 8));

    await page.goBack();
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    expect(await firstCell('Runs')).toBe(all[100]!.slice(0, 8));
    await page.goForward();
    await expect.poll(pagerText).toBe('Page 2 (50 runs)');
    expect(await firstCell('Runs')).toBe(all[50]!.slice(0, 8));

    // Choosing a run keeps the page in the URL (and so the run's link does too).
    await runs.getByRole('link', { name: all[60]!.slice(0, 8) }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('run')).toBe(all[60]);
    expect(new URL(page.url()).searchParams.get('page')).toBe('2');
    expect(await page.locator('pre.log').getAttribute('aria-label')).toBe(`Log of run ${all[60]}`);
    expect(errors).toEqual([]);
  }, 60_000);

  it("a task's runs: runs a page in the URL; a page past the end or not a number, and an unknown size, are corrected in place", async () => {
    const runs = page.getByRole('table', { name: 'Runs' });
    await page.goto(`${server.url}/tasks/${task.id}?per=200`);
    await expect.poll(pagerText).toBe('Page 1 (121 runs)');
    await page.reload();
    await expect.poll(pagerText).toBe('Page 1 (121 runs)');
    expect(await runs.locator('tbody tr').count()).toBe(121);

    for (const [asked, shown, corrected, first] of [
      ['page=9', 'Page 3 (21 runs)', 'page=3', 100],
      ['page=x', 'Page 1 (50 runs)', '', 0],
      ['page=2&per=7', 'Page 2 (50 runs)', 'page=2', 50],
      ['per=200&page=5', 'Page 1 (121 runs)', 'per=200', 0],
    ] as const) {
      const before = await historyLength();
      await page.goto(`${server.url}/tasks/${task.id}?${asked}`);
      await expect
        .poll(() => where(), { message: asked })
        .toBe(`/tasks/${task.id}${corrected ? `?${corrected}` : ''}`);
      await expect.poll(pagerText).toBe(shown);
      expect(await firstCell('Runs')).toBe(all[first]!.slice(0, 8));
      expect(await historyLength()).toBe(before + 1);
    }
    expect(errors).toEqual([]);
  }, 60_000);

  it("back to another task's page of runs (a jump in the history) shows that task's runs, not the last task's", async () => {
    const runs = page.getByRole('table', { name: 'Runs' });
    await page.goto(`${server.url}/tasks/${task.id}?page=3`);
    await runs.getByRole('link', { name: all[100]!.slice(0, 8) }).waitFor();
    // To the other task through the console (Tasks, then its link), then two entries back at once
    // (the back button's history menu): the task page stays mounted, its id changes.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Tasks' }).click();
    await page.getByLabel('Type').selectOption('Temporary Run');
    await page.getByRole('table', { name: 'Tasks' }).getByRole('link', { name: 'other task' }).click();
    await expect.poll(pagerText).toBe('Page 1 (1 run)');
    await page.evaluate('history.go(-2)');
    await expect.poll(() => where()).toBe(`/tasks/${task.id}?page=3`);
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    expect(await firstCell('Runs')).toBe(all[100]!.slice(0, 8));
    // And a reload finds page 3 where it starts (no other task's cursor was kept for this one).
    await page.reload();
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    expect(await firstCell('Runs')).toBe(all[100]!.slice(0, 8));
    expect(errors).toEqual([]);
  }, 60_000);

  it('a list that failed to load keeps the page in the URL (a reload after the outage opens it)', async () => {
    // The workspaces answer 500 once: no rows arrived, so there is nothing to correct the page by.
    await page.route('**/v1/workspaces', (route) =>
      route.fulfill({
        status: 500,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'internal', message: 'test outage' } }),
      }),
    );
    try {
      await page.goto(`${server.url}/workspaces?page=2`);
      await page.getByRole('alert').waitFor();
      // The effects of the render that showed the error have run.
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50)))');
      expect(where()).toBe('/workspaces?page=2');
    } finally {
      await page.unroute('**/v1/workspaces');
    }
    await page.reload();
    await expect.poll(pagerText).toBe('Page 2 of 3 (61 rows)');
    expect(where()).toBe('/workspaces?page=2');
  }, 60_000);

  it('a link with a doubled slash (`//tasks/<id>`) still pages in place: the URLs the page makes stay on this server', async () => {
    const runs = page.getByRole('table', { name: 'Runs' });
    await page.goto(`${server.url}//tasks/${task.id}?page=9`);
    await runs.getByRole('link', { name: all[100]!.slice(0, 8) }).waitFor();
    await expect.poll(pagerText).toBe('Page 3 (21 runs)');
    await expect.poll(() => new URL(page.url()).searchParams.get('page')).toBe('3');
    // A run's link (open in a new tab) is a path of this server, not `//tasks/…` (another host).
    const href = await runs.getByRole('link', { name: all[100]!.slice(0, 8) }).getAttribute('href');
    expect(new URL(href!, page.url()).origin).toBe(new URL(server.url).origin);
    await page.getByRole('button', { name: 'Newer runs' }).click();
    await expect.poll(pagerText).toBe('Page 2 (50 runs)');
    expect(new URL(page.url()).origin).toBe(new URL(server.url).origin);
    expect(errors).toEqual([]);
  }, 60_000);

  it('a path whose part is not a valid escape (`/tasks/%E0`) is a page not found, not an error while rendering', async () => {
    // The server answers such a URL 400 (invalid_request) itself: the console meets it only by
    // moving in the history without a load (a pushed entry, then back and forward).
    await page.goto(`${server.url}/tasks`);
    await page.getByRole('heading', { name: 'Tasks', exact: true }).waitFor();
    const before = errors.length;
    await page.evaluate(
      "history.pushState(null, '', '/tasks/%E0'); history.pushState(null, '', '/tasks'); history.back();",
    );
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/tasks/%E0');
    expect(errors.slice(before)).toEqual([]);
  }, 60_000);

  it('leaving a cold link to an older page of runs before it arrives stops reading the pages before it', async () => {
    // Cold: no page start is known in this tab.
    await page.goto(`${server.url}/tasks`);
    await page.evaluate("sessionStorage.removeItem('quoll-run-cursors')");
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = true;
    const runsOfTask = (url: URL): boolean => url.pathname === `/v1/tasks/${task.id}/runs`;
    // The first request with a cursor (page 2, on the way to page 3) waits until released.
    await page.route(runsOfTask, async (route) => {
      if (holding && new URL(route.request().url()).searchParams.has('cursor')) {
        holding = false;
        await held;
      }
      await route.continue();
    });
    const withCursor = (): number => runRequests.filter((q) => q.has('cursor')).length;
    try {
      runRequests.length = 0;
      await page.goto(`${server.url}/tasks/${task.id}?page=3`);
      await expect.poll(withCursor).toBe(1);
      // The reader leaves for the newest page while page 2 is on its way.
      await page.getByRole('button', { name: 'Newest runs' }).click();
      await expect.poll(pagerText).toBe('Page 1 (50 runs)');
      const answered = page.waitForResponse(
        (r) => runsOfTask(new URL(r.url())) && r.url().includes('cursor='),
      );
      release();
      await answered;
      // Time for a request that page 2's answer would start (none is due).
      await page.evaluate('new Promise((r) => setTimeout(r, 300))');
      expect(withCursor()).toBe(1);
      expect(await pagerText()).toBe('Page 1 (50 runs)');
    } finally {
      release();
      await page.unroute(runsOfTask);
    }
    expect(errors).toEqual([]);
  }, 60_000);

  it('the page starts kept for the tab are bounded (the lists seen longest ago make room), and unreadable ones are not read', async () => {
    const kept = async (): Promise<Record<string, string[]>> =>
      JSON.parse(
        (await page.evaluate<string | null>("sessionStorage.getItem('quoll-run-cursors')")) ?? '{}',
      ) as Record<string, string[]>;
    // Not a map of cursors (written by something else): read as nothing known.
    await page.goto(`${server.url}/tasks`);
    await page.evaluate("sessionStorage.setItem('quoll-run-cursors', 'null')");
    await page.goto(`${server.url}/tasks/${task.id}?page=2`);
    await expect.poll(pagerText).toBe('Page 2 (50 runs)');
    expect(await firstCell('Runs')).toBe(all[50]!.slice(0, 8));

    // A long-lived tab has seen 100 other lists, one page start each.
    await page.goto(`${server.url}/tasks`);
    await page.evaluate(
      "sessionStorage.setItem('quoll-run-cursors', JSON.stringify(Object.fromEntries(Array.from({ length: 100 }, (_, i) => ['seen-' + i + ' 50', ['c' + i]]))))",
    );
    await page.goto(`${server.url}/tasks/${task.id}?page=2`);
    await expect.poll(pagerText).toBe('Page 2 (50 runs)');
    const now = await kept();
    expect(Object.keys(now).length).toBeLessThanOrEqual(50);
    // This list's page starts (pages 2 and 3) are kept, beside those seen last; the oldest are gone.
    expect(now[`${task.id} 50`]).toHaveLength(2);
    expect(now['seen-99 50']).toEqual(['c99']);
    expect(now['seen-0 50']).toBeUndefined();
    expect(errors).toEqual([]);
  }, 60_000);
});
