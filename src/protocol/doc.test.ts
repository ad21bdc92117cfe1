import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOC_PATH, renderDoc } from '../../scripts/gen-protocol-doc.js';
import { ERRORS } from './errors.js';
import { ACTIONS } from './schema.js';

const doc = readFileSync(DOC_PATH, 'utf8');

describe('docs/protocol.md', () => {
  it('is up to date with the schema, the command table and the error catalogue (run `npm run docs`)', () => {
    expect(renderDoc(doc)).toBe(doc);
  });

  it('documents every error code', () => {
    const missing = Object.keys(ERRORS).filter((code) => !doc.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });

  it('has a section for every action', () => {
    const missing = Object.keys(ACTIONS).filter((name) => !doc.includes(`\n### ${name}\n`));
    expect(missing).toEqual([]);
  });
});
