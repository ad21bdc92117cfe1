import { readFileSync } from 'node:fs';

let cached: string | undefined;

/**
 * caretkv's version, from its package.json: the nearest one named `caretkv` above this module.
 * Searched for rather than at a fixed `../`, because the module sits at different depths in src/
 * (tsx, tests), in dist/ as tsc writes it, and in the bundled CLI (scripts/bundle.ts).
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  cached = '0.0.0';
  let dir = new URL('./', import.meta.url);
  for (let depth = 0; depth < 4; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'caretkv' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // No package.json here (or not readable): look one level up.
    }
    dir = new URL('../', dir);
  }
  return cached;
}
