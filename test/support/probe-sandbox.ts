import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_LIMITS, setUpSandbox, type SandboxSetup } from '../../packages/quoll/src/runner/index.js';

/**
 * Sets up the runs' sandbox as a server here would (`--sandbox auto`, host network, no task
 * user, no limits), so tests learn whether theirs can run. Where there is none, CI fails at
 * once (it must run the sandbox tests); elsewhere the reason is printed, naming what `skipping`
 * says is skipped, and the caller skips it on `status.sandboxed`.
 *
 * @example const sandbox = await probeSandbox('the sandboxed-install tests');
 */
export async function probeSandbox(skipping: string): Promise<SandboxSetup> {
  const scratchDir = mkdtempSync(join(tmpdir(), 'quoll-sandbox-probe-'));
  let setup: SandboxSetup;
  try {
    setup = await setUpSandbox({
      mode: 'auto',
      network: 'host',
      taskUser: null,
      limits: NO_LIMITS,
      scratchDir,
      apiPort: () => 9,
    });
  } finally {
    rmSync(scratchDir, { recursive: true, force: true });
  }
  if (!setup.status.sandboxed) {
    if (process.env.CI === 'true')
      throw new Error(`CI must run the sandbox tests, but: ${setup.status.reason}`);
    console.warn(`skipping ${skipping} (no sandbox here): ${setup.status.reason}`);
  }
  return setup;
}
