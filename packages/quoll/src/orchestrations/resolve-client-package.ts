import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Finds the directory of the `@quoll/client` package the server itself uses, by Node's
 * own lookup order (`node_modules/@quoll/client` in this module's folder and each parent),
 * and returns its real path.
 *
 * A manual walk rather than `require.resolve`: the package exports only ESM entry points
 * and no `./package.json`, so CommonJS resolution cannot name it.
 *
 * @throws Error when the server was installed without `@quoll/client` (a broken install).
 */
export function resolveClientPackageDir(fromUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    const candidate = join(dir, 'node_modules', '@quoll', 'client');
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(
    'Cannot find the @quoll/client package next to the Quoll server; reinstall quoll (npm install quoll) so orchestrations can import it.',
  );
}
