import { describe, expect, it } from 'vitest';
import { SecretRedactor, collectSecretValues, makeRedactor } from './secret-redactor.js';

describe('collectSecretValues', () => {
  it('collects every string leaf and long numbers, skipping keys and values under 4 characters', () => {
    const values = collectSecretValues({
      host: 'https://example.com/data.arrow',
      nested: { list: ['alpha-token', 'ab', { deep: 'deep-secret' }], port: 5432, small: 80, flag: true },
      empty: null,
    });
    expect(values.sort()).toEqual(
      ['5432', 'alpha-token', 'deep-secret', 'https://example.com/data.arrow'].sort(),
    );
    expect(values).not.toContain('host');
    expect(values).not.toContain('ab');
    expect(values).not.toContain('80');
  });

  it('collects each line and the JSON-escaped form of a multi-line value (PEM keys)', () => {
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA\n-----END PRIVATE KEY-----\n';
    const values = collectSecretValues({ private_key: pem });
    expect(values).toContain(pem);
    expect(values).toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
    expect(values).toContain(JSON.stringify(pem).slice(1, -1));
  });
});

describe('makeRedactor', () => {
  it('replaces every occurrence of each secret and leaves other text alone', () => {
    const redact = makeRedactor(['hunter2-pw', 'tok_abc123']);
    expect(redact('login with hunter2-pw then hunter2-pw again, token=tok_abc123.')).toBe(
      'login with ***** then ***** again, token=*****.',
    );
    expect(redact('nothing secret here: hunter2')).toBe('nothing secret here: hunter2');
  });

  it('treats regex special characters in secrets literally', () => {
    const secret = 'a.b*c+(d)[e]{f}|g^h$i\\j?k/l-m';
    const redact = makeRedactor([secret]);
    expect(redact(`x ${secret} y`)).toBe('x ***** y');
    // The "." must not match any character.
    expect(redact('aXb*c+(d)[e]{f}|g^h$i\\j?k/l-m')).toBe('aXb*c+(d)[e]{f}|g^h$i\\j?k/l-m');
  });

  it('hides a secret that contains another one whole (longest first)', () => {
    const redact = makeRedactor(['pass', 'password-1234']);
    expect(redact('password-1234 and pass')).toBe('***** and *****');
  });

  it('ignores values under 4 characters and is the identity with no secrets', () => {
    expect(makeRedactor(['ab', 'xyz'])('ab xyz abc')).toBe('ab xyz abc');
    expect(makeRedactor([])('anything')).toBe('anything');
  });

  it('redacts a details object printed as JSON by a task', () => {
    const details = {
      host: 'https://h.example.com/f.arrow',
      private_key: 'line-one-secret\nline-two-secret',
    };
    const redact = makeRedactor(collectSecretValues(details));
    const printed = redact(JSON.stringify(details));
    expect(printed).toBe('{"host":"*****","private_key":"*****"}');
    expect(redact('line-two-secret')).toBe('*****');
  });
});

describe('SecretRedactor', () => {
  it('learns more secrets as a run reads more connections', () => {
    const r = new SecretRedactor(['first-secret']);
    expect(r.redact('first-secret second-secret')).toBe('***** second-secret');
    r.addDetails({ b: 'second-secret', port: 8080 });
    expect(r.redact('first-secret second-secret :8080')).toBe('***** ***** :*****');
    expect(r.size).toBe(3);
  });
});
