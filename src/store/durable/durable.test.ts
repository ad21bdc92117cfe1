import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { describeStoreContract } from '../store.contract.js';
import { type DurableLogger, DurableStore } from './durable.js';
import { FSYNC_POLICIES } from './writer.js';

export const quietLogger: DurableLogger = { debug() {}, info() {}, warn() {}, error() {} };

const root = mkdtempSync(join(tmpdir(), 'caretkv-durable-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

for (const appendfsync of FSYNC_POLICIES) {
  describeStoreContract(
    `DurableStore (appendfsync ${appendfsync})`,
    ({ now }) =>
      new DurableStore({
        dir: join(root, `contract-${n++}`),
        appendfsync,
        rewritePercentage: 100,
        rewriteMinBytes: 64 << 20,
        logger: quietLogger,
        now,
      }),
  );
}
