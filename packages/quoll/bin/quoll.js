#!/usr/bin/env node
// The `quoll` command. It is a committed file (not the build output) so that `npm ci` can link
// it before the first build; the compiled CLI is in dist/ (`npm run build`).
await import('../dist/cli/main.js');
