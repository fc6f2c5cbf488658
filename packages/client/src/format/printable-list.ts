import { inspectCustom } from './inspect-custom.js';

/**
 * An array that prints as the seed's table (or as lines) with `String()`, `console.log` and in a
 * REPL. Otherwise it is a plain array: `map`, `filter` and the like return ordinary arrays.
 */
export abstract class PrintableList<T> extends Array<T> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }

  /** @internal A list of this kind holding `items`. */
  static fill<T, L extends PrintableList<T>>(this: new () => L, items: Iterable<T>): L {
    const list = new this();
    // One push per item: spreading a very long array into push() overflows the stack.
    for (const item of items) list.push(item);
    return list;
  }

  /** The printed form. */
  abstract override toString(): string;

  [inspectCustom](): string {
    return this.toString();
  }
}
