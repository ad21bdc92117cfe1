/**
 * Users as the config file declares them, and as the server holds them once compiled.
 *
 *   "users": {
 *     "app": {
 *       "password": "scrypt$N=16384,r=8,p=1$...$...",
 *       "categories": ["read", "write", "pubsub"],
 *       "read": ["app^>", "shared^*"], "write": ["app^>"],
 *       "subscribe": ["news^>"], "publish": ["news^app^*"]
 *     }
 *   }
 *
 * Everything is deny-by-default: a user that lists no categories may only PING/ECHO/HELLO/AUTH,
 * one that lists no key patterns can read or write no key, one that lists no channel patterns can
 * neither subscribe nor publish (Redis 7 learned to default channels to none: `resetchannels`).
 */
import { type Static, Type } from '@sinclair/typebox';
import { quote } from '../quote.js';
import { type PasswordHash, parseHash } from './password.js';
import { PathPattern, PatternSet, PatternSyntaxError } from './pattern.js';

/** Action categories, each derived from the command table's flags (see permissions.ts). */
export const CATEGORIES = ['read', 'write', 'namespace', 'pubsub', 'admin'] as const;
export type Category = (typeof CATEGORIES)[number];

export const CATEGORY_BIT: Record<Category, number> = {
  read: 1,
  write: 2,
  namespace: 4,
  pubsub: 8,
  admin: 16,
};
const ALL_CATEGORIES = 31;

const Patterns = (description: string) =>
  Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: 1000, description }));

export const UserSchema = Type.Object(
  {
    password: Type.String({ description: 'scrypt hash from `caretkv passwd` (never the password itself)' }),
    categories: Type.Array(Type.Unsafe<Category | 'all'>({ type: 'string', enum: [...CATEGORIES, 'all'] }), {
      description: 'action categories the user may run: read, write, namespace, pubsub, admin, or all',
    }),
    read: Patterns('key patterns the user may read'),
    write: Patterns('key patterns the user may write'),
    subscribe: Patterns('channel patterns the user may subscribe to'),
    publish: Patterns('channel patterns the user may publish to'),
  },
  { additionalProperties: false },
);

/** User names: 1-64 characters of `A-Z a-z 0-9 _ . @ -` (so never `$server`, the server's stamp). */
export const USER_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;

// The key pattern documents the syntax in the JSON Schema; a Record's key pattern does not refuse
// other keys, so compileUsers() checks every name itself.
export const UsersSchema = Type.Record(Type.String({ pattern: USER_NAME.source }), UserSchema, {
  description: 'users and their permissions (config file only); none: the server is open',
});

export type UserConfig = Static<typeof UserSchema>;
export type UsersConfig = Static<typeof UsersSchema>;

export interface User {
  readonly name: string;
  readonly hash: PasswordHash;
  /** The hash as configured: a change logs every connection of the user out. */
  readonly hashText: string;
  /** Bitmask of CATEGORY_BIT. */
  readonly categories: number;
  readonly read: PatternSet;
  readonly write: PatternSet;
  readonly subscribe: PatternSet;
  readonly publish: PatternSet;
  /** Every category and every key: the dispatcher can skip its checks for this user. */
  readonly unrestricted: boolean;
}

export class UserConfigError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'UserConfigError';
  }
}

function patterns(name: string, field: string, sources: readonly string[] | undefined): PatternSet {
  const list = sources ?? [];
  list.forEach((source, i) => {
    try {
      new PathPattern(source);
    } catch (err) {
      if (err instanceof PatternSyntaxError)
        throw new UserConfigError(`users.${name}.${field}[${i}]`, err.message);
      throw err;
    }
  });
  return new PatternSet(list);
}

/** Compiles validated user configs (schema-checked already); throws UserConfigError naming the field. */
export function compileUsers(config: UsersConfig | undefined): ReadonlyMap<string, User> {
  const users = new Map<string, User>();
  for (const [name, u] of Object.entries(config ?? {})) {
    if (!USER_NAME.test(name)) {
      throw new UserConfigError(
        `users[${quote(name, 80)}]`,
        'a user name is 1 to 64 characters of A-Z a-z 0-9 _ . @ - (no spaces, no `$`, ASCII only)',
      );
    }
    let hash: PasswordHash;
    try {
      hash = parseHash(u.password);
    } catch (err) {
      throw new UserConfigError(`users.${name}.password`, (err as Error).message);
    }
    let categories = 0;
    for (const c of u.categories) categories |= c === 'all' ? ALL_CATEGORIES : CATEGORY_BIT[c];
    const read = patterns(name, 'read', u.read);
    const write = patterns(name, 'write', u.write);
    users.set(name, {
      name,
      hash,
      hashText: u.password,
      categories,
      read,
      write,
      subscribe: patterns(name, 'subscribe', u.subscribe),
      publish: patterns(name, 'publish', u.publish),
      unrestricted: categories === ALL_CATEGORIES && read.all && write.all,
    });
  }
  return users;
}
