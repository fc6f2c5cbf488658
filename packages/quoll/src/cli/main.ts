#!/usr/bin/env node
import { buildProgram } from './build-program.js';
import { reportError } from './output.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err);
}
