/**
 * The server-wide side of authentication: the users in force, what each command needs, the
 * failure counters per source address, protected mode, and the live connections a reload must
 * reach. One per server; each connection gets its `ConnectionAuth` from `attach()`.
 */
import { type Logger, pino } from 'pino';
import { LogLimiter } from '../log.js';
import { encodeError } from '../protocol/codec.js';
import { ERRORS } from '../protocol/errors.js';
import { LIMITS } from '../protocol/schema.js';
import type { Connection } from '../transport/types.js';
import { isLoopback, normalizeAddress } from './address.js';
import { ConnectionAuth, type ConnectionAuthority } from './connection.js';
import { type CommandPermission, commandPermissions, type PermissionTable } from './permissions.js';
import { compileUsers, type User, type UsersConfig } from './users.js';

export interface AuthorityOptions {
  table: PermissionTable;
  users?: UsersConfig | undefined;
  log: Logger;
  /** Line limit once authenticated (or on an open server). */
  maxLineBytes: number;
  /** Line limit before AUTH succeeds. */
  preAuthMaxLineBytes: number;
  protectedMode: boolean;
  /** Seconds before the first failed AUTH is answered; doubles per failure on the connection. */
  authFailureDelay: number;
  authMaxFailures: number;
  authMaxFailuresPerAddress: number;
  authBlockSeconds: number;
  /** Seconds a connection may stay unauthenticated (when AUTH is required); 0 = no limit. */
  authTimeout?: number;
  now?: () => number;
}

/** Longest a failed AUTH is held, whatever the doubling reaches. */
const MAX_DELAY_MS = 10_000;
/** Addresses tracked before expired entries are swept (bounds memory under a spray of sources). */
const MAX_TRACKED_ADDRESSES = 10_000;

interface AddressRecord {
  failures: number;
  windowStart: number;
  blockedUntil: number;
  /** AUTH attempts being verified now: they count against the limit before they fail. */
  inFlight: number;
}

export interface AuthStats {
  authSuccesses: number;
  authFailures: number;
  /** Connections turned away at accept (protected mode, blocked address). */
  refusedConnections: number;
}

/** A connection-level refusal: an error line without `id` (the encoder is protocol/codec.ts's). */
function line(code: 'PROTECTED_MODE' | 'RATE_LIMITED' | 'AUTH_TIMEOUT', message: string): string {
  return encodeError(undefined, code, message);
}

const PROTECTED_LINE = line(
  'PROTECTED_MODE',
  'caretkv is in protected mode: it listens beyond loopback but has no users configured, so it accepts only loopback clients. ' +
    'Add users to the config file (`caretkv passwd` makes password hashes; see docs/security.md), ' +
    'bind to 127.0.0.1 with --host, or, if every client that can reach this port is trusted, start with --protected-mode no.',
);

const AUTH_TIMEOUT_LINE = line('AUTH_TIMEOUT', ERRORS.AUTH_TIMEOUT);

export class Authority implements ConnectionAuthority {
  readonly permissions: readonly CommandPermission[];
  readonly stats: AuthStats = { authSuccesses: 0, authFailures: 0, refusedConnections: 0 };
  readonly log: Logger;
  readonly now: () => number;
  readonly maxLineBytes: number;
  readonly preAuthMaxLineBytes: number;
  readonly authMaxFailures: number;
  /** Milliseconds a connection may stay unauthenticated; 0 = no limit. */
  readonly authTimeoutMs: number;
  #users: ReadonlyMap<string, User>;
  #protectedMode: boolean;
  #authFailureDelayMs: number;
  #authMaxFailuresPerAddress: number;
  #authBlockMs: number;
  readonly #live = new Set<ConnectionAuth>();
  readonly #addresses = new Map<string, AddressRecord>();
  readonly #refuseLog: LogLimiter;

  constructor(options: AuthorityOptions) {
    this.permissions = commandPermissions(options.table);
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.maxLineBytes = options.maxLineBytes;
    this.preAuthMaxLineBytes = Math.min(options.preAuthMaxLineBytes, options.maxLineBytes);
    this.authMaxFailures = options.authMaxFailures;
    this.authTimeoutMs = Math.round((options.authTimeout ?? 0) * 1000);
    this.#users = compileUsers(options.users);
    this.#protectedMode = options.protectedMode;
    this.#authFailureDelayMs = Math.round(options.authFailureDelay * 1000);
    this.#authMaxFailuresPerAddress = options.authMaxFailuresPerAddress;
    this.#authBlockMs = Math.round(options.authBlockSeconds * 1000);
    this.#refuseLog = new LogLimiter(this.log, { burst: 10, perSecond: 1 });
  }

  /** Whether clients must AUTH (some user is configured). */
  get required(): boolean {
    return this.#users.size > 0;
  }

  get users(): ReadonlyMap<string, User> {
    return this.#users;
  }

  /** Live connections (for tests and INFO-like reporting). */
  get connections(): number {
    return this.#live.size;
  }

  /** The per-connection state; released by `ConnectionAuth.dispose()`. */
  attach(conn: Connection | undefined): ConnectionAuth {
    const auth = new ConnectionAuth(this, conn);
    this.#live.add(auth);
    return auth;
  }

  /** @internal Called by ConnectionAuth.dispose(). */
  detach(auth: ConnectionAuth): void {
    this.#live.delete(auth);
  }

  /**
   * Whether a new connection may proceed: null, or the one line to send before closing it.
   * Checked at accept, so the current users decide (a reload that adds users lifts protected mode).
   */
  admission(remoteAddress: string): string | null {
    if (this.protects(remoteAddress)) {
      this.stats.refusedConnections++;
      this.#refuseLog.log('warn', { remoteAddress }, 'protected mode: refused a non-loopback client');
      return PROTECTED_LINE;
    }
    const blocked = this.blockedFor(remoteAddress);
    if (blocked > 0) {
      this.stats.refusedConnections++;
      this.#refuseLog.log('warn', { remoteAddress }, 'refused a connection from a blocked address');
      return line('RATE_LIMITED', this.blockedMessage(blocked));
    }
    return null;
  }

  /** Whether protected mode refuses a client at this address now (no users, not loopback). */
  protects(remoteAddress: string): boolean {
    return this.#protectedMode && this.#users.size === 0 && !isLoopback(remoteAddress);
  }

  /** The line a connection that did not authenticate in time gets before it is closed. */
  get authTimeoutLine(): string {
    return AUTH_TIMEOUT_LINE;
  }

  /** The line a client refused by protected mode gets before it is closed. */
  get protectedLine(): string {
    return PROTECTED_LINE;
  }

  /** Milliseconds the address stays refused, or 0. */
  blockedFor(remoteAddress: string): number {
    const record = this.#addresses.get(normalizeAddress(remoteAddress));
    if (record === undefined) return 0;
    const left = record.blockedUntil - this.now();
    return Math.max(left, 0);
  }

  blockedMessage(ms: number): string {
    return `too many failed AUTH attempts from this address; it is refused for another ${Math.ceil(ms / 1000)} s`;
  }

  /**
   * Starts an AUTH attempt from the address, or refuses it (false) when the address's failures
   * plus its attempts still being verified reach `--auth-max-failures-per-address`: scrypt is
   * asynchronous, so counting only finished failures would let parallel connections run any
   * number of guesses before the first one fails. A started attempt must be ended with
   * `endAttempt()`.
   */
  beginAttempt(remoteAddress: string): boolean {
    const record = this.#record(normalizeAddress(remoteAddress), this.now());
    if (record.failures + record.inFlight >= this.#authMaxFailuresPerAddress) return false;
    record.inFlight++;
    return true;
  }

  /** Ends an attempt begun by `beginAttempt()`; a failure counts against the address (and may block it). */
  endAttempt(remoteAddress: string, failed: boolean): { addressFailures: number; blocked: boolean } {
    const now = this.now();
    const record = this.#record(normalizeAddress(remoteAddress), now);
    record.inFlight = Math.max(record.inFlight - 1, 0);
    if (!failed) return { addressFailures: record.failures, blocked: false };
    record.failures++;
    this.stats.authFailures++;
    if (record.failures >= this.#authMaxFailuresPerAddress) {
      record.blockedUntil = now + this.#authBlockMs;
      return { addressFailures: record.failures, blocked: true };
    }
    return { addressFailures: record.failures, blocked: false };
  }

  attemptsMessage(): string {
    return 'too many AUTH attempts from this address are being verified or have failed; try again later';
  }

  /** The address's record, its failure window restarted when it has expired. */
  #record(key: string, now: number): AddressRecord {
    let record = this.#addresses.get(key);
    if (record === undefined || now - record.windowStart > this.#authBlockMs) {
      if (record === undefined && this.#addresses.size >= MAX_TRACKED_ADDRESSES) this.#sweep(now);
      record = {
        failures: 0,
        windowStart: now,
        blockedUntil: record?.blockedUntil ?? 0,
        inFlight: record?.inFlight ?? 0,
      };
      this.#addresses.set(key, record);
    }
    return record;
  }

  /** Delay before answering the `failures`-th failed AUTH on one connection. */
  delayFor(failures: number): number {
    return Math.min(MAX_DELAY_MS, this.#authFailureDelayMs * 2 ** Math.min(failures - 1, 16));
  }

  #sweep(now: number): void {
    for (const [key, r] of this.#addresses) {
      if (r.inFlight === 0 && r.blockedUntil <= now && now - r.windowStart > this.#authBlockMs) {
        this.#addresses.delete(key);
      }
    }
    // A spray from more live sources than the cap: forget the oldest rather than grow.
    if (this.#addresses.size >= MAX_TRACKED_ADDRESSES) {
      let drop = this.#addresses.size - MAX_TRACKED_ADDRESSES / 2;
      for (const key of this.#addresses.keys()) {
        if (drop-- <= 0) break;
        this.#addresses.delete(key);
      }
    }
  }

  /**
   * Apply a new configuration to every live connection. Throws (changing nothing) when the users
   * do not compile. Connections whose user was removed or whose password changed lose their
   * authentication; every connection then hears `permissions-changed`.
   */
  reload(options: { users?: UsersConfig | undefined; protectedMode?: boolean }): { users: number } {
    const users = compileUsers(options.users);
    this.#users = users;
    if (options.protectedMode !== undefined) this.#protectedMode = options.protectedMode;
    for (const auth of [...this.#live]) auth.refresh();
    this.log.info({ users: users.size, connections: this.#live.size }, 'users and permissions reloaded');
    return { users: users.size };
  }
}

const SILENT = pino({ level: 'silent' });

/**
 * The authority of a server without users (every connection may run everything): the default
 * of `createProtocolHandler`, and what unit tests building a `CommandContext` by hand attach.
 */
export function openAuthority(
  table: PermissionTable,
  maxLineBytes: number = LIMITS.defaultMaxLineBytes,
): Authority {
  return new Authority({
    table,
    log: SILENT,
    maxLineBytes,
    preAuthMaxLineBytes: maxLineBytes,
    protectedMode: false,
    authFailureDelay: 0,
    authMaxFailures: 1,
    authMaxFailuresPerAddress: 1,
    authBlockSeconds: 0,
  });
}
