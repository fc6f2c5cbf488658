/**
 * A store for tests with some of its methods replaced, the others as they are (bound to the
 * store): e.g. a task store whose `createTickRuns` fails once, to test what its caller does.
 *
 * @example
 * const failing = storeWith(store, { createTickRuns: () => Promise.reject(new Error('down')) });
 */
export function storeWith<T extends object>(store: T, overrides: Partial<T>): T {
  return new Proxy(store, {
    get: (target, key) => {
      if (typeof key === 'string' && key in overrides) return overrides[key as keyof T];
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
