import type { SpecDiagnostic } from './diagnostics';
import { alternativesOf, conditionalBranch, jsonTypeOf, propertySchema, resolveSchema, typeAccepts, typesOf, type JsonSchema, type JsonType } from './schema';
import { closestMatch, didYouMean } from './suggest';
import type { LineIndex, SourceRange } from './text';
import { checkCron, parseDuration, parseGpuRequest, parseSize, type Parsed } from './units';
import { mapEntry, plainValue, type MapEntry, type MapNode, type SeqNode, type SpecNode } from './yaml-source';

const FORMAT_CHECKS: Record<string, (value: unknown) => Parsed<unknown>> = {
  size: parseSize,
  duration: parseDuration,
  'gpu-request': parseGpuRequest,
  cron: checkCron,
};

const TYPE_NAMES: Record<JsonType, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  null: 'nothing',
};

/**
 * Where a value sits: its key or index under its parent (the path for messages is only built
 * when a message is), and the range to blame when the value is missing.
 */
interface Place {
  parent?: Place;
  segment?: string | number;
  anchor: SourceRange;
}

/**
 * Checks a YAML tree against the schema, straight on the nodes, so every problem carries the
 * exact range of the key or value at fault.
 */
export function validateAgainstSchema(root: SpecNode, schema: JsonSchema, lines: LineIndex, diagnostics: SpecDiagnostic[], memo?: EntryMemo): void {
  // Every place has the same three fields, so that the walker sees one shape of them.
  new SchemaWalker(lines, diagnostics, memo).walk(root, schema, { parent: undefined, segment: undefined, anchor: root.range });
}

/**
 * Lets an incremental analysis reuse a job's results while its text is the same: the diagnostics
 * of a mapping entry (its key and value) checked before, or from `check` now; undefined for an
 * entry it does not keep, which is then checked as usual.
 */
export interface EntryMemo {
  entryDiagnostics(entry: MapEntry, check: () => SpecDiagnostic[]): readonly SpecDiagnostic[] | undefined;
}

class SchemaWalker {
  constructor(
    private readonly lines: LineIndex,
    private readonly diagnostics: SpecDiagnostic[],
    private readonly memo?: EntryMemo,
  ) {}

  walk(node: SpecNode, rawSchema: JsonSchema, place: Place): void {
    let schema = resolveSchema(rawSchema);
    if (schema.if && node.kind === 'map') {
      const keys = new Set(node.entries.map((entry) => entry.key));
      const branch = conditionalBranch(schema, keys);
      if (branch) schema = resolveSchema(branch);
    }
    const actual = nodeType(node);
    if (schema.oneOf) {
      const chosen = this.chooseAlternative(node, actual, schema, place);
      if (chosen) this.walk(node, chosen, place);
      return;
    }
    const wanted = typesOf(schema);
    if (wanted.length > 0 && !acceptsAny(wanted, actual)) {
      this.wrongType(node, wanted, actual, place);
      return;
    }
    if (schema.enum) {
      this.checkEnum(node, schema.enum, place);
      return;
    }
    if (node.kind === 'map') this.walkMap(node, schema, place);
    else if (node.kind === 'seq') this.walkSeq(node, schema, place);
    else this.checkScalar(node, schema, place);
  }

  private chooseAlternative(node: SpecNode, actual: JsonType, schema: JsonSchema, place: Place): JsonSchema | undefined {
    const alternatives = alternativesOf(schema);
    const fitting = alternatives.filter((alternative) => typesOf(alternative).some((type) => typeAccepts(type, actual)));
    if (fitting.length === 0) {
      this.wrongType(node, alternatives.flatMap(typesOf), actual, place);
      return undefined;
    }
    if (fitting.length === 1 || node.kind !== 'map') return fitting[0];
    // Several mapping shapes: pick the one whose required key is present.
    const keys = new Set(node.entries.map((entry) => entry.key));
    const byRequired = fitting.find((alternative) => (alternative.required ?? []).length > 0 && alternative.required!.every((key) => keys.has(key)));
    if (byRequired) return byRequired;
    const shapes = fitting.map((alternative) => (alternative.required ?? Object.keys(alternative.properties ?? {})).join(', '));
    this.report('wrong-type', node.range, `${label(place)} must be a mapping with one of: ${shapes.join(' | ')}`);
    return undefined;
  }

  private walkMap(map: MapNode, schema: JsonSchema, place: Place): void {
    const seen = new KeySet(map.entries.length);
    for (const entry of map.entries) {
      const { key, keyRange, plainKey } = entry;
      if (!plainKey) {
        this.report('wrong-type', keyRange, `keys in ${label(place)} must be plain names`);
        continue;
      }
      if (seen.has(key)) {
        const first = mapEntry(map, key)!.keyRange;
        this.report('duplicate-key', keyRange, `duplicate key '${key}' in ${label(place)}; the first is on line ${this.lines.position(first.start).line + 1}`, {
          related: [{ message: `first '${key}'`, range: first }],
        });
        continue;
      }
      seen.add(key);
      const known = this.memo?.entryDiagnostics(entry, () => {
        const own: SpecDiagnostic[] = [];
        new SchemaWalker(this.lines, own).walkEntry(entry, schema, place);
        return own;
      });
      if (known) for (const diagnostic of known) this.diagnostics.push(diagnostic);
      else this.walkEntry(entry, schema, place);
    }
    for (const key of schema.required ?? []) {
      if (!seen.has(key)) this.report('missing-key', place.anchor, `${label(place)} needs '${key}'`);
    }
    if (schema.minProperties !== undefined && seen.size < schema.minProperties) {
      this.report('missing-key', place.anchor, `${label(place)} needs at least ${schema.minProperties} ${schema.minProperties === 1 ? 'entry' : 'entries'}`);
    }
  }

  /** Checks one entry of a mapping (not its place among its siblings: that is `walkMap`'s). */
  private walkEntry({ key, keyRange, value }: MapEntry, schema: JsonSchema, place: Place): void {
    if (schema.propertyNames?.pattern && !compiled(schema.propertyNames.pattern).test(key)) {
      this.report('invalid-value', keyRange, `'${key}': ${schema.propertyNames.errorMessage ?? `does not match ${schema.propertyNames.pattern}`}`);
    }
    const child = propertySchema(schema, key);
    if (!child) {
      if (schema.additionalProperties === false) {
        const suggestion = closestMatch(key, Object.keys(schema.properties ?? {}));
        this.report('unknown-key', keyRange, `unknown key '${key}' in ${label(place)}${didYouMean(suggestion)}`, { suggestion });
      }
      return;
    }
    this.walk(value, child, { parent: place, segment: key, anchor: keyRange });
  }

  private walkSeq(seq: SeqNode, schema: JsonSchema, place: Place): void {
    const count = seq.items.length;
    if (schema.minItems !== undefined && count < schema.minItems) {
      this.report('invalid-value', seq.range, `${label(place)} needs at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}, has ${count}`);
    }
    if (schema.maxItems !== undefined && count > schema.maxItems) {
      this.report('invalid-value', seq.range, `${label(place)} takes at most ${schema.maxItems} items, has ${count}`);
    }
    if (!schema.items) return;
    for (let index = 0; index < seq.items.length; index++) {
      const item = seq.items[index]!;
      this.walk(item, schema.items, { parent: place, segment: index, anchor: item.range });
    }
  }

  private checkScalar(node: SpecNode, schema: JsonSchema, place: Place): void {
    const value = plainValue(node);
    const { range } = node;
    const format = schema['x-drover-format'];
    if (format) {
      const result = FORMAT_CHECKS[format]!(value);
      if (!result.ok) this.report('invalid-value', range, `${label(place)}: ${result.message}`);
      return;
    }
    if (typeof value === 'string') {
      if (schema.minLength !== undefined && value.length < schema.minLength) this.report('invalid-value', range, `${label(place)} cannot be empty`);
      if (schema.pattern && !compiled(schema.pattern).test(value)) {
        this.report('invalid-value', range, `${label(place)}: ${schema.errorMessage ?? `'${value}' does not match ${schema.pattern}`}`);
      }
    }
    if (typeof value === 'number') {
      if (schema.minimum !== undefined && value < schema.minimum) this.report('invalid-value', range, `${label(place)} must be at least ${schema.minimum}, not ${value}`);
      if (schema.maximum !== undefined && value > schema.maximum) this.report('invalid-value', range, `${label(place)} must be at most ${schema.maximum}, not ${value}`);
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) {
        this.report('invalid-value', range, `${label(place)} must be greater than ${schema.exclusiveMinimum}, not ${value}`);
      }
    }
  }

  private checkEnum(node: SpecNode, allowed: unknown[], place: Place): void {
    const value = plainValue(node);
    if (allowed.includes(value)) return;
    const names = allowed.map(String);
    const suggestion = closestMatch(String(value), names);
    this.report('invalid-value', node.range, `${label(place)} must be one of ${names.join(', ')}, not '${String(value)}'${didYouMean(suggestion)}`, {
      suggestion,
    });
  }

  private wrongType(node: SpecNode, wanted: JsonType[], actual: JsonType, place: Place): void {
    const expected = [...new Set(wanted.map((type) => TYPE_NAMES[type]))];
    const listed = expected.length > 1 ? `${expected.slice(0, -1).join(', ')} or ${expected[expected.length - 1]}` : expected[0];
    const got = actual === 'null' ? 'has no value' : `is ${TYPE_NAMES[actual]}`;
    this.report('wrong-type', emptyAware(node, place), `${label(place)} ${got}; expected ${listed}`);
  }

  private report(code: SpecDiagnostic['code'], range: SourceRange, message: string, extra: Partial<SpecDiagnostic> = {}): void {
    const diagnostic: SpecDiagnostic = { severity: 'error', code, message, range };
    if (extra.suggestion !== undefined) diagnostic.suggestion = extra.suggestion;
    if (extra.related) diagnostic.related = extra.related;
    this.diagnostics.push(diagnostic);
  }
}

/**
 * The keys seen so far in one mapping. Most mappings hold a handful of keys, and the validator
 * meets one per job and block: a list is quicker to make and to search than a Set at that size.
 */
class KeySet {
  private readonly list: string[] = [];
  private readonly set: Set<string> | undefined;

  constructor(expected: number) {
    if (expected > 8) this.set = new Set();
  }

  has(key: string): boolean {
    return this.set ? this.set.has(key) : this.list.includes(key);
  }

  add(key: string): void {
    if (this.set) this.set.add(key);
    else this.list.push(key);
  }

  get size(): number {
    return this.set ? this.set.size : this.list.length;
  }
}

function acceptsAny(wanted: readonly JsonType[], actual: JsonType): boolean {
  for (const type of wanted) if (typeAccepts(type, actual)) return true;
  return false;
}

const patterns = new Map<string, RegExp>();

function compiled(pattern: string): RegExp {
  let regex = patterns.get(pattern);
  if (!regex) patterns.set(pattern, (regex = new RegExp(pattern)));
  return regex;
}

function nodeType(node: SpecNode): JsonType {
  if (node.kind === 'map') return 'object';
  if (node.kind === 'seq') return 'array';
  return jsonTypeOf(node.value);
}

/** An empty value has an empty range; point at its key instead. */
function emptyAware(node: SpecNode, place: Place): SourceRange {
  return node.range.end > node.range.start ? node.range : place.anchor;
}

function label(place: Place): string {
  let path = '';
  for (let at: Place | undefined = place; at?.segment !== undefined; at = at.parent) {
    path = typeof at.segment === 'number' ? `[${at.segment}]${path}` : `${at.segment}${path && !path.startsWith('[') ? '.' : ''}${path}`;
  }
  return path === '' ? 'the spec' : `'${path}'`;
}
