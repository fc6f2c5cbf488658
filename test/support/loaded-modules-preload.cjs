// Preloaded (`node --require`) into a `quoll server` by test/server-start-modules.test.ts: when
// the process exits, writes the CommonJS modules it loaded (every package an ES module imported
// too) to $QUOLL_TEST_LOADED_MODULES. Only the server's own process writes (not a child Node).
'use strict';
const { writeFileSync } = require('node:fs');
const Module = require('node:module');

const out = process.env.QUOLL_TEST_LOADED_MODULES;
if (out && process.argv.includes('server')) {
  process.on('exit', () => writeFileSync(out, JSON.stringify(Object.keys(Module._cache))));
}
