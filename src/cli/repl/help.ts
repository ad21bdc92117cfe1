/** `help` and `help ACTION`, written from the protocol schema so they never disagree with the server. */
import { paint, type Style } from './format.js';
import { usage } from './parse.js';
import { ACTION_NAMES, actionInfo, typeName } from './spec.js';

const INTRO = `Type an action and its arguments, e.g.
  SET users^42^name "Ada Lovelace"     GET users^42^name     KEYS users
  SET n 5 ttl=1000                     INCR n by=2           MGET a b c
Arguments are JSON when they parse as JSON (5, true, {"a":1}), else strings; quote to force a string.
A line starting with { is sent as a raw request. help ACTION shows its fields; quit or Ctrl+D leaves.`;

export function helpText(args: readonly string[], style: Style): string {
  const [name] = args;
  if (name === undefined) return overview(style);
  const info = actionInfo(name);
  if (!info) return `unknown action ${name}; actions: ${ACTION_NAMES.join(' ')}`;
  const lines = [paint(style, 'bold', usage(info)), `  ${info.spec.summary}`];
  if (info.fields.length > 0) {
    const width = Math.max(...info.fields.map((f) => f.name.length));
    const types = info.fields.map((f) => typeName(f.schema));
    const typeWidth = Math.max(...types.map((t) => t.length));
    lines.push('');
    info.fields.forEach((field, i) => {
      const description = (field.schema as { description?: string }).description ?? '';
      const optional = field.required ? '' : ' (optional)';
      lines.push(
        `  ${paint(style, 'cyan', field.name.padEnd(width))}  ${types[i]!.padEnd(typeWidth)}  ${description}${optional}`,
      );
    });
  }
  if (info.spec.errors.length > 0) lines.push('', `  Errors: ${info.spec.errors.join(', ')}`);
  if (info.spec.notes) lines.push('', `  ${info.spec.notes}`);
  return lines.join('\n');
}

function overview(style: Style): string {
  const width = Math.max(...ACTION_NAMES.map((n) => n.length));
  const rows = ACTION_NAMES.map((name) => {
    const info = actionInfo(name)!;
    return `  ${paint(style, 'bold', name.padEnd(width))}  ${info.spec.summary}`;
  });
  return `${INTRO}\n\nActions:\n${rows.join('\n')}`;
}
