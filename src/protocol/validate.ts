/**
 * Compiled request validation. Every action's schema is compiled once, never per request: on its
 * first use, or earlier, one per macrotask, once the server is listening (`compileValidatorsSoon`;
 * compiling all of them at load was ~85 ms of start-up, docs/benchmarks.md). Errors become one
 * message that names the field: `key: must be a string`, `value: is required`,
 * `ttl: must be >= 1`, `foo: unknown field`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ACTIONS, type ActionName, type ActionSpec } from './schema.js';

const ajv = new Ajv({
  // The first failure is all a message reports; stopping there is also faster.
  allErrors: false,
  // Look only at the request's own properties: a polluted Object.prototype can never satisfy
  // `required` or sneak in a field.
  ownProperties: true,
  // `id` is `type: ['string', 'number']` (see schema.ts).
  allowUnionTypes: true,
  strict: true,
  // The schemas are constants checked against the JSON Schema meta-schema by validate.test.ts; doing
  // it again at every start compiles the meta-schema (~30 ms of a ~500 ms start, docs/benchmarks.md).
  // Strict mode still refuses unknown keywords while compiling.
  validateSchema: false,
  // strictNumbers (on by default) refuses NaN/Infinity: `1e400` parses to Infinity and must not
  // become a TTL or an INCR operand.
});

/**
 * One action's validator. `check` starts as a stub that compiles the schema, puts the compiled
 * function in its place and runs it; read `check` again after calling it (its `errors` belong to
 * the compiled function, not the stub).
 */
export class CompiledAction {
  check: ValidateFunction;
  #compiled = false;

  constructor(
    readonly name: ActionName,
    readonly spec: ActionSpec,
  ) {
    this.check = ((data: unknown) => this.compile()(data)) as ValidateFunction;
  }

  get compiled(): boolean {
    return this.#compiled;
  }

  /** Compile now unless already compiled; returns the compiled function. */
  compile(): ValidateFunction {
    if (!this.#compiled) {
      this.check = ajv.compile(this.spec.request);
      this.#compiled = true;
    }
    return this.check;
  }
}

/** Every action's validator, keyed by upper-case action name. */
export const COMPILED: ReadonlyMap<string, CompiledAction> = new Map(
  (Object.entries(ACTIONS) as [ActionName, ActionSpec][]).map(([name, spec]) => [
    name,
    new CompiledAction(name, spec),
  ]),
);

/** Compile every validator now (tests, and tools that would rather pay up front). */
export function compileValidators(): void {
  for (const c of COMPILED.values()) c.compile();
}

/**
 * Compile the validators not compiled yet one per macrotask, so that a server already listening
 * keeps answering between them. Returns a function that stops it (for a server closed meanwhile).
 */
export function compileValidatorsSoon(): () => void {
  const pending = [...COMPILED.values()].filter((c) => !c.compiled);
  let timer: NodeJS.Immediate | undefined;
  const next = (): void => {
    const c = pending.pop();
    if (c === undefined) {
      timer = undefined;
      return;
    }
    c.compile();
    timer = setImmediate(next);
  };
  timer = setImmediate(next);
  return () => {
    if (timer !== undefined) clearImmediate(timer);
    timer = undefined;
  };
}

/** The message for the first error of a failed `check` call. */
export function validationMessage(check: ValidateFunction): string {
  const first = check.errors?.[0];
  return first === undefined ? 'request: invalid' : formatError(first);
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
  'string,number': 'a string or a number',
};

export function formatError(e: ErrorObject): string {
  const at = fieldPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${join(at, String(p.missingProperty))}: is required`;
    case 'additionalProperties':
      return `${join(at, String(p.additionalProperty))}: unknown field`;
    case 'type': {
      const t = Array.isArray(p.type) ? p.type.join(',') : String(p.type);
      return `${at || 'request'}: must be ${ARTICLE[t] ?? t}`;
    }
    case 'const':
      return `${at}: must be ${JSON.stringify(p.allowedValue)}`;
    case 'maxLength':
      return `${at}: must be at most ${String(p.limit)} characters`;
    case 'minItems':
      return `${at}: must have at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}`;
    case 'maxItems':
      return `${at}: must have at most ${String(p.limit)} items`;
    case 'minProperties':
      return `${at}: must have at least ${String(p.limit)} entr${p.limit === 1 ? 'y' : 'ies'}`;
    case 'maxProperties':
      return `${at}: must have at most ${String(p.limit)} entries`;
    default:
      // minimum/maximum read well as ajv words them: "must be >= 1".
      return `${at || 'request'}: ${e.message ?? 'is invalid'}`;
  }
}

function join(parent: string, name: string): string {
  return parent === '' ? name : `${parent}.${name}`;
}

/** JSON Pointer (`/keys/3`, `/entries/a~1b`) to a readable field path (`keys[3]`, `entries.a/b`). */
function fieldPath(pointer: string): string {
  if (pointer === '') return '';
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}
