/**
 * How the CLI prints. For people (a TTY): JSON laid out to read, coloured unless NO_COLOR says
 * otherwise. For machines (pipes): every result is one line of JSON, every error one line starting
 * with `(error) `, so a script can tell them apart by the first character.
 */

export interface Style {
  /** ANSI colours. */
  readonly color: boolean;
  /** Multi-line layout for large values; off means one line of JSON per result. */
  readonly pretty: boolean;
}

export const MACHINE: Style = { color: false, pretty: false };

/**
 * Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org) or the
 * terminal is dumb; FORCE_COLOR (not "0") turns it on for pipes, as chalk and Node itself do.
 */
export function colorWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const CODES = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  magenta: [35, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
} as const;

export type Color = keyof typeof CODES;

export function paint(style: Style, color: Color, text: string): string {
  if (!style.color) return text;
  const [on, off] = CODES[color];
  return `\x1b[${on}m${text}\x1b[${off}m`;
}

/** Values whose one-line form fits this many columns stay on one line in pretty mode. */
const INLINE_WIDTH = 72;

/** A successful result. */
export function formatResult(value: unknown, style: Style): string {
  if (!style.pretty) return JSON.stringify(value ?? null);
  return render(value ?? null, '', style);
}

/** `(error) KEY_NOT_FOUND no such key: users^42^name` */
export function formatError(code: string, message: string, style: Style): string {
  return `${paint(style, 'red', `(error) ${code}`)} ${message}`;
}

/** A server push (pub/sub message, key change, shutdown notice). */
export function formatPush(message: { event: string; [field: string]: unknown }, style: Style): string {
  if (!style.pretty) return JSON.stringify(message);
  return `${paint(style, 'cyan', `(${message.event})`)} ${render(message, '', style)}`;
}

function render(value: unknown, indent: string, style: Style): string {
  const inline = JSON.stringify(value);
  if (value === null || typeof value !== 'object') return scalar(value, inline, style);
  const entries: [string | undefined, unknown][] = Array.isArray(value)
    ? value.map((v) => [undefined, v])
    : Object.entries(value);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return `${open}${close}`;
  const one = indent.length + inline.length <= INLINE_WIDTH;
  const inner = one ? '' : `${indent}  `;
  const parts = entries.map(([key, v]) => {
    const prefix = key === undefined ? '' : `${paint(style, 'cyan', JSON.stringify(key))}: `;
    return `${inner}${prefix}${one ? render(v, indent, style) : render(v, inner, style)}`;
  });
  return one ? `${open}${parts.join(', ')}${close}` : `${open}\n${parts.join(',\n')}\n${indent}${close}`;
}

function scalar(value: unknown, text: string, style: Style): string {
  if (typeof value === 'string') return paint(style, 'green', text);
  if (typeof value === 'number') return paint(style, 'yellow', text);
  return paint(style, 'magenta', text);
}
