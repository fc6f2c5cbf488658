import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** The Chromium the browser tests drive: `QUOLL_TEST_CHROMIUM`, else /usr/bin/chromium. */
export const CHROMIUM = process.env.QUOLL_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Whether {@link CHROMIUM} is there (with `CI=true` the tests run anyway, and fail without it). */
export const hasChromium = existsSync(CHROMIUM);

/**
 * Starts {@link CHROMIUM} headless, as the browser tests need it: no sandbox (tests run as root),
 * no GPU, and none of Chromium's own background traffic.
 *
 * @example const browser = await launchChromium(); try { … } finally { await browser.close(); }
 */
export async function launchChromium(): Promise<Browser> {
  // Loaded on demand: test files import this module even when they skip their browser cases.
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
