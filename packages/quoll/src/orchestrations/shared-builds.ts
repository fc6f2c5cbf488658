import type { InstallLogSink } from './install-error.js';

interface Flight<T> {
  promise: Promise<T>;
  sinks: Set<InstallLogSink>;
  printed: string[];
}

/**
 * The builds of a content-addressed cache that are running in this process, by key: a second
 * request for a key being built joins the running build (it sees every line printed so far,
 * then the rest) instead of starting another, and gets its result marked `reused`.
 *
 * @example
 * const env = await builds.run(hash, log, async (print) => (await exists(dir) ? ready : build(print)));
 */
export class SharedBuilds<T extends { reused: boolean }> {
  private readonly flights = new Map<string, Flight<T>>();

  /** Whether a build of `key` is running. */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /**
   * Joins the build of `key` if one is running, else starts `build`.
   */
  run(
    key: string,
    log: InstallLogSink | undefined,
    build: (print: InstallLogSink) => Promise<T>,
  ): Promise<T> {
    const running = this.flights.get(key);
    if (running !== undefined) {
      if (log !== undefined) {
        for (const line of running.printed) log(line);
        running.sinks.add(log);
      }
      return running.promise.then((result) => ({ ...result, reused: true }));
    }
    const sinks = new Set<InstallLogSink>(log === undefined ? [] : [log]);
    const printed: string[] = [];
    const print = (line: string): void => {
      printed.push(line);
      for (const sink of sinks) sink(line);
    };
    // Registered in this same turn, so a concurrent call for the same key joins it.
    const flight: Flight<T> = {
      promise: build(print).finally(() => this.flights.delete(key)),
      sinks,
      printed,
    };
    this.flights.set(key, flight);
    return flight.promise;
  }
}
