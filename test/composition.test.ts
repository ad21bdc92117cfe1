/**
 * The composition root: the store comes from the factory the `store` setting names, and a custom
 * handler is built from the server's parts (store, broker, auth) instead of replacing them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type CaretServer, createServer, type ServerParts } from '../src/server.js';
import { MemoryStore } from '../src/store/memory.js';
import { runCli } from './helpers/cli.js';
import { connect, destroyAllSockets, roundTrip } from './helpers/net.js';
import { captureLogger } from './helpers/server.js';

const servers: CaretServer[] = [];
afterEach(async () => {
  destroyAllSockets();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('composition root', () => {
  it('builds the store the config names (memory by default)', async () => {
    const server = createServer(loadConfig({ flags: { port: 0, store: 'memory' } }), {
      logger: captureLogger('silent').logger,
    });
    servers.push(server);
    expect(server.store).toBeInstanceOf(MemoryStore);
  });

  it('refuses to start on an unknown storage engine, naming the known ones', async () => {
    const run = await runCli(['serve', '--port', '0', '--store', 'etcd://127.0.0.1:2379']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(
      '--store: unknown storage engine "etcd" (known engines: memory, redis-cluster, redis)',
    );
  });

  it('hands a custom handler the server parts, which the server keeps', async () => {
    let parts: ServerParts | undefined;
    const server = createServer(loadConfig({ flags: { port: 0 } }), {
      logger: captureLogger('silent').logger,
      handler: (p) => {
        parts = p;
        // A one-line protocol over the same store: each line is a key, answered with its value.
        return (conn) => ({
          data(chunk: Buffer) {
            const value = p.store.get(chunk.toString().trim());
            conn.write(`${String(value)}\n`);
          },
          close() {},
        });
      },
    });
    servers.push(server);
    expect(parts).toBeDefined();
    expect(server.store).toBe(parts!.store);
    expect(server.auth).toBe(parts!.auth);
    expect(server.pubsub).toBe(parts!.broker.pubsub);
    await server.store.set('k', '7');
    const { port } = await server.listen();
    const socket = await connect(port);
    expect((await roundTrip(socket, 'k\n')).toString()).toBe('7\n');
  });
});
