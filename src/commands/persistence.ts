/** Persistence commands: REWRITE BACKUP (admin). The log itself lives in src/store/durable/. */
import { Fail } from '../result.js';
import { defineCommand } from './table.js';

const OFF = new Fail(
  'PERSISTENCE_OFF',
  'this server keeps no log (started without --data-dir): nothing to rewrite or back up',
);

export const persistenceCommands = [
  defineCommand('REWRITE', {
    flags: ['admin'],
    keys: { kind: 'none' },
    handler: (_req, ctx) => ctx.store.durability?.rewrite() ?? OFF,
  }),

  defineCommand('BACKUP', {
    flags: ['admin'],
    keys: { kind: 'none' },
    handler: (_req, ctx) => ctx.store.durability?.backup() ?? OFF,
  }),
];
