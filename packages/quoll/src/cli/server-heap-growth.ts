import { setFlagsFromString } from 'node:v8';

/**
 * The V8 flag `quoll server` sets: after each full collection the old generation may grow to
 * 4 × what survived (`1 + 300 / 100`) before the next one starts. V8 picks 1.1–4 × by itself
 * from its GC and mutator speeds, and picks low for the server.
 */
export const SERVER_HEAP_GROWTH_FLAG = '--heap-growing-percent=300';

/**
 * For `quoll server` only, sets {@link SERVER_HEAP_GROWTH_FLAG} for the whole process (the
 * HTTP thread and the worker threads). V8 reads it each time it recomputes the heap's limits,
 * so it applies from the first full collection on.
 *
 * Why: the inference path's memory is mostly `ArrayBuffer`s (request bodies, tensors, Arrow
 * answers: ≈ 310 KiB per 1000-row Arrow request on the HTTP thread) and little JavaScript heap.
 * The young generation (16 MiB) then fills so slowly that hundreds of requests pass between
 * scavenges, and the buffers that died meanwhile count against the old generation's limit
 * until something collects them. With the limit V8 chose (≈ 2 × a ≈ 24 MiB heap) that was a
 * mark-compact of the whole heap every ≈ 40 requests (every ≈ 200 ms), with concurrent
 * marking on the platform threads that share the core. With room for them, the buffers are
 * freed by V8's cheap scavenge for external memory (every 32 MiB of young buffers) and
 * full collections become rare (docs/benchmarks.md, "Serving lane, 3 December"). The price is
 * memory: up to ≈ 4 × the live heap before a full collection.
 *
 * Returns whether the flag was set: not for other commands, nor when the node command line
 * already sets it, which then wins (node refuses it in `NODE_OPTIONS`: it goes on node's own
 * command line, `node --heap-growing-percent=100 …/quoll server`).
 */
export function setServerHeapGrowth(
  args: readonly string[],
  nodeFlags: readonly string[] = process.execArgv,
): boolean {
  if (!isServerCommand(args)) return false;
  if (nodeFlags.some((flag) => /^--heap[-_]growing[-_]percent\b/.test(flag))) return false;
  setFlagsFromString(SERVER_HEAP_GROWTH_FLAG);
  return true;
}

/** The program's options that take a value (see `build-program.ts`): their value is not the command. */
const VALUE_OPTIONS = new Set(['--url', '--token', '--home', '-w', '--workspace']);

/** Whether the command line (without node and the script) runs `quoll server`. */
export function isServerCommand(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return false;
    if (VALUE_OPTIONS.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg === 'server';
  }
  return false;
}
