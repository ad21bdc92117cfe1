/** The default command table: every family, in the order HELP and the protocol document list them. */
import { authCommands } from './auth.js';
import { serverCommands } from './info.js';
import { keyCommands } from './keys.js';
import { namespaceCommands } from './namespaces.js';
import { persistenceCommands } from './persistence.js';
import { pubsubCommands } from './pubsub.js';
import { buildTable, type CommandTable } from './table.js';

export function defaultCommandTable(): CommandTable {
  return buildTable([
    serverCommands,
    keyCommands,
    namespaceCommands,
    pubsubCommands,
    authCommands,
    persistenceCommands,
  ]);
}
