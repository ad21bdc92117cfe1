import type { Command } from 'commander';
import { CONFIG_KEYS, loadConfig } from '../config.js';
import { addConfigOptions } from './options.js';
import { runServer } from './run.js';

export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run the caretkv server (what `npm start` runs)');
  addConfigOptions(serve, CONFIG_KEYS).action(async (flags: Record<string, unknown>) => {
    await runServer(loadConfig({ env: process.env, flags }));
  });
}
