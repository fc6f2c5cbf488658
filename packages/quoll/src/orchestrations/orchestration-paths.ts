import { join } from 'node:path';

/** Where one orchestration's files live under the home directory. */
export interface OrchestrationPaths {
  /** `<home>/orchestrations/<id>` */
  dir: string;
  /** The uploaded zip, kept as received: `<dir>/source.zip`. */
  sourceZip: string;
  /** The extracted zip root, the working directory of every run: `<dir>/files`. */
  filesDir: string;
  /**
   * `<dir>/node_modules`: links to the installed dependencies plus `@quoll/client`. It sits
   * beside `files/`, so code run in place finds it by Node's upward lookup even when the
   * zip ships its own `node_modules/`.
   */
  nodeModulesDir: string;
}

/** The paths of orchestration `id` under `home`. */
export function orchestrationPaths(home: string, id: string): OrchestrationPaths {
  const dir = join(home, 'orchestrations', id);
  return {
    dir,
    sourceZip: join(dir, 'source.zip'),
    filesDir: join(dir, 'files'),
    nodeModulesDir: join(dir, 'node_modules'),
  };
}
