import { describe, expect, it } from 'vitest';
import { nativeModuleHint } from './native-module-hint.js';

describe('nativeModuleHint', () => {
  it('names the rebuild command for better-sqlite3 errors when its build was skipped', () => {
    // The message better-sqlite3 throws (through the "bindings" package) when build/ is missing.
    const err = new Error(
      'Could not locate the bindings file. Tried:\n → /app/node_modules/better-sqlite3/build/better_sqlite3.node\n → /app/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    );
    const hint = nativeModuleHint(err);
    expect(hint).toMatch(/^better-sqlite3 \(the embedded SQLite store\) has no native build/);
    expect(hint).toContain('npm rebuild better-sqlite3');
    expect(hint).toContain('"allowScripts": { "better-sqlite3": true }');
  });

  it('says when a module was built for another Node.js', () => {
    const err = new Error(
      "The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 115.",
    );
    expect(nativeModuleHint(err)).toMatch(/built for another Node\.js version .*npm rebuild better-sqlite3/);
  });

  it('leaves every other error alone', () => {
    expect(nativeModuleHint(new Error('EACCES: permission denied, open /home/x/quoll.db'))).toBeNull();
    expect(nativeModuleHint(new Error('better-sqlite3: database is locked'))).toBeNull();
    expect(nativeModuleHint('not an error')).toBeNull();
  });
});
