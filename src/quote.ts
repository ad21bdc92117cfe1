/**
 * Client-supplied text quoted for an error or log message: JSON-quoted (so control characters and
 * quotes cannot forge a line) and cut to `max` characters, since the text can be up to a line long.
 */

/** Paths and patterns in messages: enough to recognise one, short enough to keep the line readable. */
export const PATH_QUOTE_MAX = 64;

export function quote(text: string, max = 200): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max - 3)}...` : text);
}
