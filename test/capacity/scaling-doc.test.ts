import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCALING_DOC, capacityReport, scalingDoc } from '../../scripts/capacity.js';

/**
 * docs/scaling.md's tables are what `npm run capacity` prints from the committed constants:
 * regenerate them with `npm run capacity -- --write-docs` after `npm run bench:capacity`.
 */
describe('docs/scaling.md', () => {
  const doc = readFileSync(SCALING_DOC, 'utf8');

  it('holds the worked examples and the constants exactly as the script prints them', () => {
    expect(doc).toMatch(/<!-- capacity: --events-per-second 1000 --subjects 10000,1000000,10000000 -->/);
    expect(doc).toMatch(/<!-- capacity: --events-per-second 10000 --subjects 10000,1000000,10000000 -->/);
    expect(doc).toMatch(/<!-- capacity: --events-per-second 100000 --subjects 10000,1000000,10000000 -->/);
    expect(doc).toMatch(/<!-- capacity-constants -->/);
    expect(scalingDoc(doc)).toBe(doc);
  });

  it('is linked from the README', () => {
    expect(readFileSync(new URL('../../README.md', import.meta.url), 'utf8')).toMatch(/\]\(docs\/scaling\.md\)/);
  });

  it('the script refuses a bad flag with a message naming it', () => {
    expect(() => capacityReport(['--events-per-second', '-5', '--subjects', '10'])).toThrow(/--events-per-second/);
  });
});
