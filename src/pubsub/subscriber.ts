/**
 * What the broker delivers and to whom: one `Message` per publish and one `Change` per store
 * mutation, shared by every subscriber it reaches, and the `Subscriber` contract that remote
 * connections (remote.ts) and in-process handlers (local.ts) implement.
 *
 * Push lines are built from fixed fragments: per publish, the channel, message and `from` are
 * serialized once (lazily, only when a remote subscriber is reached); per subscription, the
 * pattern was serialized when it subscribed; per push, only `seq` is new.
 */
import type { ChangeOp, JsonText } from '../store/store.js';
import type { AccessGuard, PublisherId } from './limits.js';
import type { Pattern } from './pattern.js';

/** A delivery outcome. Plain numbers: the loop over matches compares them on the hot path. */
export type Outcome = 0 | 1 | 2;
/** Written (or handed to the handler). */
export const DELIVERED = 0;
/** Refused by the subscriber's output bound and counted; the subscription stays. */
export const DROPPED = 1;
/** The subscriber is gone (connection closed or disconnected, owner collected): remove it. */
export const GONE = 2;

/** One subscription: a subscriber and one of its patterns (the index stores these). */
export class Subscription {
  /** Cleared when the subscription is removed, so a delivery loop already holding it skips it. */
  active = true;
  constructor(
    readonly subscriber: Subscriber,
    readonly pattern: Pattern,
    /** `pattern.text` as JSON, serialized once. */
    readonly patternJson: string,
  ) {}
}

export abstract class Subscriber {
  /** Channel subscriptions by canonical pattern text. Maintained by the broker only. */
  readonly channels = new Map<string, Subscription>();
  /** Key observations by canonical pattern text. Maintained by the broker only. */
  readonly keys = new Map<string, Subscription>();
  /** The last change delivered (the broker's stamp): one event per observer per change. */
  changeStamp = 0;
  /** Whether per-connection limits (subscription count) apply. */
  abstract readonly limited: boolean;
  /** Permission checks for new subscriptions and observations; undefined allows all. */
  guard: AccessGuard | undefined = undefined;

  abstract message(message: Message, subscription: Subscription): Outcome;
  abstract change(change: Change): Outcome;

  /** The subscriber went from no subscriptions to some (true), or back to none (false). */
  activeChanged(_active: boolean): void {}

  /** Subscriptions it held were ended because its permissions changed (`Broker.recheck`). */
  revoked(_channels: readonly string[], _keys: readonly string[], _reason: string): void {}
}

const MESSAGE_HEAD = '{"event":"message","channel":';
const PATTERN_FIELD = ',"pattern":';
const MESSAGE_FIELD = ',"message":';
const FROM_FIELD = ',"from":';
const SEQ_FIELD = ',"seq":';
/** Closes a push after its seq. */
export const PUSH_END = '}\n';

/** One publish, as every subscriber it reaches sees it. */
export class Message {
  #head: string | undefined = undefined;
  #tail: string | undefined = undefined;

  constructor(
    /** Canonical channel. */
    readonly channel: string,
    /** The message as JSON text. */
    readonly json: JsonText,
    readonly from: PublisherId,
    readonly fromJson: string,
  ) {}

  /** `{"event":"message","channel":"news^eu","pattern":` */
  get head(): string {
    this.#head ??= `${MESSAGE_HEAD}${JSON.stringify(this.channel)}${PATTERN_FIELD}`;
    return this.#head;
  }

  /** `,"message":<json>,"from":<from>,"seq":` */
  get tail(): string {
    this.#tail ??= `${MESSAGE_FIELD}${this.json}${FROM_FIELD}${this.fromJson}${SEQ_FIELD}`;
    return this.#tail;
  }
}

const CHANGE_HEAD = '{"event":"change","key":';
const OPS: readonly ChangeOp[] = ['set', 'del', 'expire', 'drop', 'incr', 'cas'];
/** `,"op":"set","value":` — for changes that carry a value. */
const OP_WITH_VALUE = Object.fromEntries(OPS.map((op) => [op, `,"op":"${op}","value":`])) as Record<
  ChangeOp,
  string
>;
/** `,"op":"del","seq":` — for changes that carry none. */
const OP_WITHOUT_VALUE = Object.fromEntries(OPS.map((op) => [op, `,"op":"${op}"${SEQ_FIELD}`])) as Record<
  ChangeOp,
  string
>;

/**
 * One store mutation, as every observer it reaches sees it. For `drop`, `key` is the namespace
 * that was removed (every key below it went) and there is no value.
 */
export class Change {
  #head: string | undefined = undefined;

  constructor(
    readonly key: string,
    readonly op: ChangeOp,
    /** The new value as JSON text, for set/incr/cas; undefined for del/expire/drop. */
    readonly value: JsonText | undefined,
  ) {}

  /** `{"event":"change","key":"k","op":"set","value":<json>,"seq":` (no value field when none). */
  get head(): string {
    if (this.#head === undefined) {
      const key = `${CHANGE_HEAD}${JSON.stringify(this.key)}`;
      this.#head =
        this.value === undefined
          ? `${key}${OP_WITHOUT_VALUE[this.op]}`
          : `${key}${OP_WITH_VALUE[this.op]}${this.value}${SEQ_FIELD}`;
    }
    return this.#head;
  }
}

/** `{"event":"revoked","channels":[...],"keys":[...],"reason":"..."}` */
export function revokedLine(channels: readonly string[], keys: readonly string[], reason: string): string {
  return `${JSON.stringify({ event: 'revoked', channels, keys, reason })}\n`;
}

/** `{"event":"gap","dropped":N}` */
export function gapLine(dropped: number): string {
  return `{"event":"gap","dropped":${dropped}}\n`;
}
