/**
 * README's Configuration section is written by hand, for people; this keeps it true to the schema
 * (src/config.ts), which is the single source of truth: one row per setting with the flag, the
 * environment variable and the default that `caretkv --help` prints, the schema's description, no
 * row for a setting that does not exist, and a config-file example the server would accept.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { launcherNodeFlags } from '../bench/lib/servers.js';
import { buildProgram } from '../src/cli/main.js';
import { settingsHelp } from '../src/cli/options.js';
import { CONFIG_KEYS, type ConfigKey, ConfigSchema, envName, flagName, loadConfig } from '../src/config.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The lines of one `## Title` section, up to the next `## ` heading. */
function section(markdown: string, title: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${title}`);
  if (start === -1) throw new Error(`README has no "## ${title}" section`);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/** A table cell as a reader sees it: no code spans, `\|` unescaped, spaces collapsed. */
const plain = (cell: string): string =>
  cell.replaceAll('`', '').replaceAll('\\|', '|').replace(/\s+/g, ' ').trim();

/** Cells of a `| a | b |` row; a `\|` inside a cell is not a column break. */
const cells = (row: string): string[] =>
  row
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());

interface Row {
  flag: string;
  env: string;
  default: string;
  meaning: string;
}

/** Every row of every table in the section; each table must have flag, env, default and meaning columns. */
function settingsRows(lines: readonly string[]): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('|')) continue;
    const header = cells(lines[i]!).map((cell) => cell.toLowerCase());
    const column = (name: string): number => {
      const at = header.indexOf(name);
      if (at === -1) throw new Error(`a Configuration table lacks a "${name}" column: ${lines[i]}`);
      return at;
    };
    const [flag, env, def, meaning] = ['flag', 'env', 'default', 'meaning'].map(column) as [
      number,
      number,
      number,
      number,
    ];
    i += 2; // the header and the |---| line
    for (; i < lines.length && lines[i]!.startsWith('|'); i++) {
      const row = cells(lines[i]!);
      rows.push({
        flag: plain(row[flag] ?? ''),
        env: plain(row[env] ?? ''),
        default: plain(row[def] ?? ''),
        meaning: plain(row[meaning] ?? ''),
      });
    }
  }
  return rows;
}

/** flag -> default, as `caretkv --help` prints them (booleans as yes/no, optional ones as none). */
function helpDefaults(): Map<string, string> {
  const defaults = new Map<string, string>();
  for (const line of settingsHelp(CONFIG_KEYS).split('\n')) {
    const match = /^\s+(--[a-z-]+)\s+CARETKV_[A-Z_]+\s+(\S+)$/.exec(line);
    if (match) defaults.set(match[1]!, match[2]!);
  }
  return defaults;
}

const CONFIGURATION = section(README, 'Configuration');
const rows = settingsRows(CONFIGURATION);
const defaults = helpDefaults();

describe("README's Configuration section", () => {
  it('has tables to check, and `caretkv --help` has a default for every setting', () => {
    expect(rows.length).toBeGreaterThan(0);
    expect([...defaults.keys()]).toEqual(CONFIG_KEYS.map(flagName));
  });

  it.each(CONFIG_KEYS)('%s: a row with its flag, environment variable and default', (key: ConfigKey) => {
    const row = rows.find((r) => r.flag === flagName(key));
    expect(row, `README's Configuration tables have no row for ${flagName(key)}`).toBeDefined();
    expect(row!.env).toBe(envName(key));
    expect(row!.default).toBe(defaults.get(flagName(key)));
  });

  it.each(CONFIG_KEYS)("%s: the meaning is the schema's description", (key: ConfigKey) => {
    const schema = ConfigSchema.properties[key];
    const meaning = rows.find((r) => r.flag === flagName(key))?.meaning ?? '';
    // The README may say more (after the description), never something else.
    expect(
      meaning.startsWith(plain(schema.description!)),
      `${meaning}\n  should start with\n${schema.description}`,
    ).toBe(true);
    for (const choice of 'enum' in schema ? (schema.enum as string[]) : []) expect(meaning).toContain(choice);
  });

  it('lists no flag that is not a setting, and none twice', () => {
    const known = new Set(CONFIG_KEYS.map(flagName));
    const listed = rows.map((r) => r.flag);
    expect(listed.filter((flag) => !known.has(flag))).toEqual([]);
    expect(listed.filter((flag, i) => listed.indexOf(flag) !== i)).toEqual([]);
  });

  it('shows a config file the server accepts', () => {
    const start = CONFIGURATION.indexOf('```json');
    expect(start, 'a ```json example of the config file').toBeGreaterThan(-1);
    const end = CONFIGURATION.indexOf('```', start + 1);
    const file = JSON.parse(CONFIGURATION.slice(start + 1, end).join('\n')) as Record<string, unknown>;
    expect(() => loadConfig({ file, fileName: 'README example' })).not.toThrow();
  });
});

describe('README', () => {
  it('mentions only flags that some caretkv command takes, or that the command passes to Node', () => {
    const flags = new Set([
      '--help',
      ...launcherNodeFlags(fileURLToPath(new URL('../src/cli.ts', import.meta.url))).map(
        (flag) => flag.split('=')[0]!,
      ),
    ]);
    const collect = (command: Command): void => {
      for (const option of command.options) if (option.long) flags.add(option.long);
      command.commands.forEach(collect);
    };
    collect(buildProgram());
    // Lines that run Redis's own programs (cluster mode) show their flags, not caretkv's.
    const ours = README.split('\n')
      .filter((line) => !/\bredis-(server|cli) --/.test(line))
      .join('\n');
    const mentioned = new Set(ours.match(/(?<![\w-])--[a-z][a-z-]*/g));
    expect([...mentioned].filter((flag) => !flags.has(flag))).toEqual([]);
  });
});
