import type { HandlerFactory } from './types.js';

/**
 * The raw echo handler: every byte comes back exactly as it arrived (no framing, no decoding).
 * Backpressure, half-close and shutdown are the transport's defaults: when the client stops reading,
 * `write` congests the connection and the transport stops reading from it.
 */
export const echoHandler: HandlerFactory = (conn) => ({
  data(chunk) {
    conn.write(chunk);
  },
  close() {},
});
