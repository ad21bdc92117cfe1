/**
 * A second front end built from the public API alone, as docs/architecture.md describes: a
 * `RequestCodec` of its own plugged into the `Pipeline`, over the server's store. Each
 * `;`-terminated word is a key, answered with its stored value (or `-`); the pipeline supplies
 * ordering, backpressure and the shutdown notice whatever the protocol.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import {
  type CaretServer,
  createServer,
  type Encoded,
  Pipeline,
  type RequestCodec,
  type Store,
} from '../src/index.js';
import { connect, destroyAllSockets, readToEnd, roundTrip } from './helpers/net.js';
import { captureLogger } from './helpers/server.js';

const answer = (value: string | undefined): string => `${value ?? '-'};`;

class KeyWordCodec implements RequestCodec {
  readonly shutdownNotice = 'BYE;';
  readonly blocked = false;
  readonly holdInput = false;
  #buffer = '';

  constructor(private readonly store: Store) {}

  push(chunk: Buffer): void {
    this.#buffer += chunk.toString();
  }
  get hasInput(): boolean {
    return this.#buffer.includes(';');
  }
  next(): Encoded | null {
    const end = this.#buffer.indexOf(';');
    if (end === -1) return null;
    const key = this.#buffer.slice(0, end).trim();
    this.#buffer = this.#buffer.slice(end + 1);
    const value = this.store.get(key);
    return value instanceof Promise ? value.then(answer) : answer(value);
  }
  finish(): Encoded | null {
    return null;
  }
  drained(): void {}
  closed(): void {}
  fault(): string {
    return 'ERR;';
  }
}

const servers: CaretServer[] = [];
afterEach(async () => {
  destroyAllSockets();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('a front end from the public API', () => {
  it('answers in order over the server store and ends with its own shutdown notice', async () => {
    const server = createServer(loadConfig({ flags: { port: 0 } }), {
      logger: captureLogger('silent').logger,
      handler:
        ({ store }) =>
        (conn) =>
          new Pipeline(conn, new KeyWordCodec(store), { turnBudgetMs: 5 }),
    });
    servers.push(server);
    await server.store.set('a', '1');
    await server.store.set('b', '"two"');
    const { port } = await server.listen();
    const socket = await connect(port);
    expect((await roundTrip(socket, 'a;nope;b;')).toString()).toBe('1;-;"two";');
    const rest = readToEnd(socket);
    await server.close();
    expect((await rest).toString()).toBe('BYE;');
  });
});
