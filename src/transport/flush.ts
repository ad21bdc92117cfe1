/** Output written once per event-loop turn for every connection: see TurnFlusher. */
import { atOutput } from '../turn.js';

/** A connection whose writes of this turn are held until `flushTurn()`. */
export interface Flushable {
  flushTurn(): void;
}

/**
 * Output is sent once per turn of the event loop, as Redis sends replies before it next waits for
 * events: a connection's writes during a turn (a batch of responses, pub/sub pushes) are held and
 * go out in one socket write after the loop has handled every readable socket (`setImmediate` runs
 * right after the poll phase). Writing while still reading meant one wake-up of the peer per
 * write; at the end of the turn the peer is woken once and finds everything. Measured with the
 * macro benchmark (docs/benchmarks.md): ~15% more requests per second at pipeline 16,
 * with half the kernel time per request. Output of a high-water mark or more is written at once, so memory
 * and backpressure stay bounded as before. The append-only log's flush of the turn runs first
 * (src/turn.ts), so a reply never leaves before its record was written.
 */
export class TurnFlusher {
  #waiting: Flushable[] = [];
  #scheduled = false;

  add(conn: Flushable): void {
    this.#waiting.push(conn);
    if (!this.#scheduled) {
      this.#scheduled = true;
      atOutput(this.#run);
    }
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const conn of waiting) conn.flushTurn();
  };
}
