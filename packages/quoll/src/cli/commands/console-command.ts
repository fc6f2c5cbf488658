import { spawn } from 'node:child_process';
import { Command } from 'commander';
import type { SignInLinkDto } from '../../server/routes/session-routes.js';
import { clientFrom } from '../client-options.js';

/**
 * `quoll console [--no-open]`: prints a one-time sign-in link for the web console of the
 * server the CLI points at, and opens it when a browser can be started here.
 */
export function consoleCommand(): Command {
  return new Command('console')
    .description(
      'Print a one-time link that signs a browser in to the web console (as this token, same workspace scope; valid once, for 10 minutes) and open it when a browser is available',
    )
    .option('--no-open', 'only print the link, do not try to open a browser')
    .option('--json', 'print { url, expiresAt } as JSON')
    .action(async (opts: { open: boolean; json?: boolean }, c: Command) => {
      const client = await clientFrom(c, { select: false });
      const link = await client.http.json<SignInLinkDto>('POST', '/v1/console/sign-in-links', { json: {} });
      const url = `${client.url}${link.path}`;
      if (opts.json) {
        process.stdout.write(JSON.stringify({ url, expiresAt: link.expiresAt }) + '\n');
      } else {
        process.stdout.write(
          `Open this link to sign in to the Quoll console (works once, until ${link.expiresAt}):\n${url}\n`,
        );
      }
      if (opts.open && !opts.json) openBrowser(url);
    });
}

/** Starts the desktop's browser on `url` when there is a desktop; failures are silent (the link is printed). */
function openBrowser(url: string): void {
  const opener =
    process.platform === 'darwin'
      ? 'open'
      : process.platform === 'win32'
        ? 'explorer'
        : process.env.DISPLAY || process.env.WAYLAND_DISPLAY
          ? 'xdg-open'
          : null;
  if (opener === null) return;
  try {
    const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // No opener on this machine: the printed link is enough.
  }
}
