import { describe, expect, it } from 'vitest';
import { RunSecrets } from './run-secrets.js';

describe('RunSecrets', () => {
  it('hides the values a run read only in that run, and forgets them when the run ends', () => {
    const secrets = new RunSecrets();
    secrets.register('run-a');
    secrets.register('run-b');
    secrets.recordRead('task-run:run-a', { host: 'https://h/x?sig=topsecret', user: 'alice' });
    expect(secrets.redact('GET https://h/x?sig=topsecret as alice', 'run-a')).toBe('GET ***** as *****');
    expect(secrets.redact('topsecret', 'run-b')).toBe('topsecret');
    secrets.forget('run-a');
    expect(secrets.redact('topsecret', 'run-a')).toBe('topsecret');
    expect(secrets.size).toBe(1);
  });

  it('ignores reads by other subjects and by runs that are not registered', () => {
    const secrets = new RunSecrets();
    secrets.register('run-a');
    secrets.recordRead('admin', { password: 'hunter22' });
    secrets.recordRead('task-run:run-z', { password: 'hunter22' });
    expect(secrets.redact('hunter22', 'run-a')).toBe('hunter22');
    expect(secrets.redact('hunter22', 'run-z')).toBe('hunter22');
    expect(secrets.size).toBe(1);
  });

  it("hides the secrets given at registration (the run's own token) from the first line on", () => {
    const secrets = new RunSecrets();
    secrets.register('run-a', ['qk_runtokenvalue']);
    expect(secrets.redact('TOKEN=qk_runtokenvalue.', 'run-a')).toBe('TOKEN=*****.');
    // Registering again keeps what the run already hides, and adds.
    secrets.recordRead('task-run:run-a', { password: 'hunter22' });
    secrets.register('run-a', ['second-secret']);
    expect(secrets.redact('qk_runtokenvalue hunter22 second-secret', 'run-a')).toBe('***** ***** *****');
    expect(secrets.redact('qk_runtokenvalue', 'run-b')).toBe('qk_runtokenvalue');
  });
});
