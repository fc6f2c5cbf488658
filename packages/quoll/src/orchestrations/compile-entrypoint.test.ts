import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompileError, compileEntrypoint } from './compile-entrypoint.js';

let root: string;
let files: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-compile-'));
  files = join(root, 'files');
  mkdirSync(files);
  writeFileSync(join(root, 'secret.json'), JSON.stringify({ token: 'S3CRET' }));
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

async function compileError(entry: string): Promise<CompileError> {
  const err = await compileEntrypoint(files, entry).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CompileError);
  return err as CompileError;
}

describe('compileEntrypoint', () => {
  it('refuses a symbolic link inside the files that points outside them, naming the import', async () => {
    symlinkSync(join(root, 'secret.json'), join(files, 'inside.json'));
    writeFileSync(join(files, 'main.ts'), "import s from './inside.json';\nconsole.log(s);");
    const err = await compileError('main.ts');
    expect(err.message).toContain(
      'import "./inside.json" in main.ts resolves outside the orchestration’s files',
    );
    expect(err.message).not.toContain('S3CRET');
    expect(err.message).not.toContain(root);
  });

  it('refuses a symbolic link to a folder outside, whatever the file below it', async () => {
    symlinkSync(root, join(files, 'up'));
    writeFileSync(join(files, 'main.ts'), "import s from './up/secret.json';\nconsole.log(s);");
    const err = await compileError('main.ts');
    expect(err.message).toContain('import "./up/secret.json"');
    expect(err.message).not.toContain('S3CRET');
  });

  it('keeps the excerpt of the upload’s own code in a syntax error', async () => {
    writeFileSync(join(files, 'main.ts'), 'const x = ;\n');
    const err = await compileError('main.ts');
    expect(err.message).toContain('main.ts:1:10');
    expect(err.message).toContain('const x = ;');
    expect(err.message).not.toContain(root);
  });

  it('reports a tsconfig.json that is not JSON, and accepts one with comments and trailing commas', async () => {
    writeFileSync(join(files, 'main.ts'), 'console.log(1);');
    writeFileSync(join(files, 'tsconfig.json'), '{ "compilerOptions": ');
    await expect(compileEntrypoint(files, 'main.ts')).rejects.toMatchObject({ code: 'invalid_archive' });
    writeFileSync(
      join(files, 'tsconfig.json'),
      '{ /* c */ "compilerOptions": { "strict": true, // s\n "jsx": "react-jsx", }, "include": ["a,]"], }',
    );
    const result = await compileEntrypoint(files, 'main.ts');
    expect(result.warnings).toEqual([
      'tsconfig.json: ignored include (only options that name no file apply)',
    ]);
  });
});
