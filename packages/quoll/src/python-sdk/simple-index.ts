import type { PythonSdk } from './python-sdk.js';

/** A project name in the normalised form of PEP 503 (`Foo_Bar.baz` → `foo-bar-baz`). */
export function normalizeProjectName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The root page of a PEP 503 simple index: one link per project. */
export function renderProjectList(sdks: readonly PythonSdk[]): string {
  const links = sdks.map((s) => {
    const name = normalizeProjectName(s.name);
    return `<a href="${escapeHtml(name)}/">${escapeHtml(name)}</a>`;
  });
  return `<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>Simple index</title></head><body>\n${links.join('<br>\n')}\n</body></html>\n`;
}

/**
 * A project's page of a PEP 503 simple index: one link per file, to `filesPath` + file name, with
 * the `#sha256=` fragment pip checks and `data-requires-python` (PEP 503/345) so an old Python is
 * told it does not fit instead of installing it.
 */
export function renderProjectPage(sdks: readonly PythonSdk[], filesPath: string): string {
  const links = sdks.map(
    (s) =>
      `<a href="${escapeHtml(filesPath + s.wheelFile)}#sha256=${s.sha256}" data-requires-python="${escapeHtml(s.requiresPython)}">${escapeHtml(s.wheelFile)}</a>`,
  );
  const title = sdks[0] ? `Links for ${escapeHtml(normalizeProjectName(sdks[0].name))}` : 'Links';
  return `<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>${title}</title></head><body>\n<h1>${title}</h1>\n${links.join('<br>\n')}\n</body></html>\n`;
}
