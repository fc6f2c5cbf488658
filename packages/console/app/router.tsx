import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** The current location, as the console routes it. */
export interface Location {
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search) };
}

/**
 * Goes to a console page (a history entry, so back and forward work). `replace` corrects the
 * current entry instead (no new one); `scroll: false` keeps the scroll position (a pager's
 * button stays where it was, under the keyboard focus).
 */
export function navigate(to: string, options: { replace?: boolean; scroll?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  for (const l of listeners) l();
  if (options.scroll !== false) window.scrollTo(0, 0);
}

/**
 * The path and query of `at` (default: the current location) with query parameters set or,
 * for null, removed; the others stay as they are (a list's filters beside its page).
 */
export function withQuery(changes: Record<string, string | null>, at: Location = current()): string {
  const query = new URLSearchParams(at.query);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) query.delete(key);
    else query.set(key, value);
  }
  const search = query.toString();
  // `//tasks/…` (a link with a doubled slash, which the routes match) is another host to the
  // browser: pushState refuses it and an href made of it leaves the console.
  return at.path.replace(/^\/{2,}/, '/') + (search ? `?${search}` : '');
}

/**
 * A 1-based page number as a URL gives it, made the nearest valid one: absent, empty or not a
 * number is 1, a fraction is rounded, below 1 is 1, above `last` (when known) is `last`.
 */
export function pageNumber(raw: string | null, last = Infinity): number {
  const n = raw === null || raw.trim() === '' ? NaN : Number(raw);
  if (Number.isNaN(n)) return 1;
  return Math.max(1, Math.min(Math.round(n), Math.max(1, last)));
}

window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});

/** The current location; re-renders on navigation. */
export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = (): void => setLoc(current());
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  return loc;
}

/**
 * Matches `/pipelines/:ws/:name` against a path; the named parts, decoded, or null (also when a
 * part is not a valid escape, e.g. `%E0`: no page has it, and decoding it would throw while rendering).
 */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const part = p[i]!;
    const seg = s[i]!;
    if (part.startsWith(':')) {
      try {
        params[part.slice(1)] = decodeURIComponent(seg);
      } catch {
        return null;
      }
    } else if (part !== seg) return null;
  }
  return params;
}

/** An in-console link: a real <a href> (open in new tab works) that navigates without reloading. */
export function Link(props: {
  href: string;
  children: ComponentChildren;
  class?: string;
  'aria-current'?: 'page' | 'true' | undefined;
}): JSX.Element {
  const { href, children } = props;
  return (
    <a
      class={props.class}
      aria-current={props['aria-current']}
      href={href}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}
