/**
 * One connection's authentication and permissions: `ctx.auth` in every command handler.
 *
 * The dispatcher reads `restricted` before each request: false on an open server (no users) and
 * for a user allowed every category and every key, so those pay one property read and nothing
 * else. When true, `authorize()` runs the generic checks derived from the command table
 * (permissions.ts); KEYS and NAMESPACES list only what `visibleNames()` lets through.
 *
 * Hooks for command families that check their own arguments (pub/sub):
 *   canRead(key) / canWrite(key)     a canonical key path
 *   canObserve(pattern)              every key the pattern can match is readable
 *   canSubscribe(pattern)            every channel the pattern can match is subscribable
 *   canPublish(channel)              a concrete channel; `$`-prefixed channels never
 *   userName                         the authenticated user (the `from` stamp), or null
 *   on('permissions-changed', fn)    after AUTH as another user, a reload, or a loss of
 *                                    authentication: re-check what the connection holds
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ERRORS } from '../protocol/errors.js';
import { NDJSON_PUSHES } from '../protocol/pushes.js';
import type { Request } from '../protocol/schema.js';
import { quote } from '../quote.js';
import { Fail } from '../result.js';
import { joinKey, parseNamespace } from '../store/keypath.js';
import type { Connection } from '../transport/types.js';
import { verifyPassword } from './password.js';
import { isReservedChannel, PathPattern } from './pattern.js';
import type { CommandPermission, PermissionSubject } from './permissions.js';
import { CATEGORY_BIT, type User } from './users.js';

/**
 * What a connection needs from the server-wide authority (authority.ts implements it): declared
 * here, where it is used, so the two modules do not import each other.
 */
export interface ConnectionAuthority {
  readonly required: boolean;
  readonly users: ReadonlyMap<string, User>;
  readonly permissions: readonly CommandPermission[];
  readonly stats: { authSuccesses: number };
  readonly log: Logger;
  readonly maxLineBytes: number;
  readonly preAuthMaxLineBytes: number;
  readonly authMaxFailures: number;
  readonly authTimeoutMs: number;
  readonly authTimeoutLine: string;
  readonly protectedLine: string;
  protects(remoteAddress: string): boolean;
  blockedFor(remoteAddress: string): number;
  blockedMessage(ms: number): string;
  beginAttempt(remoteAddress: string): boolean;
  endAttempt(remoteAddress: string, failed: boolean): { addressFailures: number; blocked: boolean };
  attemptsMessage(): string;
  delayFor(failures: number): number;
  detach(auth: ConnectionAuth): void;
}

export interface PermissionsChange {
  /** What happened: a reload, an AUTH (possibly as another user), or a loss of authentication. */
  readonly reason: 'reload' | 'authenticated' | 'deauthenticated';
  /** The user now bound to the connection, or null. */
  readonly user: string | null;
}

export interface ConnectionAuthEvents {
  'permissions-changed': [change: PermissionsChange];
}

const NOAUTH = new Fail('NOAUTH', ERRORS.NOAUTH);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    // unref: a pending penalty must not hold the process open at exit.
    setTimeout(resolve, ms).unref();
  });
}

export class ConnectionAuth extends EventEmitter<ConnectionAuthEvents> {
  /** The authenticated user; null before AUTH (or on an open server). */
  user: User | null = null;
  /** Whether the dispatcher must check each request (see the module comment). */
  restricted: boolean;
  /** Current line limit: small until authenticated. The session applies it. */
  lineLimit: number;
  /** An AUTH is being verified: the session runs nothing after it until it is answered. */
  busy = false;
  /** Failed AUTH attempts on this connection since its last success. */
  failures = 0;
  readonly #authority: ConnectionAuthority;
  readonly #conn: Connection | undefined;
  readonly #log: Logger;
  #open: boolean;
  #disposed = false;
  /** Closes the connection if it has not authenticated by then (`--auth-timeout`). */
  #authTimer: NodeJS.Timeout | undefined = undefined;
  /** The timer fired while an AUTH was being verified: its outcome decides. */
  #timedOut = false;

  constructor(authority: ConnectionAuthority, conn: Connection | undefined) {
    super();
    this.#authority = authority;
    this.#conn = conn;
    this.#log = conn?.log ?? authority.log;
    this.#open = !authority.required;
    this.restricted = !this.#open;
    this.lineLimit = this.#open ? authority.maxLineBytes : authority.preAuthMaxLineBytes;
    if (!this.#open) this.#armTimeout();
  }

  #armTimeout(): void {
    const ms = this.#authority.authTimeoutMs;
    if (ms === 0 || this.#conn === undefined || this.#authTimer !== undefined) return;
    this.#authTimer = setTimeout(this.#onAuthTimeout, ms);
    // A connection that is gone must not keep the process alive for its timer.
    this.#authTimer.unref();
  }

  #disarmTimeout(): void {
    if (this.#authTimer !== undefined) clearTimeout(this.#authTimer);
    this.#authTimer = undefined;
    this.#timedOut = false;
  }

  readonly #onAuthTimeout = (): void => {
    this.#authTimer = undefined;
    if (this.authenticated || this.#disposed) return;
    if (this.busy) {
      this.#timedOut = true;
      return;
    }
    this.#closeForTimeout();
  };

  #closeForTimeout(): void {
    this.#log.info({ remoteAddress: this.#conn?.remoteAddress }, 'no AUTH in time; closing');
    this.#conn?.end(this.#authority.authTimeoutLine);
  }

  /** Whether the server requires AUTH at all. */
  get required(): boolean {
    return this.#authority.required;
  }

  /** The authenticated user's name (the pub/sub `from` stamp), or null. */
  get userName(): string | null {
    return this.user?.name ?? null;
  }

  /** True once the connection may run more than PING/HELLO/HELP/AUTH. */
  get authenticated(): boolean {
    return this.#open || this.user !== null;
  }

  // -------------------------------------------------------------- hooks for command families

  canRead(key: string): boolean {
    if (this.#open) return true;
    return this.user?.read.matches(key) === true;
  }

  canWrite(key: string): boolean {
    if (this.#open) return true;
    return this.user?.write.matches(key) === true;
  }

  /**
   * The pub/sub hooks below also need the `pubsub` category: the dispatcher checks it before a
   * command runs, but a reload or an AUTH as another user re-checks what the connection already
   * holds through these hooks alone, so losing the category must end it too.
   */
  #pubsubUser(): User | null {
    const user = this.user;
    return user !== null && (user.categories & CATEGORY_BIT.pubsub) !== 0 ? user : null;
  }

  /** Every key `pattern` (a validated OBSERVE pattern) can match is readable. */
  canObserve(pattern: string): boolean {
    if (this.#open) return true;
    const p = compile(pattern);
    return p !== undefined && this.#pubsubUser()?.read.covers(p) === true;
  }

  /** Every channel `pattern` (a validated SUBSCRIBE pattern) can match is subscribable. */
  canSubscribe(pattern: string): boolean {
    if (this.#open) return true;
    const p = compile(pattern);
    return p !== undefined && this.#pubsubUser()?.subscribe.covers(p, true) === true;
  }

  /** A concrete, canonical channel. Server channels (`$...`) are never publishable by a client. */
  canPublish(channel: string): boolean {
    if (isReservedChannel(channel)) return false;
    if (this.#open) return true;
    return this.#pubsubUser()?.publish.matches(channel, true) === true;
  }

  /** A NOPERM failure naming the action and what it touched, for hooks' callers. */
  deny(action: string, what: string): Fail {
    const who = this.user === null ? 'this connection' : `user ${quote(this.user.name)}`;
    return new Fail('NOPERM', `${who} may not ${action} ${what}`);
  }

  // -------------------------------------------------------------- the dispatcher's checks

  /** The generic checks for one request; undefined when it may run. */
  authorize(command: PermissionSubject, req: Request): Fail | undefined {
    const perm = this.#authority.permissions[command.index]!;
    const user = this.user;
    if (user === null) return perm.noAuth || this.#open ? undefined : NOAUTH;
    if ((user.categories & perm.category) !== perm.category) {
      return this.deny(`run ${command.name}`, `(its category "${perm.categoryName}" is not granted)`);
    }
    const access = perm.access;
    const r = req as {
      namespace?: string;
      key?: string;
      keys?: string[];
      entries?: Record<string, unknown>;
      after?: string;
    };
    switch (access.kind) {
      case 'none':
        return undefined;
      case 'key':
        return this.#checkKey(command, joinKey(r.namespace, r.key!), access.write);
      case 'keys': {
        for (const k of r.keys!) {
          const denied = this.#checkKey(command, joinKey(r.namespace, k), access.write);
          if (denied !== undefined) return denied;
        }
        return undefined;
      }
      case 'entries': {
        for (const k of Object.keys(r.entries!)) {
          const denied = this.#checkKey(command, joinKey(r.namespace, k), access.write);
          if (denied !== undefined) return denied;
        }
        return undefined;
      }
      case 'subtree': {
        const ns = parseNamespace(r.namespace);
        // A malformed namespace is the handler's BAD_KEY to report; it touches nothing.
        if (typeof ns !== 'string') return undefined;
        const set = access.write ? user.write : user.read;
        if (set.covers(new PathPattern(ns === '' ? '>' : `${ns}^>`))) return undefined;
        return this.deny(
          command.name,
          `namespace ${quote(ns === '' ? '^' : ns)}: needs ${access.write ? 'write' : 'read'} permission on every key below it`,
        );
      }
      case 'list':
        // The handler lists only what the user may read (visibleNames).
        return undefined;
    }
  }

  #checkKey(command: PermissionSubject, key: string | { message: string }, write: boolean): Fail | undefined {
    // A malformed key is the handler's BAD_KEY to report, before it touches the store.
    if (typeof key !== 'string') return undefined;
    const user = this.user!;
    if ((write ? user.write : user.read).matches(key)) return undefined;
    return this.deny(command.name, `key ${quote(key)} (no ${write ? 'write' : 'read'} permission)`);
  }

  /**
   * For KEYS / NAMESPACES in `namespace` (canonical): which names the user may see, or undefined
   * when it may see them all (an open server, or read permission on the whole subtree).
   */
  visibleNames(namespace: string, field: 'keys' | 'namespaces'): ((name: string) => boolean) | undefined {
    if (this.#open) return undefined;
    const user = this.user;
    // Unreachable through the dispatcher (NOAUTH first); a caller outside it sees nothing.
    if (user === null) return () => false;
    if (user.read.covers(new PathPattern(namespace === '' ? '>' : `${namespace}^>`))) return undefined;
    const prefix = namespace === '' ? '' : `${namespace}^`;
    return field === 'keys'
      ? (name) => user.read.matches(prefix + name)
      : (name) => user.read.mayMatchBelow(prefix + name);
  }

  // -------------------------------------------------------------- AUTH

  /** Verifies and binds a user, with the failure penalties of docs/security.md. */
  async authenticate(name: string, password: string): Promise<{ user: string } | Fail> {
    const authority = this.#authority;
    if (!authority.required) {
      return new Fail(
        'AUTH_FAILED',
        'no users are configured on this server: AUTH is not needed (and cannot succeed)',
      );
    }
    const address = this.#conn?.remoteAddress ?? '';
    const blockedMs = authority.blockedFor(address);
    if (blockedMs > 0) {
      this.#closeSoon();
      return new Fail('RATE_LIMITED', authority.blockedMessage(blockedMs));
    }
    if (!authority.beginAttempt(address)) {
      // Not checked, so not a failure: the password of this attempt is never looked at.
      this.#log.warn({ user: name.slice(0, 64), remoteAddress: address }, 'AUTH refused: too many attempts');
      return new Fail('RATE_LIMITED', authority.attemptsMessage());
    }
    let ended = false;
    this.busy = true;
    try {
      const candidate = authority.users.get(name);
      // Unknown users are verified against a dummy hash: the same time, the same answer.
      const ok = await verifyPassword(password, candidate?.hash);
      const current = authority.users.get(name);
      if (ok && candidate !== undefined && current !== undefined && current.hashText === candidate.hashText) {
        ended = true;
        authority.endAttempt(address, false);
        if (this.#disposed) return new Fail('AUTH_FAILED', ERRORS.AUTH_FAILED);
        this.failures = 0;
        authority.stats.authSuccesses++;
        const changed = this.user !== current;
        this.#bind(current);
        this.#log.info({ user: name, remoteAddress: address }, 'authenticated');
        if (changed) this.emit('permissions-changed', { reason: 'authenticated', user: name });
        return { user: name };
      }
      this.failures++;
      ended = true;
      const { addressFailures, blocked } = authority.endAttempt(address, true);
      const delayMs = authority.delayFor(this.failures);
      const closing = blocked || this.failures >= authority.authMaxFailures;
      // Never the password; the user name as sent, cut short (it is attacker-controlled).
      this.#log.warn(
        {
          user: name.slice(0, 64),
          remoteAddress: address,
          failures: this.failures,
          addressFailures,
          delayMs,
          closing,
        },
        'authentication failed',
      );
      await sleep(delayMs);
      if (closing) this.#closeSoon();
      return new Fail(
        'AUTH_FAILED',
        closing
          ? 'unknown user or wrong password; too many failures, closing the connection'
          : 'unknown user or wrong password',
      );
    } finally {
      // verifyPassword threw (a malformed stored hash): the attempt must not stay in flight.
      if (!ended) authority.endAttempt(address, false);
      this.busy = false;
      if (this.#timedOut && !this.authenticated) setImmediate(() => this.#closeForTimeout());
    }
  }

  #bind(user: User): void {
    this.#disarmTimeout();
    this.user = user;
    this.restricted = !user.unrestricted;
    this.lineLimit = this.#authority.maxLineBytes;
  }

  #unbind(): void {
    this.user = null;
    this.restricted = true;
    this.lineLimit = this.#authority.preAuthMaxLineBytes;
    this.#armTimeout();
  }

  #closeSoon(): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    // After the answer: the dispatcher's and session's continuations are microtasks, this is not.
    setImmediate(() => conn.end());
  }

  #deauthenticated(message: string): void {
    this.#conn?.write(NDJSON_PUSHES.deauthenticated(message));
  }

  /** @internal The authority's reload reaches each connection here. */
  refresh(): void {
    const authority = this.#authority;
    const wasOpen = this.#open;
    this.#open = !authority.required;
    const before = this.user;
    if (this.#open) {
      this.#disarmTimeout();
      this.user = null;
      this.restricted = false;
      this.lineLimit = authority.maxLineBytes;
      const conn = this.#conn;
      if (conn !== undefined && authority.protects(conn.remoteAddress)) {
        // Every user is gone and protected mode is on: a remote client, authenticated or not, is
        // refused as a new one would be, not left with an open server's full rights.
        this.#log.warn(
          { remoteAddress: conn.remoteAddress },
          'protected mode: closing a non-loopback client',
        );
        conn.end(authority.protectedLine);
      } else if (before !== null) {
        this.#log.info({ user: before.name }, 'user removed with every other; connection is now open');
        this.#deauthenticated(
          `user ${quote(before.name)} was removed: the server now has no users, so this connection runs unauthenticated with an open server's rights`,
        );
      }
    } else if (before === null) {
      this.#unbind();
      if (wasOpen) {
        this.#deauthenticated('the server now requires authentication: send AUTH before anything else');
      }
    } else {
      const next = authority.users.get(before.name);
      if (next === undefined || next.hashText !== before.hashText) {
        this.#unbind();
        const why = next === undefined ? 'was removed' : 'has a new password';
        this.#log.info({ user: before.name }, `user ${why}; connection deauthenticated`);
        this.#deauthenticated(`user ${quote(before.name)} ${why}: send AUTH again`);
      } else {
        this.#bind(next);
      }
    }
    const deauthenticated = this.user === null && (before !== null || (wasOpen && !this.#open));
    this.emit('permissions-changed', {
      reason: deauthenticated ? 'deauthenticated' : 'reload',
      user: this.userName,
    });
  }

  /** The connection is gone: forget it (and every listener on it). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#disarmTimeout();
    this.#authority.detach(this);
    this.removeAllListeners();
  }
}

function compile(pattern: string): PathPattern | undefined {
  try {
    return new PathPattern(pattern);
  } catch {
    return undefined;
  }
}
