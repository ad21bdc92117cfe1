/**
 * The second half of `npm run build`: tsc has compiled src/ to dist/ (the library, its types, and
 * every module as a file); this bundles the `caretkv` command (dist/cli.js) and the load
 * generator's worker (dist/cli/bench/worker.js) in place, each module once, with what is loaded on
 * demand (`cli` shell, `bench` generator, pino-pretty) split into dist/chunks/.
 *
 * Why: loading ~360 module files (200 of them TypeBox's ESM build) was half of `caretkv serve`'s
 * start-up, ~150 ms on the 2-core machine of docs/benchmarks.md; bundled, the server is ready to
 * answer in about half the time (see the optimisation table there). The library (dist/index.js)
 * stays as tsc wrote it, so applications that import caretkv load and tree-shake it as usual.
 *
 *   npx tsx scripts/bundle.ts        (after tsc; `npm run build` runs both)
 */
import { chmodSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const chunks = join(dist, 'chunks');

// Chunk names carry content hashes: drop the previous build's so none linger.
rmSync(chunks, { recursive: true, force: true });

await build({
  entryPoints: [join(dist, 'cli.js'), join(dist, 'cli', 'bench', 'worker.js')],
  outdir: dist,
  outbase: dist,
  // The entries are tsc's output: rewrite them with their bundles.
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Dependencies are bundled too: their file count is the cost. CommonJS ones (ajv, pino) may call
  // `require` for Node's built-ins, which an ES module does not have; give every output one.
  banner: {
    js: "import { createRequire as __caretkvRequire } from 'node:module'; const require = __caretkvRequire(import.meta.url);",
  },
  // Stack traces point into src/ through tsc's maps (node --enable-source-maps).
  sourcemap: 'linked',
  logLevel: 'warning',
});

// The command runs by its #! line (./dist/cli.js serve), as npm makes an installed bin executable.
chmodSync(join(dist, 'cli.js'), 0o755);
