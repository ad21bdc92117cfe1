/**
 * Authentication and configuration commands: AUTH HELLO CONFIG. The checks themselves live in
 * src/auth (the dispatcher applies them to every command); these only expose them.
 */
import { PROTOCOL_VERSION, type ResultOf } from '../protocol/schema.js';
import { Fail } from '../result.js';
import { type CommandContext, defineCommand, type ReloadSummary } from './table.js';

function hello(ctx: CommandContext): ResultOf<'HELLO'> {
  return {
    server: 'caretkv',
    version: ctx.server.version,
    protocol: PROTOCOL_VERSION,
    authRequired: ctx.auth.required,
    user: ctx.auth.userName,
  };
}

const NO_RELOAD = new Fail(
  'CONFIG_ERROR',
  'this server was started without a config file (--config), so there is nothing to reload',
);

const reloaded = (summary: ReloadSummary): ReloadSummary => summary;

export const authCommands = [
  defineCommand('AUTH', {
    flags: ['noAuth'],
    keys: { kind: 'none' },
    handler: (req, ctx) => ctx.auth.authenticate(req.user, req.password),
  }),

  defineCommand('HELLO', { flags: ['noAuth'], keys: { kind: 'none' }, handler: (_req, ctx) => hello(ctx) }),

  defineCommand('CONFIG', {
    flags: ['admin'],
    keys: { kind: 'none' },
    handler(_req, ctx) {
      // `op` is RELOAD, the only operation the schema admits so far.
      const reload = ctx.server.reload;
      if (reload === undefined) return NO_RELOAD;
      return reload().then(reloaded, (err: unknown) => new Fail('CONFIG_ERROR', (err as Error).message));
    },
  }),
];
