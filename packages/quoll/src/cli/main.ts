#!/usr/bin/env node
import { setServerGcThreads } from './server-gc-threads.js';
import { setServerHeapGrowth } from './server-heap-growth.js';

// Before the program's modules load, so that every collection of the server sees them.
setServerHeapGrowth(process.argv.slice(2));
setServerGcThreads(process.argv.slice(2));
const { buildProgram } = await import('./build-program.js');
const { reportError } = await import('./output.js');

// `quoll … | head` closes the pipe early: stop quietly instead of dying on EPIPE with a stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw err;
  });
}

const args = process.argv.slice(2);
const end = args.indexOf('--');
// --json applies to errors as well, including the command line's own.
const json = (end < 0 ? args : args.slice(0, end)).includes('--json');

try {
  await buildProgram({ json }).parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err, { json });
}
