import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { hashPythonEnv, normaliseRequirements } from './python-requirements.js';

const py = { executable: '/usr/bin/python3.11', version: [3, 11, 2] };

describe('normaliseRequirements', () => {
  it('drops comments, blank lines and spacing, joins continuations and keeps the order', () => {
    const { lines } = normaliseRequirements(
      '# pinned\nrequests==2.31.0   # http\n\n--extra-index-url https://x.test/simple\npandas \\\n  >=2.0\n',
      'requirements.txt',
    );
    expect(lines).toEqual(['requests==2.31.0', '--extra-index-url https://x.test/simple', 'pandas >=2.0']);
  });

  it('leaves out the quoll client (the server provides it) and says so', () => {
    const { lines, provided } = normaliseRequirements(
      'quoll\nQuoll>=0.1\nquollhelper==1\n',
      'requirements.txt',
    );
    expect(lines).toEqual(['quollhelper==1']);
    expect(provided).toEqual(['quoll', 'Quoll>=0.1']);
  });

  it('refuses lines that read other files or name local paths', () => {
    for (const line of [
      '-r other.txt',
      '--requirement=x.txt',
      '-e .',
      '-c constraints.txt',
      './pkg',
      '/opt/x.whl',
      // A local path after an option or a direct reference, not only at the line's start.
      '--find-links /opt/wheels',
      '-f file:///opt/wheels',
      '--find-links=/opt/wheels',
      '--index-url file:///srv/simple',
      '--extra-index-url=file:///srv/simple',
      'pkg @ file:///opt/pkg-1.0.tar.gz',
      'pkg@file:///opt/pkg',
      'pkg @ ../pkg',
    ]) {
      let err: unknown;
      try {
        normaliseRequirements(`${line}\n`, 'requirements.txt');
      } catch (e) {
        err = e;
      }
      expect(err, line).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe('invalid_archive');
    }
    // Remote sources and ordinary requirements still pass.
    expect(
      normaliseRequirements(
        '--find-links https://wheels.example/ \n-i https://pypi.example/simple\nrequests==2.31.0 ; python_version >= "3.9"\npkg @ https://files.example/pkg-1.0.tar.gz\nx==1 --hash=sha256:abc\n',
        'requirements.txt',
      ).lines,
    ).toHaveLength(5);
  });
});

describe('hashPythonEnv', () => {
  it('is equal for equal sets and differs by set, order, interpreter and minor version', () => {
    const a = hashPythonEnv(['a==1', 'b==2'], py);
    expect(hashPythonEnv(['a==1', 'b==2'], { ...py, version: [3, 11, 9] })).toBe(a);
    expect(hashPythonEnv(['a==1'], py)).not.toBe(a);
    expect(hashPythonEnv(['b==2', 'a==1'], py)).not.toBe(a);
    expect(hashPythonEnv(['a==1', 'b==2'], { ...py, version: [3, 12, 0] })).not.toBe(a);
    expect(hashPythonEnv(['a==1', 'b==2'], { ...py, executable: '/opt/py/bin/python3.11' })).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
  });
});
