/**
 * The interactive loop over readline in terminal mode, driven through in-memory streams: keys in,
 * screen out. Covers what a person does: type, complete with Tab, recall history with the arrow
 * keys, interrupt with Ctrl+C, leave with Ctrl+D, and see a lost connection come back.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RawRequest } from '../../client/index.js';
import type { ClientLike } from './execute.js';
import { MACHINE } from './format.js';
import { runInteractive } from './interactive.js';

class FakeClient extends EventEmitter implements ClientLike {
  readonly sent: RawRequest[] = [];
  constructor(private readonly answer: (request: RawRequest) => Promise<unknown>) {
    super();
  }
  send(request: RawRequest): Promise<unknown> {
    this.sent.push(request);
    return this.answer(request);
  }
}

interface Term {
  keys: PassThrough;
  screen: () => string;
  done: Promise<void>;
}

let dir: string;
let open: Term[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretkv-repl-'));
});
afterEach(async () => {
  for (const t of open) t.keys.end();
  await Promise.all(open.map((t) => t.done));
  open = [];
  rmSync(dir, { recursive: true, force: true });
});

function start(client: ClientLike, historyFile: string | undefined = join(dir, 'history')): Term {
  const keys = new PassThrough();
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: 100, rows: 40 });
  let text = '';
  output.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const done = runInteractive({
    client,
    input: keys,
    output,
    style: MACHINE,
    address: 'db:7171',
    historyFile,
  });
  const term = { keys, screen: () => text, done };
  open.push(term);
  return term;
}

/** Poll until the screen shows `what` (bounded; never a fixed sleep). */
async function shows(term: Term, what: string | RegExp, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const seen = () => (typeof what === 'string' ? term.screen().includes(what) : what.test(term.screen()));
  while (!seen()) {
    if (Date.now() > deadline) throw new Error(`screen never showed ${what}; it shows:\n${term.screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const answers = async (r: RawRequest) => (r.action === 'GET' ? 'Ada' : true);

describe('interactive shell', () => {
  it('prompts with the address, runs commands, prints results, leaves on quit', async () => {
    const client = new FakeClient(answers);
    const term = start(client);
    await shows(term, 'db:7171> ');
    term.keys.write('SET users^42^name "Ada Lovelace"\r');
    await shows(term, 'true\n');
    term.keys.write('GET users^42^name\r');
    await shows(term, '"Ada"\n');
    term.keys.write('quit\r');
    await term.done;
    expect(client.sent).toEqual([
      { action: 'SET', key: 'users^42^name', value: 'Ada Lovelace' },
      { action: 'GET', key: 'users^42^name' },
    ]);
  });

  it('Tab completes actions and fields', async () => {
    const client = new FakeClient(answers);
    const term = start(client);
    await shows(term, 'db:7171> ');
    // One chunk per key, as typed: readline takes a Tab inside a pasted chunk literally.
    for (const key of ['se', '\t', ' k 1 tt', '\t', '5\r']) term.keys.write(key);
    await shows(term, 'true\n');
    expect(client.sent).toEqual([{ action: 'SET', key: 'k', value: 1, ttl: 5 }]);
    for (const key of ['EX', '\t', '\t']) term.keys.write(key);
    await shows(term, /EXISTS\s+EXPIRE\s+EXIT/);
  });

  it('keeps history in the file and recalls it with the up arrow in the next session', async () => {
    const file = join(dir, 'history');
    const first = new FakeClient(answers);
    const a = start(first, file);
    await shows(a, 'db:7171> ');
    a.keys.write('SET a 1\rAUTH ada secret\rGET a\r');
    await shows(a, '"Ada"\n');
    a.keys.write('\x04');
    await a.done;
    expect(readFileSync(file, 'utf8')).toBe('SET a 1\nGET a\n');

    const second = new FakeClient(answers);
    const b = start(second, file);
    await shows(b, 'db:7171> ');
    b.keys.write('\x1b[A\x1b[A\r');
    await shows(b, 'true\n');
    expect(second.sent).toEqual([{ action: 'SET', key: 'a', value: 1 }]);
  });

  it('Ctrl+C gives up on a request that hangs, and the shell goes on', async () => {
    const client = new FakeClient((r) => (r.action === 'GET' ? new Promise(() => {}) : answers(r)));
    const term = start(client);
    await shows(term, 'db:7171> ');
    term.keys.write('GET slow\r');
    await shows(term, 'GET slow');
    term.keys.write('\x03');
    await shows(term, '(interrupted');
    term.keys.write('SET k 1\r');
    await shows(term, 'true\n');
  });

  it('Ctrl+C clears a half-typed line; twice on an empty line leaves', async () => {
    const client = new FakeClient(answers);
    const term = start(client);
    await shows(term, 'db:7171> ');
    term.keys.write('SET half');
    term.keys.write('\x03');
    term.keys.write('PING\r');
    await shows(term, 'true\n');
    expect(client.sent).toEqual([{ action: 'PING' }]);
    term.keys.write('\x03');
    await shows(term, 'press Ctrl+C again');
    term.keys.write('\x03');
    await term.done;
  });

  it('says when the connection is lost and when it is back', async () => {
    const client = new FakeClient(answers);
    const term = start(client);
    await shows(term, 'db:7171> ');
    client.emit('close');
    await shows(term, 'connection to db:7171 lost; reconnecting');
    await shows(term, 'db:7171 (reconnecting)> ');
    client.emit('ready');
    await shows(term, 'reconnected to db:7171');
    client.emit('push', { event: 'shutdown', message: 'bye' });
    await shows(term, '{"event":"shutdown","message":"bye"}');
  });

  it('runs without a history file when history is off', async () => {
    const client = new FakeClient(answers);
    const term = start(client, undefined);
    await shows(term, 'db:7171> ');
    term.keys.write('PING\r');
    await shows(term, 'true\n');
    term.keys.write('\x04');
    await term.done;
  });
});
