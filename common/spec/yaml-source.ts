import { CORE_SCHEMA, load, type State } from 'js-yaml';
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import type { SpecDiagnostic } from './diagnostics';
import type { SourceRange } from './text';

/**
 * A YAML tree in which every node knows its source range. The spec model, the validator and
 * the language server read this tree only, whichever parser produced it.
 */
export type SpecNode = MapNode | SeqNode | ScalarNode;
export type ScalarValue = string | number | boolean | null;

export interface MapEntry {
  key: string;
  keyRange: SourceRange;
  /** False when the key is not a plain scalar (a list or mapping used as a key). */
  plainKey: boolean;
  value: SpecNode;
}

export interface MapNode {
  kind: 'map';
  range: SourceRange;
  entries: MapEntry[];
}

export interface SeqNode {
  kind: 'seq';
  range: SourceRange;
  items: SpecNode[];
}

export interface ScalarNode {
  kind: 'scalar';
  range: SourceRange;
  /** null for an empty value (`key:`) as well as for `~` and `null`. */
  value: ScalarValue;
}

/** A spec's text and its tree (null when the document holds nothing). */
export interface YamlSource {
  text: string;
  root: SpecNode | null;
  syntaxDiagnostics: SpecDiagnostic[];
}

/**
 * Parses YAML 1.2 (core schema). Well-formed text goes through js-yaml, which is an order of
 * magnitude faster; anything it rejects is parsed again by the `yaml` package, which recovers
 * from errors, so a half-typed document still yields a tree and precise syntax errors.
 */
export function parseYamlSource(text: string): YamlSource {
  try {
    return { text, root: parseStrict(text), syntaxDiagnostics: [] };
  } catch {
    return parseTolerant(text);
  }
}

/** The fast path: js-yaml, with its open/close events turned into a positioned tree. */
export function parseStrict(text: string): SpecNode | null {
  // Flat stacks rather than a frame object per node: this runs once per node of large specs.
  const starts: number[] = [];
  const bases: number[] = [];
  // The composed nodes not yet taken by their parent are nodes[0..top): popped by moving `top`, as
  // shortening the array each time costs more than the rest of the listener.
  const nodes: SpecNode[] = [];
  /** The value each node composed to, to recognise a node js-yaml composed twice. */
  const results: unknown[] = [];
  let top = 0;
  load(text, {
    schema: CORE_SCHEMA,
    listener(event: 'open' | 'close', state: State) {
      if (event === 'open') {
        starts.push(state.position);
        bases.push(top);
        return;
      }
      const { kind, result } = state as unknown as { kind: string | null; result: unknown };
      const start = starts.pop()!;
      const base = bases.pop()!;
      const node = nodeFromEvent(text, nodes, results, base, top, start, kind, result, Math.min(state.position, text.length));
      nodes[base] = node;
      results[base] = result;
      top = base + 1;
      // js-yaml would keep a plain copy of every collection until the end, all of it garbage to
      // us: its parent gets a stand-in instead (half the objects a large spec leaves alive).
      if (kind === 'mapping' || kind === 'sequence') (state as unknown as { result: unknown }).result = COMPOSED;
      // An alias stands for a value that sends no events of its own; such documents take the other parser.
      if (starts.length === 0 && hasAnchors(state)) throw new Error('anchors and aliases');
    },
  });
  if (starts.length !== 0 || top > 1) throw new Error('unbalanced parser events');
  const root = top === 1 ? nodes[0] : undefined;
  return root === undefined || (root.kind === 'scalar' && root.value === null && text.trim() === '') ? null : root;
}

/** What js-yaml is given in place of a collection it composed (see parseStrict). */
const COMPOSED = Object.freeze({});

function hasAnchors(state: State): boolean {
  for (const _ in (state as unknown as { anchorMap: object }).anchorMap) return true;
  return false;
}

/** The node for a close event; its children are `nodes[base..top)`. */
function nodeFromEvent(text: string, nodes: SpecNode[], results: unknown[], base: number, top: number, from: number, kind: string | null, result: unknown, position: number): SpecNode {
  const count = top - base;
  const end = trimEnd(text, from, position);
  if (kind === 'mapping' || kind === 'sequence') {
    // js-yaml sometimes composes a collection inside another at the same place; the inner one is the node.
    if (count === 1 && (results[base] === result || result === COMPOSED)) return nodes[base]!;
    const range = { start: skipSpace(text, from, end), end };
    if (kind === 'sequence') {
      if (count !== (result as unknown[]).length) throw new Error('sequence without events for every item');
      return { kind: 'seq', range, items: nodes.slice(base, top) };
    }
    if (count % 2 !== 0) throw new Error('mapping without events for every entry');
    const entries: MapEntry[] = [];
    for (let i = base; i < top; i += 2) {
      const key = nodes[i]!;
      if (key.kind !== 'scalar') throw new Error('complex key');
      entries.push({ key: String(key.value), keyRange: key.range, plainKey: true, value: nodes[i + 1]! });
    }
    return { kind: 'map', range, entries };
  }
  // A scalar's children are js-yaml's abandoned attempts at reading it some other way.
  if (result !== null && result !== undefined && typeof result === 'object') throw new Error('unexpected value type');
  const start = Math.min(skipSpace(text, from, end), end);
  return { kind: 'scalar', range: { start, end: Math.max(start, end) }, value: (result ?? null) as ScalarValue };
}

/** Skips the blanks, line breaks and comments js-yaml includes before a node. */
export function skipSpace(text: string, from: number, limit: number): number {
  let position = from;
  while (position < limit) {
    const char = text.charCodeAt(position);
    if (char === 32 || char === 9 || char === 10 || char === 13) position++;
    else if (char === 35) {
      while (position < limit && text.charCodeAt(position) !== 10) position++;
    } else break;
  }
  return position;
}

/** Drops the blanks and line breaks js-yaml includes after a node. */
export function trimEnd(text: string, start: number, end: number): number {
  let position = end;
  while (position > start) {
    const char = text.charCodeAt(position - 1);
    if (char === 32 || char === 9 || char === 10 || char === 13) position--;
    else break;
  }
  return position;
}

/** The tolerant path: the `yaml` package's recovering parser. */
export function parseTolerant(text: string): YamlSource {
  // Duplicate keys are left to the validator, which names the line of the first one.
  const document = parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  const syntaxDiagnostics: SpecDiagnostic[] = [];
  const report = (severity: SpecDiagnostic['severity'], problem: { message: string; pos: [number, number] }) => {
    syntaxDiagnostics.push({
      severity,
      code: 'yaml-syntax',
      message: `YAML: ${problem.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '')}`,
      range: clamp(text, problem.pos[0], problem.pos[1]),
    });
  };
  for (const error of document.errors) report('error', error);
  for (const warning of document.warnings) report('warning', warning);
  const contents = document.contents as YamlNode | null;
  return { text, root: contents ? fromYamlNode(text, contents) : null, syntaxDiagnostics };
}

function fromYamlNode(text: string, node: YamlNode | null | undefined, fallbackAt = 0): SpecNode {
  // The same convention as the fast path: a node's range ends at its last character, not at the line break after it.
  const range = node?.range ? clamp(text, node.range[0], trimEnd(text, node.range[0], node.range[1])) : clamp(text, fallbackAt, fallbackAt);
  if (isMap(node)) {
    const entries: MapEntry[] = [];
    for (const pair of node.items) {
      const key = pair.key as YamlNode | null;
      const keyRange = key?.range ? clamp(text, key.range[0], key.range[1]) : range;
      const plainKey = isScalar(key) && key.value !== null && typeof key.value !== 'object';
      entries.push({
        key: plainKey ? String((key as { value: unknown }).value) : '',
        keyRange,
        plainKey,
        value: fromYamlNode(text, pair.value as YamlNode | null, keyRange.end + 1),
      });
    }
    return { kind: 'map', range, entries };
  }
  if (isSeq(node)) return { kind: 'seq', range, items: node.items.map((item) => fromYamlNode(text, item as YamlNode | null, range.start)) };
  // js-yaml reads -0 as 0; so does Drover, whichever parser ran.
  const value = isScalar(node) ? (Object.is(node.value, -0) ? 0 : node.value) : null;
  const scalar = value === undefined || typeof value === 'object' || typeof value === 'bigint' || typeof value === 'symbol' ? null : (value as ScalarValue);
  return { kind: 'scalar', range, value: scalar };
}

/** A range inside the text: parsers may report the end of input one past it. */
function clamp(text: string, start: number, end: number): SourceRange {
  const from = Math.min(Math.max(0, start), text.length);
  return { start: from, end: Math.min(Math.max(from, end), text.length) };
}

/** The plain JavaScript value of a node (null for an empty value). */
export function plainValue(node: SpecNode | null | undefined): unknown {
  if (!node) return null;
  if (node.kind === 'scalar') return node.value;
  if (node.kind === 'seq') return node.items.map(plainValue);
  const object: Record<string, unknown> = {};
  for (const entry of node.entries) if (!(entry.key in object)) object[entry.key] = plainValue(entry.value);
  return object;
}

export function isMapNode(node: SpecNode | null | undefined): node is MapNode {
  return node?.kind === 'map';
}

export function isSeqNode(node: SpecNode | null | undefined): node is SeqNode {
  return node?.kind === 'seq';
}

/** The first entry under `key` in a mapping. */
export function mapEntry(map: MapNode, key: string): MapEntry | undefined {
  for (const entry of map.entries) if (entry.plainKey && entry.key === key) return entry;
  return undefined;
}

/** The value under `key` in a mapping (the first one, when a key is repeated). */
export function mapValue(map: MapNode, key: string): SpecNode | undefined {
  return mapEntry(map, key)?.value;
}
