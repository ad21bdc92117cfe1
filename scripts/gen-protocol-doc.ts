/**
 * Rewrites the generated sections of docs/protocol.md from the schema (src/protocol/schema.ts), the
 * command table (flags) and the error catalogue (src/protocol/errors.ts):
 *   <!-- actions:begin --> ... <!-- actions:end -->   every action: fields, types, result, errors
 *   <!-- errors:begin -->  ... <!-- errors:end -->    every error code with its meaning
 * Run: `npm run docs`. src/protocol/doc.test.ts fails when the committed document differs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { defaultCommandTable } from '../src/commands/index.js';
import { ERRORS } from '../src/protocol/errors.js';
import { PUSHES } from '../src/protocol/pushes.js';
import { ACTIONS } from '../src/protocol/schema.js';

export const DOC_PATH = fileURLToPath(new URL('../docs/protocol.md', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIOME = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));

/** Errors every action can answer with, whatever its fields. */
const GENERIC_ERRORS = [
  'BAD_JSON',
  'BAD_REQUEST',
  'UNKNOWN_ACTION',
  'LINE_TOO_LONG',
  'TOO_DEEP',
  'INTERNAL',
  'UNAVAILABLE',
];

/** A schema as a short type expression for a table cell. */
export function typeOf(s: TSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (Array.isArray(s.anyOf)) return (s.anyOf as TSchema[]).map(typeOf).join(' | ');
  const bounds: string[] = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (s.maxLength !== undefined) bounds.push(`≤ ${s.maxLength} chars`);
  if (s.minItems !== undefined) bounds.push(`≥ ${s.minItems} items`);
  if (s.maxItems !== undefined) bounds.push(`≤ ${s.maxItems} items`);
  if (s.minProperties !== undefined) bounds.push(`≥ ${s.minProperties} entries`);
  if (s.maxProperties !== undefined) bounds.push(`≤ ${s.maxProperties} entries`);
  const suffix = bounds.length > 0 ? ` (${bounds.join(', ')})` : '';
  const type = s.type as string | string[] | undefined;
  if (Array.isArray(type)) return `${type.join(' | ')}${suffix}`;
  switch (type) {
    case undefined:
      return 'any JSON';
    case 'array':
      return `${typeOf(s.items as TSchema)}[]${suffix}`;
    case 'object': {
      if (s.patternProperties) {
        const [value] = Object.values(s.patternProperties as Record<string, TSchema>);
        return `object of string → ${typeOf(value!)}${suffix}`;
      }
      const props = Object.entries((s.properties ?? {}) as Record<string, TSchema>);
      const required = new Set((s.required ?? []) as string[]);
      const fields = props.map(([k, v]) => `${k}${required.has(k) ? '' : '?'}: ${typeOf(v)}`);
      return `{ ${fields.join(', ')} }${suffix}`;
    }
    default:
      return `${type}${suffix}`;
  }
}

function cell(text: string | undefined): string {
  return (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderActions(): string {
  const table = defaultCommandTable();
  const out: string[] = [];
  for (const spec of Object.values(ACTIONS)) {
    const command = table.byName.get(spec.name)!;
    const request = spec.request as TSchema;
    const required = new Set((request.required ?? []) as string[]);
    out.push(`### ${spec.name}`, '', spec.summary, '');
    out.push('| field | type | required | meaning |', '|---|---|---|---|');
    for (const [name, field] of Object.entries(request.properties as Record<string, TSchema>)) {
      const type = typeOf(field);
      out.push(
        `| \`${name}\` | ${name === 'action' ? type : cell(type)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(field.description)} |`,
      );
    }
    const result = spec.result as TSchema;
    out.push(
      '',
      `**Result:** ${cell(typeOf(result))}${result.description ? ` — ${result.description}` : ''}`,
    );
    const errors = spec.errors.length > 0 ? spec.errors.map((c) => `\`${c}\``).join(', ') : 'none';
    out.push('', `**Errors:** ${errors} (besides the generic ones).`);
    out.push(
      '',
      `**Flags:** ${command.flags.length > 0 ? command.flags.map((f) => `\`${f}\``).join(', ') : 'none'}.`,
    );
    if (spec.notes) out.push('', spec.notes);
    out.push('');
  }
  return out.join('\n');
}

export function renderErrors(): string {
  const out = ['| code | meaning | generic |', '|---|---|---|'];
  for (const [code, meaning] of Object.entries(ERRORS)) {
    out.push(`| \`${code}\` | ${cell(meaning)} | ${GENERIC_ERRORS.includes(code) ? 'yes' : ''} |`);
  }
  return `${out.join('\n')}\n`;
}

/** The pushes table, from PUSHES (src/protocol/pushes.ts): the event, its fields, when it comes. */
export function renderPushes(): string {
  const out = ['| event | fields | when |', '|---|---|---|'];
  for (const [event, schema] of Object.entries(PUSHES)) {
    const props = Object.entries(schema.properties as Record<string, TSchema>).filter(([k]) => k !== 'event');
    const required = new Set((schema.required ?? []) as string[]);
    const fields = props.map(([k, v]) => `\`${k}${required.has(k) ? '' : '?'}\`: ${typeOf(v)}`).join(', ');
    out.push(`| \`${event}\` | ${cell(fields)} | ${cell(schema.description)} |`);
  }
  return `${out.join('\n')}\n`;
}

function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i === -1 || j === -1 || j < i) throw new Error(`docs/protocol.md lacks the ${begin} / ${end} markers`);
  return `${doc.slice(0, i + begin.length)}\n${body}${doc.slice(j)}`;
}

/**
 * Biome formats Markdown too (`npm run lint` checks it), so the generated tables go through the
 * same formatter: the document is then both current and lint-clean.
 */
function formatMarkdown(text: string): string {
  return execFileSync(BIOME, ['format', '--stdin-file-path=docs/protocol.md'], {
    cwd: ROOT,
    input: text,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'ignore'],
  });
}

/** The document with its generated sections brought up to date (and formatted). */
export function renderDoc(doc: string): string {
  return formatMarkdown(
    replaceSection(
      replaceSection(replaceSection(doc, 'actions', renderActions()), 'errors', renderErrors()),
      'pushes',
      renderPushes(),
    ),
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const current = readFileSync(DOC_PATH, 'utf8');
  const next = renderDoc(current);
  if (next === current) console.log('docs/protocol.md is up to date');
  else {
    writeFileSync(DOC_PATH, next);
    console.log('docs/protocol.md updated');
  }
}
