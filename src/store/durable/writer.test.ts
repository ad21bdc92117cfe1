import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type FsyncPolicy, type LogIo, LogWriter, NODE_IO } from './writer.js';

const dir = mkdtempSync(join(tmpdir(), 'caretkv-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Real file operations, counted. */
function countingIo() {
  const counts = { writes: 0, syncs: 0 };
  const io: LogIo = {
    ...NODE_IO,
    write: (fd, data) => {
      counts.writes++;
      NODE_IO.write(fd, data);
    },
    sync: (fd) => {
      counts.syncs++;
      NODE_IO.sync(fd);
    },
    syncInBackground: (fd, done) => {
      counts.syncs++;
      NODE_IO.syncInBackground(fd, done);
    },
  };
  return { counts, io };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('LogWriter', () => {
  const writers: LogWriter[] = [];
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.close();
  });
  const make = (policy: FsyncPolicy, io: LogIo, intervalMs = 1000) => {
    const path = join(dir, `f${files++}.log`);
    const fd = openSync(path, 'a');
    const held: unknown[] = [];
    const w = new LogWriter({
      fd,
      size: 0,
      policy,
      io,
      intervalMs,
      events: { durable: (e) => held.push(...e), failed() {}, recovered() {}, flushed() {} },
    });
    writers.push(w);
    return { w, path, held };
  };

  it('commits a loop turn of appends in one write and, with always, one sync', async () => {
    const { counts, io } = countingIo();
    const { w, path } = make('always', io);
    for (let i = 0; i < 1000; i++) w.append(`line ${i}\n`);
    expect(w.pending).toBe(true);
    await w.synced();
    expect(counts).toEqual({ writes: 1, syncs: 1 });
    expect(w.synced()).toBeUndefined();
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(1001);
  });

  it('shares one sync among the appends of a turn; the next turn takes the next sync', async () => {
    const { counts, io } = countingIo();
    const { w } = make('always', io);
    for (let turnNo = 1; turnNo <= 3; turnNo++) {
      for (let i = 0; i < 50; i++) w.append(`turn ${turnNo} writer ${i}\n`);
      await w.synced();
      expect(counts).toEqual({ writes: turnNo, syncs: turnNo });
    }
  });

  it('everysec writes at once and syncs on a timer; no never syncs until close', async () => {
    const everysec = countingIo();
    const a = make('everysec', everysec.io, 30);
    a.w.append('x\n');
    expect(a.w.synced()).toBeDefined(); // buffered
    await expect.poll(() => everysec.counts.writes).toBe(1);
    await expect.poll(() => a.w.lastSyncAt).not.toBeNull();
    expect(a.w.pendingBytes).toBe(0);

    const no = countingIo();
    const b = make('no', no.io, 30);
    b.w.append('x\n');
    await turn();
    expect(no.counts.writes).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(no.counts.syncs).toBe(0);
    expect(b.w.pendingBytes).toBe(2);
    await b.w.close();
    expect(no.counts.syncs).toBe(1);
  });

  it('holds events until the records before them are durable, in order', async () => {
    const { io } = countingIo();
    const { w, held } = make('always', io);
    w.hold('nothing pending: at once');
    expect(held).toEqual(['nothing pending: at once']);
    w.append('a\n');
    w.hold('after a');
    expect(held).toHaveLength(1);
    await w.synced();
    expect(held).toEqual(['nothing pending: at once', 'after a']);
  });

  it('rotates: records before go to the old file (synced), the switch runs, records after go to the new one', async () => {
    const { io } = countingIo();
    const { w, path } = make('everysec', io);
    const next = join(dir, `f${files++}.log`);
    const fd = openSync(next, 'a');
    const steps: string[] = [];
    w.append('old 1\n');
    const rotated = w.rotate(fd, async () => {
      steps.push(`switch sees ${JSON.stringify(readFileSync(path, 'utf8'))}`);
    });
    w.append('new 1\n'); // after the call: the new file, once the switch is done
    await rotated;
    w.append('new 2\n');
    await turn();
    expect(steps).toEqual(['switch sees "old 1\\n"']);
    expect(readFileSync(path, 'utf8')).toBe('old 1\n');
    expect(readFileSync(next, 'utf8')).toBe('new 1\nnew 2\n');
    closeSync(openSync(next, 'r'));
  });

  it('keeps writing to the old file when the switch fails, with what gathered meanwhile', async () => {
    const { io } = countingIo();
    const { w, path } = make('always', io);
    const next = join(dir, `f${files++}.log`);
    const fd = openSync(next, 'a');
    w.append('before\n');
    const rotated = w.rotate(fd, async () => {
      throw new Error('manifest write failed');
    });
    w.append('during\n');
    const synced = w.synced()!;
    await expect(rotated).rejects.toThrow('manifest write failed');
    closeSync(fd);
    await synced;
    expect(readFileSync(path, 'utf8')).toBe('before\nduring\n');
    expect(readFileSync(next, 'utf8')).toBe('');
  });
});
