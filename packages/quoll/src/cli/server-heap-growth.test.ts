import { beforeEach, describe, expect, it, vi } from 'vitest';

const setFlagsFromString = vi.fn();
vi.mock('node:v8', () => ({ setFlagsFromString }));
const { SERVER_HEAP_GROWTH_FLAG, isServerCommand, setServerHeapGrowth } =
  await import('./server-heap-growth.js');

describe('setServerHeapGrowth', () => {
  beforeEach(() => setFlagsFromString.mockClear());

  it('sets the heap growth flag for `quoll server`', () => {
    expect(setServerHeapGrowth(['server', '--home', '/tmp/q', '--port', '0'], [])).toBe(true);
    expect(setFlagsFromString).toHaveBeenCalledExactlyOnceWith(SERVER_HEAP_GROWTH_FLAG);
    expect(SERVER_HEAP_GROWTH_FLAG).toBe('--heap-growing-percent=300');
  });

  it('leaves V8 alone for every other command', () => {
    for (const args of [[], ['pipeline', 'list'], ['--json', 'model', 'upload', 'server'], ['--', 'server']])
      expect(setServerHeapGrowth(args, [])).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
  });

  it('lets a growth percent on the node command line win', () => {
    expect(setServerHeapGrowth(['server'], ['--heap-growing-percent=50'])).toBe(false);
    expect(setServerHeapGrowth(['server'], ['--heap_growing_percent=50'])).toBe(false);
    expect(setFlagsFromString).not.toHaveBeenCalled();
    // Unrelated node flags do not stop it.
    expect(setServerHeapGrowth(['server'], ['--max-old-space-size=512', '--import', 'tsx'])).toBe(true);
  });
});

describe('isServerCommand', () => {
  it('finds the command after the program options, skipping their values', () => {
    expect(isServerCommand(['server'])).toBe(true);
    expect(isServerCommand(['--json', 'server', '--port', '0'])).toBe(true);
    expect(isServerCommand(['--home', 'server-home', 'server'])).toBe(true);
    expect(isServerCommand(['-w', 'server', 'pipeline', 'list'])).toBe(false);
    expect(isServerCommand(['--url', 'http://x', 'pipeline', 'server'])).toBe(false);
    expect(isServerCommand(['--', 'server'])).toBe(false);
  });
});
