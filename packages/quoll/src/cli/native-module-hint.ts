/** A native module whose load failure has a known fix. */
interface NativeModule {
  /** Package name. */
  name: string;
  /** What it is for, in the user's terms. */
  role: string;
  /** Matches its load error (the file or package names that appear in it). */
  pattern: RegExp;
}

const NATIVE_MODULES: readonly NativeModule[] = [
  { name: 'better-sqlite3', role: 'the embedded SQLite store', pattern: /better[-_]sqlite3/ },
  { name: 'onnxruntime-node', role: 'the ONNX inference engine', pattern: /onnxruntime[-_](node|binding)/ },
];

/**
 * What to run when a native module failed to load because its build or install script did not
 * run (`npm install --ignore-scripts`, pnpm without approved builds, an install-script policy) or
 * it was built for another Node.js; null for any other error.
 * @example nativeModuleHint(new Error('Could not locate the bindings file. Tried: → …/better_sqlite3.node'))
 */
export function nativeModuleHint(err: unknown): string | null {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  const module = NATIVE_MODULES.find((m) => m.pattern.test(message));
  if (module === undefined) return null;
  const rebuild = `npm rebuild ${module.name}`;
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js version/.test(message)) {
    return (
      `${module.name} (${module.role}) was built for another Node.js version than this one (${process.version}). ` +
      `Rebuild it: ${rebuild} (pnpm: pnpm rebuild ${module.name}).`
    );
  }
  if (
    /Could not locate the bindings file|Cannot find module .*\.node|ERR_DLOPEN_FAILED|cannot open shared object/.test(
      message,
    )
  ) {
    return (
      `${module.name} (${module.role}) has no native build: its install script did not run ` +
      '(npm install --ignore-scripts, pnpm without approved builds, or an install-script policy). ' +
      `Build it with: ${rebuild} (pnpm: pnpm approve-builds, then pnpm rebuild ${module.name}). ` +
      `To let future installs build it, add "allowScripts": { "${module.name}": true } to your package.json.`
    );
  }
  return null;
}
