// The web console in Chromium against a real server: first load to interactive (the overview's
// heading and its deployed pipeline on screen) after a one-time sign-in, next to the same
// browser loading a minimal page of the same server (the reference: what any page costs here),
// and the inference-log explorer opening a range of 10 000 rows until they are counted, the
// chart is drawn and the table's first rows are on screen. Median of BENCH_REPS (default 5).
// Targets: first load ≤ 1 s; 10 000-row page ≤ 300 ms.
//
// Each end point is taken inside the page, checked on every animation frame (Playwright's own
// waits poll at up to 500 ms steps, which would add up to half a second to a figure): the first
// load from the sign-in link's navigation start (the page's time origin), the log page from the
// click on its tab (once the pipeline page has settled). The wall clock seen from this script
// (including the browser round trips) is reported beside each.
//
// Where the time goes is printed too (medians): the first load's timeline from the navigation
// start (document, scripts, API calls), and the log page's steps from the click, from the
// performance marks the console sets (quoll:logs:*) and the log request's resource timing:
// click → request sent, server (request → first byte), transfer, body handed to the page, Arrow
// parse, chart series, render and commit, the chart drawn (uPlot), then → the frame where the
// end point is seen (style, layout, paint and the wait for that frame).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { Client } from '@quoll/client';
import { launchChromium } from '../test/support/launch-chromium.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { makeArrowTensorTable, makeHouseRows } from '../test/support/synthetic-data.js';
import { median, printTable, spawnPinned, waitFor, writeResults } from './support.js';

const REPS = Number(process.env.BENCH_REPS ?? 5);
// BENCH_CLI: another build's CLI (and so its console), e.g. a worktree of the previous commit,
// to alternate before/after runs in the same conditions.
const cli =
  process.env.BENCH_CLI ?? fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'quoll-bench-console-'));
const server = spawnPinned('0', process.execPath, [
  cli,
  'server',
  '--home',
  home,
  '--port',
  '0',
  '--log-level',
  'warn',
]);
const url = (await waitFor(server, /listening on (http:\S+)/))[1] ?? '';
const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
const client = new Client({ url, token });
const ws = await client.getWorkspace('benchws', { createIfNotExist: true });
client.setCurrentWorkspace(ws);
const pipeline = await client.buildPipeline('benchpipe');
await pipeline.addModelStep(await client.uploadModel('benchmodel', makeTreeEnsembleRegressor({ seed: 3 })));
await pipeline.deploy();
await pipeline.infer(makeArrowTensorTable(makeHouseRows(10_000, 5), 18));

const link = (): string =>
  (
    JSON.parse(
      execFileSync(process.execPath, [cli, '--home', home, 'console', '--no-open', '--json'], {
        env: { ...process.env, QUOLL_URL: '', QUOLL_TOKEN: '' },
        encoding: 'utf8',
      }),
    ) as { url: string }
  ).url;

const browser = await launchChromium();
const reference: number[] = [];
const firstLoad: number[] = [];
const firstLoadWall: number[] = [];
const logPage: number[] = [];
const logPageWall: number[] = [];
const breakdown: Record<string, number>[] = [];
const loadTimeline: Record<string, number>[] = [];

type Ready = 'overview' | 'logs';

/** The little of the page's globals the probes use (this project compiles without the DOM lib). */
interface PageGlobals {
  document: {
    querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>;
    querySelector(selector: string): { textContent: string | null } | null;
    addEventListener(type: string, listener: () => void, options: { capture: boolean; once: boolean }): void;
  };
  __benchAt?: number;
  __benchClick?: number;
  /** The page's performance timeline (navigation, resource and mark entries; fields as in the DOM). */
  performance: {
    now(): number;
    getEntriesByType(type: 'navigation' | 'resource' | 'mark'): TimelineEntry[];
  };
}

/** The fields of PerformanceNavigationTiming / PerformanceResourceTiming / PerformanceMark the bench reads. */
interface TimelineEntry {
  name: string;
  startTime: number;
  fetchStart: number;
  requestStart: number;
  responseStart: number;
  responseEnd: number;
  domInteractive: number;
  encodedBodySize: number;
  decodedBodySize: number;
}

/** Waits, checking on every animation frame, until `ready` holds; the page's clock at that frame. */
async function frameWhen(page: Page, ready: Ready): Promise<number> {
  // A function, not a string: the console's CSP allows no eval.
  const handle = await page.waitForFunction(
    (which: Ready) => {
      const g = globalThis as unknown as PageGlobals;
      // No named inner functions: tsx would wrap them in a helper the page does not have.
      const d = g.document;
      const ok =
        which === 'overview'
          ? Array.from(d.querySelectorAll('h1')).some((h) => h.textContent === 'Overview') &&
            Array.from(d.querySelectorAll('table[aria-label="Deployed pipelines"] td')).some(
              (td) => td.textContent === 'benchpipe',
            )
          : /^10000 rows/.test(d.querySelector('#log-summary')?.textContent ?? '') &&
            d.querySelectorAll('table[aria-label="Inference log rows"] tbody tr:not([aria-hidden])').length >=
              10 &&
            d.querySelector('.chart [data-points="10000"]') !== null;
      if (!ok) return false;
      return (g.__benchAt ??= performance.now());
    },
    ready,
    { polling: 'raf', timeout: 60_000 },
  );
  const at = (await handle.jsonValue()) as number;
  await page.evaluate(() => delete (globalThis as unknown as PageGlobals).__benchAt);
  return at;
}

try {
  for (let rep = 0; rep < REPS; rep++) {
    // A fresh context each time: no cache, a new sign-in.
    const context = await browser.newContext();
    const page = await context.newPage();
    let t = performance.now();
    await page.goto(`${url}/v1/health`);
    reference.push(performance.now() - t);
    const signIn = link();
    t = performance.now();
    await page.goto(signIn, { waitUntil: 'commit' });
    firstLoad.push(await frameWhen(page, 'overview'));
    firstLoadWall.push(performance.now() - t);
    if (process.env.BENCH_VERBOSE)
      console.log(
        JSON.stringify(
          await page.evaluate(() =>
            (globalThis as unknown as PageGlobals).performance
              .getEntriesByType('resource')
              .map((e) => [
                e.name.replace(/^https?:\/\/[^/]+/, '').slice(0, 60),
                Math.round(e.startTime),
                Math.round(e.requestStart),
                Math.round(e.responseStart),
                Math.round(e.responseEnd),
              ]),
          ),
        ),
      );
    // The first load's timeline (ms from navigation start): document, scripts, API calls.
    loadTimeline.push(
      await page.evaluate(() => {
        const perf = (globalThis as unknown as PageGlobals).performance;
        const nav = perf.getEntriesByType('navigation')[0];
        const res = perf.getEntriesByType('resource');
        const scripts = res.filter((e) => /\.js$/.test(e.name));
        const api = res.filter((e) => e.name.includes('/v1/'));
        return {
          document: nav?.responseEnd ?? NaN,
          domInteractive: nav?.domInteractive ?? NaN,
          scripts: scripts.length,
          // Encoded (as sent: brotli) against decoded bytes: the assets do arrive compressed.
          scriptsKB: scripts.reduce((n, e) => n + e.encodedBodySize, 0) / 1024,
          scriptsDecodedKB: scripts.reduce((n, e) => n + e.decodedBodySize, 0) / 1024,
          scriptsEnd: Math.max(...scripts.map((e) => e.responseEnd)),
          apiCalls: api.length,
          firstApiStart: Math.min(...api.map((e) => e.startTime)),
          lastApiEnd: Math.max(...api.map((e) => e.responseEnd)),
        };
      }),
    );
    await page.goto(`${url}/pipelines/${ws.id}/benchpipe`);
    await page.getByRole('heading', { name: 'Pipeline benchpipe' }).waitFor();
    // The click comes on a settled page, as a person's would: the pipeline's own requests, its
    // charts' chunk and the idle-time prefetch of the other pages done (no request for 500 ms).
    // Otherwise that work is still on the main thread when the log rows arrive.
    await page.waitForLoadState('networkidle');
    await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals;
      g.document.addEventListener('click', () => (g.__benchClick = performance.now()), {
        capture: true,
        once: true,
      });
    });
    t = performance.now();
    await page.getByRole('link', { name: 'Inference logs' }).click();
    // The default range (the last hour) holds the 10 000 rows inferred above.
    const drawn = await frameWhen(page, 'logs');
    logPageWall.push(performance.now() - t);
    const clicked = await page.evaluate(() => (globalThis as unknown as PageGlobals).__benchClick ?? NaN);
    logPage.push(drawn - clicked);
    // Where the log page's time went, from the performance timeline (all relative to the click).
    const timeline = await page.evaluate(() => {
      const perf = (globalThis as unknown as PageGlobals).performance;
      const marks: Record<string, number> = {};
      for (const m of perf.getEntriesByType('mark')) marks[m.name] = m.startTime;
      const res = perf.getEntriesByType('resource').filter((e) => /\/logs\?/.test(e.name));
      const r = res[res.length - 1];
      return {
        marks,
        fetchStart: r?.fetchStart ?? NaN,
        requestStart: r?.requestStart ?? NaN,
        responseStart: r?.responseStart ?? NaN,
        responseEnd: r?.responseEnd ?? NaN,
        bytes: r?.encodedBodySize ?? NaN,
      };
    });
    const m = timeline.marks;
    breakdown.push({
      toRequest: (m['quoll:logs:request'] ?? NaN) - clicked,
      server: timeline.responseStart - timeline.requestStart,
      transfer: timeline.responseEnd - timeline.responseStart,
      toBytes: (m['quoll:logs:bytes'] ?? NaN) - timeline.responseEnd,
      parse: (m['quoll:logs:parsed'] ?? NaN) - (m['quoll:logs:bytes'] ?? NaN),
      series: (m['quoll:logs:series'] ?? NaN) - (m['quoll:logs:parsed'] ?? NaN),
      commit: (m['quoll:logs:committed'] ?? NaN) - (m['quoll:logs:series'] ?? NaN),
      chart: (m['quoll:chart:drawn'] ?? NaN) - (m['quoll:logs:committed'] ?? NaN),
      toFrame: drawn - Math.max(m['quoll:chart:drawn'] ?? NaN, m['quoll:logs:committed'] ?? NaN),
      kb: timeline.bytes / 1024,
    });
    await context.close();
  }
} finally {
  await browser.close();
  server.kill('SIGTERM');
  await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
  rmSync(home, { recursive: true, force: true });
}
const row = {
  referencePageMs: median(reference),
  firstLoadMs: median(firstLoad),
  firstLoadWallMs: median(firstLoadWall),
  firstLoadOverReference: median(firstLoad) / median(reference),
  logPage10kMs: median(logPage),
  logPage10kWallMs: median(logPageWall),
};
console.log(JSON.stringify(row));
printTable(
  [
    'reference page ms',
    'first load ms (page)',
    'first load ms (wall)',
    'load/reference',
    '10 000-row log page ms (page)',
    '(wall)',
  ],
  [
    [
      row.referencePageMs,
      row.firstLoadMs,
      row.firstLoadWallMs,
      row.firstLoadOverReference,
      row.logPage10kMs,
      row.logPage10kWallMs,
    ],
  ],
);
/** The median of each field over the repetitions. */
const medians = (rows: Record<string, number>[]): Record<string, number> =>
  Object.fromEntries(
    Object.keys(rows[0] ?? {}).map((k) => [k, Math.round(median(rows.map((r) => r[k] ?? NaN)) * 10) / 10]),
  );
const firstLoadTimeline = medians(loadTimeline);
const logPageBreakdown = medians(breakdown);
console.log('first load timeline (ms from navigation start, medians):', JSON.stringify(firstLoadTimeline));
console.log('log page breakdown (ms, medians):', JSON.stringify(logPageBreakdown));
writeResults('console', {
  reps: REPS,
  ...row,
  firstLoadTimeline,
  logPageBreakdown,
  samples: { reference, firstLoad, firstLoadWall, logPage, logPageWall },
});
