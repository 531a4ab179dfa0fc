import { dump } from 'js-yaml';
import {
  alternativesOf,
  conditionalBranch,
  jsonTypeOf,
  propertySchema,
  resolveSchema,
  specSchema,
  typeAccepts,
  typesOf,
  type JsonSchema,
  type JsonType,
  type SpecNode,
} from '../../../common/spec';
import type { PathStep, SpecDocument } from './spec-document';

/** One step down a spec: a mapping key, or a list index (-1: some item of the list). */
export type PathSegment = string | number;

/**
 * The schema that governs the node at the end of `steps` (as `SpecDocument.pathAt` gives them):
 * `$ref`s followed, the root's `then`/`else` chosen by whether it has `jobs`, and of a `oneOf` the
 * alternative that fits the node's kind (as the validator chooses it), with the field's own
 * description and examples kept. Undefined where the schema allows nothing (an unknown key).
 */
export function schemaAt(document: SpecDocument, steps: readonly PathStep[]): JsonSchema | undefined {
  if (steps.length === 0) return schemaForPath(document.analysis.source.root, []);
  return walkSchema(pathSegments(steps), steps.map((step) => step.node));
}

/** The keys and list indexes from the root to the last of `steps` (one fewer than the steps). */
export function pathSegments(steps: readonly PathStep[]): PathSegment[] {
  const segments: PathSegment[] = [];
  for (let i = 1; i < steps.length; i++) {
    const step = steps[i]!;
    const parent = steps[i - 1]!.node;
    segments.push(step.entry ? step.entry.key : parent.kind === 'seq' ? parent.items.indexOf(step.node) : -1);
  }
  return segments;
}

/**
 * The schema that governs the value at `path` below `root`, looking the nodes up by key (the first
 * of repeated keys). The path may go on past the tree (a key still being typed); the schema is
 * then followed without nodes. `root` may be null (an empty document).
 */
export function schemaForPath(root: SpecNode | null | undefined, path: readonly PathSegment[]): JsonSchema | undefined {
  return walkSchema(path, nodesAlong(root, path));
}

/** The nodes along `path` from `root` (index 0); undefined from where the tree has none. */
export function nodesAlong(root: SpecNode | null | undefined, path: readonly PathSegment[]): (SpecNode | undefined)[] {
  const nodes: (SpecNode | undefined)[] = [root ?? undefined];
  let node: SpecNode | undefined = root ?? undefined;
  for (const segment of path) {
    node = childOf(node, segment);
    nodes.push(node);
  }
  return nodes;
}

/** The node at `path` below `root`, if the tree has one there. */
export function nodeAtPath(root: SpecNode | null | undefined, path: readonly PathSegment[]): SpecNode | undefined {
  return nodesAlong(root, path)[path.length];
}

function childOf(node: SpecNode | undefined, segment: PathSegment): SpecNode | undefined {
  if (!node) return undefined;
  if (typeof segment === 'string') {
    if (node.kind !== 'map') return undefined;
    return node.entries.find((entry) => entry.plainKey && entry.key === segment)?.value;
  }
  return node.kind === 'seq' && segment >= 0 ? node.items[segment] : undefined;
}

function walkSchema(path: readonly PathSegment[], nodes: readonly (SpecNode | undefined)[]): JsonSchema | undefined {
  let schema: JsonSchema | undefined = narrowSchema(specSchema, nodes[0], path[0]);
  for (let i = 0; i < path.length && schema; i++) {
    const segment = path[i]!;
    const container = fallbackAlternative(schema, segment);
    const child = typeof segment === 'string' ? propertySchema(container, segment) : container.items;
    schema = child ? narrowSchema(child, nodes[i + 1], path[i + 1]) : undefined;
  }
  return schema;
}

/**
 * A schema made concrete for a node: `$ref` followed, an `if`/`then`/`else` decided by the
 * node's keys (and `nextKey`, the key the path goes on with, which may not be written yet), and
 * a `oneOf` narrowed to the alternative that fits the node. Without a node, or where no single
 * alternative fits, the `oneOf` is kept.
 */
export function narrowSchema(raw: JsonSchema, node: SpecNode | undefined, nextKey?: PathSegment): JsonSchema {
  let schema = resolveSchema(raw);
  if (schema.if) {
    const keys = new Set<string>(node?.kind === 'map' ? node.entries.map((entry) => entry.key) : []);
    if (typeof nextKey === 'string') keys.add(nextKey);
    const branch = conditionalBranch(schema, keys);
    if (branch) schema = resolveSchema(branch);
  }
  if (schema.oneOf && node) {
    const chosen = chooseAlternative(schema, node);
    if (chosen) schema = withDocumentation(chosen, schema);
  }
  return schema;
}

/** The alternative of a `oneOf` that fits a node's kind, picked the way the validator picks it. */
export function chooseAlternative(schema: JsonSchema, node: SpecNode): JsonSchema | undefined {
  const actual = nodeType(node);
  const fitting = alternativesOf(schema).filter((alternative) => typesOf(alternative).some((type) => typeAccepts(type, actual)));
  if (fitting.length <= 1 || node.kind !== 'map') return fitting[0];
  const keys = new Set(node.entries.map((entry) => entry.key));
  return fitting.find((alternative) => (alternative.required ?? []).length > 0 && alternative.required!.every((key) => keys.has(key)));
}

/** Where a `oneOf` is still open, the alternative that can hold `segment` (a key or a list item). */
function fallbackAlternative(schema: JsonSchema, segment: PathSegment): JsonSchema {
  if (!schema.oneOf) return schema;
  const holds = (alternative: JsonSchema) => (typeof segment === 'string' ? propertySchema(alternative, segment) !== undefined : alternative.items !== undefined);
  return alternativesOf(schema).find(holds) ?? schema;
}

/** An alternative with the field's own description, examples and default (more specific than the alternative's). */
function withDocumentation(alternative: JsonSchema, field: JsonSchema): JsonSchema {
  const merged: JsonSchema = { ...alternative };
  if (field.description !== undefined) merged.description = field.description;
  if (field.examples !== undefined) merged.examples = field.examples;
  if (field.default !== undefined) merged.default = field.default;
  return merged;
}

function nodeType(node: SpecNode): JsonType {
  if (node.kind === 'map') return 'object';
  if (node.kind === 'seq') return 'array';
  return jsonTypeOf(node.value);
}

/** The keys an object schema names, with their schemas; for an open `oneOf`, those of every object alternative. */
export function knownProperties(schema: JsonSchema): Map<string, JsonSchema> {
  const properties = new Map<string, JsonSchema>();
  const add = (from: JsonSchema) => {
    for (const [key, value] of Object.entries(from.properties ?? {})) if (!properties.has(key)) properties.set(key, value);
  };
  add(schema);
  if (schema.oneOf) for (const alternative of alternativesOf(schema)) add(alternative);
  return properties;
}

/** Whether a value of this schema is written as a mapping (and only as one). */
export function isObjectSchema(schema: JsonSchema): boolean {
  const resolved = resolveSchema(schema);
  const types = resolved.oneOf ? alternativesOf(resolved).flatMap(typesOf) : typesOf(resolved);
  return types.length > 0 && types.every((type) => type === 'object');
}

/** Whether a value of this schema is written as a list (and only as one). */
export function isArraySchema(schema: JsonSchema): boolean {
  const resolved = resolveSchema(schema);
  const types = resolved.oneOf ? alternativesOf(resolved).flatMap(typesOf) : typesOf(resolved);
  return types.length > 0 && types.every((type) => type === 'array');
}

/** An enum's values with their descriptions (`x-drover-enum-descriptions`), alternatives included. */
export function enumValues(schema: JsonSchema): { value: unknown; description?: string }[] {
  const resolved = resolveSchema(schema);
  const sources = resolved.oneOf ? alternativesOf(resolved) : [resolved];
  const values: { value: unknown; description?: string }[] = [];
  for (const source of sources) {
    const descriptions = source['x-drover-enum-descriptions'] ?? [];
    (source.enum ?? []).forEach((value, index) => {
      const description = descriptions[index];
      values.push(description === undefined ? { value } : { value, description });
    });
  }
  return values;
}

/**
 * Markdown for a schema: its description, its default, its examples as YAML (under `key`, when
 * given) and, for an enum, each value with what it means.
 */
export function describeSchema(schema: JsonSchema, key?: string): string {
  // The schema is fixed, so each text is written once: completion lists a dozen keys per request.
  let byKey = descriptions.get(schema);
  if (!byKey) descriptions.set(schema, (byKey = new Map()));
  let text = byKey.get(key);
  if (text === undefined) byKey.set(key, (text = writeDescription(schema, key)));
  return text;
}

/**
 * Writes describeSchema's text for every key the schema names, as completion lists them: done
 * once when the server starts, so that the first completion does not write a dozen (each
 * example through js-yaml) while the user waits.
 */
export function describeSchemaKeys(): void {
  const visited = new Set<JsonSchema>();
  const visit = (raw: JsonSchema | undefined): void => {
    if (!raw) return;
    const schema = resolveSchema(raw);
    if (visited.has(schema)) return;
    visited.add(schema);
    for (const [key, value] of Object.entries(schema.properties ?? {})) {
      describeSchema(resolveSchema(value), key);
      visit(value);
    }
    if (typeof schema.additionalProperties === 'object') visit(schema.additionalProperties);
    visit(schema.items);
    visit(schema.then);
    visit(schema.else);
    for (const alternative of alternativesOf(schema)) visit(alternative);
  };
  visit(specSchema);
}

/** describeSchema's texts, by schema object and key (a schema merged for one request is simply dropped with it). */
const descriptions = new WeakMap<JsonSchema, Map<string | undefined, string>>();

function writeDescription(schema: JsonSchema, key: string | undefined): string {
  const resolved = resolveSchema(schema);
  const parts: string[] = [];
  if (resolved.description) parts.push(resolved.description);
  const values = enumValues(resolved);
  if (values.length > 0) {
    parts.push(values.map(({ value, description }) => `- \`${String(value)}\`${description ? `: ${description}` : ''}`).join('\n'));
  }
  if (resolved.default !== undefined) parts.push(`Default: \`${inlineYaml(resolved.default)}\``);
  const examples = resolved.examples ?? [];
  if (examples.length > 0) {
    const blocks = examples.map((example) => yamlBlock(key === undefined ? example : { [key]: example }));
    parts.push(`${examples.length === 1 ? 'Example' : 'Examples'}:\n\n${blocks.join('\n\n')}`);
  }
  return parts.join('\n\n');
}

/** A value as a fenced YAML block. */
export function yamlBlock(value: unknown): string {
  return `\`\`\`yaml\n${toYaml(value)}\n\`\`\``;
}

/** A value as YAML on one line, e.g. `[0.001, 0.0003]`, `{ gpus: 1 }` or `grid`. */
export function inlineYaml(value: unknown): string {
  return flowYaml(value) ?? JSON.stringify(value) ?? String(value);
}

/** Collections whose one-line form is at most this long are written on one line, as specs usually are. */
const FLOW_WIDTH = 60;

/** YAML as people write specs: block mappings, short collections on one line. */
export function toYaml(value: unknown): string {
  return blockLines(value).join('\n');
}

function blockLines(value: unknown): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return ['[]'];
    return value.flatMap((item) => {
      const [first = '', ...rest] = nested(item);
      return [`- ${first}`, ...rest.map((line) => `  ${line}`)];
    });
  }
  if (isRecord(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) return ['{}'];
    return entries.flatMap(([key, item]) => {
      const lines = nested(item);
      return lines.length === 1 ? [`${scalarYaml(key, false)}: ${lines[0]}`] : [`${scalarYaml(key, false)}:`, ...lines.map((line) => `  ${line}`)];
    });
  }
  return [scalarYaml(value, false)];
}

/** A value under a key or dash: one line when short enough, else its block lines. */
function nested(value: unknown): string[] {
  const flow = flowYaml(value);
  return flow !== undefined && flow.length <= FLOW_WIDTH ? [flow] : blockLines(value);
}

function flowYaml(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    const items = value.map(flowYaml);
    return items.every((item) => item !== undefined) ? `[${items.join(', ')}]` : undefined;
  }
  if (isRecord(value)) {
    const entries = Object.entries(value).map(([key, item]) => {
      const flow = flowYaml(item);
      return flow === undefined ? undefined : `${scalarYaml(key, true)}: ${flow}`;
    });
    if (entries.length === 0) return '{}';
    return entries.every((entry) => entry !== undefined) ? `{ ${entries.join(', ')} }` : undefined;
  }
  const scalar = scalarYaml(value, true);
  return scalar.includes('\n') ? undefined : scalar;
}

/** A scalar as js-yaml writes it, quoted where a flow collection would misread it. */
function scalarYaml(value: unknown, inFlow: boolean): string {
  if (typeof value === 'string') {
    const plain = dump(value, { lineWidth: -1 }).trimEnd();
    if (plain.includes('\n')) return JSON.stringify(value);
    if (inFlow && plain === value && /[,[\]{}]|: |#/.test(value)) return JSON.stringify(value);
    return plain;
  }
  if (value === null || value === undefined) return 'null';
  return String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
