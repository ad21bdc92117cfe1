import { type Command, Option } from 'commander';
import { CONFIG_KEYS, type Config, loadConfig, readConfigFile } from '../config.js';
import { addConfigOptions } from './options.js';
import { runServer } from './process.js';

export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run the caretkv server (what `npm start` runs)');
  serve.addOption(
    new Option(
      '--config <file>',
      'JSON config file: any setting by name (camelCase), plus users and permissions; flags and env override it; re-read on SIGHUP and by the CONFIG RELOAD action',
    ),
  );
  addConfigOptions(serve, CONFIG_KEYS).action(async (raw: Record<string, unknown>) => {
    const { config: file, ...flags } = raw;
    const load = (): Config =>
      typeof file === 'string'
        ? loadConfig({ file: readConfigFile(file), fileName: file, env: process.env, flags })
        : loadConfig({ env: process.env, flags });
    await runServer(load(), undefined, typeof file === 'string' ? load : undefined);
  });
}
