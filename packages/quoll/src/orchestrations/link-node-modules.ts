import { mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * (Re)creates an orchestration's `node_modules` as a directory of links: one per package
 * of the installed environment (scoped packages inside a real `@scope/` folder) plus
 * `@quoll/client` pointing at the server's own SDK package.
 *
 * Links, not a copy and not a link to the whole shared environment: the environment stays
 * untouched (other orchestrations share it) while `@quoll/client` is still added. Node
 * follows each link to its real path, so a package's own dependencies resolve inside the
 * environment.
 */
export async function linkNodeModules(
  target: string,
  envNodeModulesDir: string | null,
  clientPackageDir: string,
): Promise<void> {
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  if (envNodeModulesDir !== null) {
    for (const name of await readdir(envNodeModulesDir)) {
      // .bin, .package-lock.json and npm's temporary folders are not packages.
      if (name.startsWith('.')) continue;
      if (name.startsWith('@')) {
        await mkdir(join(target, name), { recursive: true });
        for (const member of await readdir(join(envNodeModulesDir, name))) {
          await symlink(join(envNodeModulesDir, name, member), join(target, name, member), 'dir');
        }
      } else {
        await symlink(join(envNodeModulesDir, name), join(target, name), 'dir');
      }
    }
  }
  await mkdir(join(target, '@quoll'), { recursive: true });
  await rm(join(target, '@quoll', 'client'), { recursive: true, force: true });
  await symlink(clientPackageDir, join(target, '@quoll', 'client'), 'dir');
}
