/**
 * Requests answered by HTTP status, in the order each status was first seen (the order the
 * scrape writes them, as a `Map` would). Two parallel arrays searched from the
 * front: a pipeline answers a handful of statuses, the common one (200) first, so a request
 * costs one comparison and one increment, with no hashing and no allocation.
 */
export class StatusCounts {
  readonly #statuses: number[] = [];
  readonly #counts: number[] = [];

  /** Counts one answer with `status`. */
  add(status: number): void {
    const statuses = this.#statuses;
    for (let i = 0; i < statuses.length; i++) {
      if (statuses[i] === status) {
        this.#counts[i]! += 1;
        return;
      }
    }
    statuses.push(status);
    this.#counts.push(1);
  }

  /** `[status, count]` pairs, in the order each status was first counted. */
  *entries(): IterableIterator<[number, number]> {
    for (let i = 0; i < this.#statuses.length; i++) yield [this.#statuses[i]!, this.#counts[i]!];
  }

  /** Answers with a status ≥ 400. */
  errors(): number {
    let errors = 0;
    for (let i = 0; i < this.#statuses.length; i++) if (this.#statuses[i]! >= 400) errors += this.#counts[i]!;
    return errors;
  }
}
