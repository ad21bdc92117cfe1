import type { Command } from 'commander';
import { type ConfigKey, loadConfig } from '../config.js';
import { echoHandler } from '../transport/echo.js';
import { addConfigOptions } from './options.js';
import { runServer } from './process.js';

const ECHO_KEYS: readonly ConfigKey[] = [
  'host',
  'port',
  'idleTimeout',
  'maxConnections',
  'shutdownGrace',
  'logLevel',
  'logFormat',
];

export function registerEcho(program: Command): void {
  const echo = program
    .command('echo')
    .description('raw TCP echo server on the same transport: a network diagnostic and benchmark ceiling');
  addConfigOptions(echo, ECHO_KEYS).action(async (flags: Record<string, unknown>) => {
    await runServer(loadConfig({ env: process.env, flags }), echoHandler);
  });
}
