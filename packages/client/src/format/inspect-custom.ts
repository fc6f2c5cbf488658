/**
 * Node's `util.inspect.custom` symbol, taken from the global symbol registry so that no module
 * imports `node:util` and the SDK loads in a browser too. `console.log` and the REPL in Node call
 * the method of this name; browsers ignore it.
 */
export const inspectCustom: unique symbol = Symbol.for('nodejs.util.inspect.custom');
