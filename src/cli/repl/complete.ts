/** Tab completion: action names first, then the action's named fields; `help` completes actions. */
import { LOCAL_COMMANDS } from './parse.js';
import { ACTION_NAMES, actionInfo, typeOf } from './spec.js';

/** readline's completer contract: the candidates and the text they complete. */
export function complete(line: string): [string[], string] {
  const words = line.trimStart().split(/\s+/);
  const current = words[words.length - 1] ?? '';
  if (words.length <= 1) return [matchCase(current, [...ACTION_NAMES, ...LOCAL_COMMANDS]), current];

  const first = words[0]!;
  if (first.toLowerCase() === 'help' && words.length === 2)
    return [matchCase(current, ACTION_NAMES), current];

  const info = actionInfo(first);
  if (!info || current.includes('=')) return [[], current];
  const lower = current.toLowerCase();
  const fields = info.fields
    .map((f) => (typeOf(f.schema) === 'boolean' ? f.name : `${f.name}=`))
    .filter((candidate) => candidate.toLowerCase().startsWith(lower));
  return [fields, current];
}

/** Candidates starting with `prefix` (any case), in the case the user is typing in. */
function matchCase(prefix: string, names: readonly string[]): string[] {
  const lower = prefix.toLowerCase();
  const typingLower = prefix !== '' && prefix === lower;
  return names
    .filter((name) => name.toLowerCase().startsWith(lower))
    .map((name) => (typingLower ? name.toLowerCase() : name.toUpperCase()))
    .filter((name, i, all) => all.indexOf(name) === i);
}
