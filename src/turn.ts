/**
 * The end of an event-loop turn, in a fixed order: first what must reach the append-only log, then
 * output to sockets. Redis orders its beforeSleep the same way (flushAppendOnlyFile before
 * handleClientsWithPendingWrites), so that a reply never leaves before its write() did: with
 * everysec, a crash of the process then loses nothing that was answered.
 *
 * Two setImmediate callbacks per turn at most, queued in this order during the poll phase:
 *   log     the log writer's flush (write, and with `always` fdatasync; resolves the replies
 *           that waited for it: their promise callbacks run right after this callback)
 *   output  first any log work queued since (so no reply passes its record), then every
 *           connection's output of the turn, including the replies the log just released
 * A neutral module (like result.ts): the store's log writer and the transport's flusher both use
 * it without importing each other.
 */

type Task = () => void;

let logTasks: Task[] = [];
let outputTasks: Task[] = [];
let logScheduled = false;
let outputScheduled = false;

function runLog(): void {
  logScheduled = false;
  const tasks = logTasks;
  if (tasks.length === 0) return;
  logTasks = [];
  for (const task of tasks) task();
}

function runOutput(): void {
  outputScheduled = false;
  runLog();
  const tasks = outputTasks;
  outputTasks = [];
  for (const task of tasks) task();
}

/** Runs `task` at the end of this turn, before any output (the log writer's flush). */
export function beforeOutput(task: Task): void {
  logTasks.push(task);
  if (!logScheduled) {
    logScheduled = true;
    setImmediate(runLog);
  }
  // The output pass must come after this one, even if nothing is written yet this turn.
  if (!outputScheduled) {
    outputScheduled = true;
    setImmediate(runOutput);
  }
}

/** Runs `task` at the end of this turn, after the log's work (a connection's output). */
export function atOutput(task: Task): void {
  outputTasks.push(task);
  if (!outputScheduled) {
    outputScheduled = true;
    setImmediate(runOutput);
  }
}
