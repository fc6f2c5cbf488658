import { describe, expect, it } from 'vitest';
import { cliTerms } from './cli-hints.js';

describe('cliTerms', () => {
  it('names CLI commands where messages name SDK calls', () => {
    expect(cliTerms('No pipeline is named "p"; create it with buildPipeline("p").')).toBe(
      'No pipeline is named "p"; create it with quoll pipeline create p.',
    );
    expect(cliTerms('No workspace "w"; getWorkspace("w", { createIfNotExist: true }) creates it.')).toBe(
      'No workspace "w"; quoll workspace get w --create creates it.',
    );
    expect(cliTerms('No orchestration has id "x"; listOrchestrations() shows the ones you can use.')).toBe(
      'No orchestration has id "x"; quoll orchestration list shows the ones you can use.',
    );
    expect(cliTerms('Please request logs using exportLogs.')).toBe(
      'Please request logs using quoll pipeline logs --export <dir>.',
    );
    expect(cliTerms('No Quoll credentials found: pass new Client({ url, token }), set QUOLL_URL')).toBe(
      'No Quoll credentials found: pass --url and --token, set QUOLL_URL',
    );
  });

  it('leaves other text alone', () => {
    expect(cliTerms('Schedule "x" is not a 5-field cron expression.')).toBe(
      'Schedule "x" is not a 5-field cron expression.',
    );
  });
});
