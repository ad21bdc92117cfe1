/**
 * What the broker delivers and to whom: one `Message` per publish and one `Change` per store
 * mutation, shared by every subscriber it reaches, and the `Subscriber` contract that remote
 * connections (remote.ts) and in-process handlers (local.ts) implement.
 *
 * Push lines come from the PushEncoder in fragments: per publish, the channel, message and `from`
 * are encoded once (lazily, only when a remote subscriber is reached); per subscription, the
 * pattern was encoded when it subscribed; per push, only `seq` is new.
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

  /** Other nodes' publishes or changes may be missing from now on (`Broker.backendLost`). */
  lost(): void {}

  /** Subscriptions it held were ended because its permissions changed (`Broker.recheck`). */
  revoked(_channels: readonly string[], _keys: readonly string[], _reason: string): void {}
}

/**
 * How pushes are written (protocol/pushes.ts's NDJSON_PUSHES for the JSON protocol, handed in by
 * the composition root): the broker never builds a wire line itself. Heads and tails are built
 * once per publish or change and shared by every subscriber it reaches; a push adds its `seq`.
 */
export interface PushEncoder {
  messageHead(channel: string): string;
  messageTail(json: JsonText, fromJson: string): string;
  /** A pattern or a `from` identity as it appears in pushes. */
  quoted(text: string | number): string;
  changeHead(key: string, op: ChangeOp, value: JsonText | undefined): string;
  /** Closes a push after its seq. */
  readonly end: string;
  gap(dropped: number): string;
  /** The gap line for messages and changes of other nodes missed while the backend was away. */
  readonly backendGap: string;
  revoked(channels: readonly string[], keys: readonly string[], reason: string): string;
}

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
    private readonly pushes: PushEncoder,
  ) {}

  /** Everything before the subscription's pattern (JSON: `{"event":"message","channel":"news^eu","pattern":`). */
  get head(): string {
    this.#head ??= this.pushes.messageHead(this.channel);
    return this.#head;
  }

  /** Everything between the pattern and the seq (JSON: `,"message":<json>,"from":<from>,"seq":`). */
  get tail(): string {
    this.#tail ??= this.pushes.messageTail(this.json, this.fromJson);
    return this.#tail;
  }
}

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
    private readonly pushes: PushEncoder,
  ) {}

  /** Everything before the seq (JSON: `{"event":"change","key":"k","op":"set","value":<json>,"seq":`). */
  get head(): string {
    this.#head ??= this.pushes.changeHead(this.key, this.op, this.value);
    return this.#head;
  }
}
