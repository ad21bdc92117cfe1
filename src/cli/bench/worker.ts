import { parentPort, workerData } from 'node:worker_threads';
import { LoadGenerator, type LoadShare } from './load.js';

/**
 * Worker-thread entry: drives one share of the run's connections.
 *   main -> worker: workerData = LoadShare; { type: 'go' }, { type: 'stop' }, { type: 'progress' }
 *   worker -> main: { type: 'ready' }, { type: 'progress', measured }, { type: 'result', result },
 *                   { type: 'error', message }
 */
export type ToWorker = { type: 'go' } | { type: 'stop' } | { type: 'progress' };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; measured: number }
  | { type: 'result'; result: import('./load.js').LoadResult }
  | { type: 'error'; message: string };

const port = parentPort;
if (port === null) throw new Error('src/cli/bench/worker.ts runs as a worker thread');

const generator = new LoadGenerator(workerData as LoadShare);
const post = (message: FromWorker): void => port.postMessage(message);
const fail = (err: unknown): void => {
  post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  port.close();
};

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'go':
      generator.run().then((result) => {
        post({ type: 'result', result });
        port.close();
      }, fail);
      break;
    case 'stop':
      generator.stop();
      break;
    case 'progress':
      post({ type: 'progress', measured: generator.measured });
      break;
  }
});

generator.connect().then(() => post({ type: 'ready' }), fail);
