/**
 * The architecture, checked: data flows one way (bytes -> frame -> decode -> command table ->
 * store/broker -> encode -> bytes), so each src/ folder may import only the rooms below it, no
 * module takes part in an import cycle (type-only and dynamic imports count: they couple modules
 * as much), and unit tests beside the code never reach into test/'s black-box helpers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = dirname(fileURLToPath(import.meta.url));

/** Shared leaf modules at src/'s top level: any room may use them. */
const NEUTRAL = new Set(['log.ts', 'path.ts', 'quote.ts', 'result.ts', 'turn.ts', 'version.ts']);

/** What each room may import besides itself and the neutral modules. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  transport: [],
  protocol: ['transport'],
  store: [],
  pubsub: ['store', 'transport'],
  auth: ['protocol', 'store', 'pubsub', 'transport'],
  commands: ['auth', 'protocol', 'pubsub', 'store', 'transport'],
  client: ['protocol'],
  cli: ['auth', 'client', 'protocol', 'store', 'transport', '(root)'],
};

const IMPORT = /(?:import|export)\s[^'";]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

/** Relative imports of a file, as paths relative to src/ (`../test/...` stays outside it). */
function importsOf(file: string): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2])!.replace(/\.js$/, '.ts');
    out.push(relative(SRC, resolve(dirname(file), spec)));
  }
  return out;
}

const room = (path: string): string => (path.includes('/') ? path.split('/')[0]! : '(root)');
const isTest = (path: string): boolean => /\.(test|contract)\.ts$/.test(path);

const graph = new Map<string, string[]>();
for (const file of sources(SRC)) {
  const path = relative(SRC, file);
  if (!isTest(path)) graph.set(path, importsOf(file));
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('architecture', () => {
  it('reads the whole tree (so the rules below are not vacuous)', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('server.ts')?.length).toBeGreaterThan(5);
  });

  it('has no import cycle', () => {
    expect(cycles()).toEqual([]);
  });

  it('lets each room import only the rooms below it', () => {
    const violations: string[] = [];
    for (const [from, targets] of graph) {
      const allowed = MAY_IMPORT[room(from)];
      if (allowed === undefined) continue; // the composition root and the public API may use any room
      for (const to of targets) {
        if (room(to) === room(from) || NEUTRAL.has(to)) continue;
        if (!allowed.includes(room(to))) violations.push(`${from} -> ${to}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('keeps the neutral modules neutral', () => {
    for (const path of NEUTRAL) {
      for (const to of graph.get(path) ?? [])
        expect(`${path} -> ${to}`).toMatch(/ -> (protocol\/errors\.ts|[a-z]+\.ts)$/);
    }
  });

  it('unit tests beside the code import nothing from test/ (black-box helpers stay there)', () => {
    const offenders = sources(SRC)
      .filter((file) => isTest(relative(SRC, file)))
      .flatMap((file) =>
        importsOf(file)
          .filter((to) => to.startsWith('../test/'))
          .map((to) => `${relative(SRC, file)} -> ${to}`),
      );
    expect(offenders).toEqual([]);
  });
});
