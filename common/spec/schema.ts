import schemaJson from './drover.schema.json';

/** The subset of JSON Schema (draft-07) that Drover's schema uses, plus its `x-drover-*` keywords. */
export interface JsonSchema {
  $ref?: string;
  type?: JsonType | JsonType[];
  description?: string;
  examples?: unknown[];
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  required?: string[];
  minProperties?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  pattern?: string;
  oneOf?: JsonSchema[];
  if?: JsonSchema;
  then?: JsonSchema;
  else?: JsonSchema;
  errorMessage?: string;
  'x-drover-format'?: DroverFormat;
  'x-drover-enum-descriptions'?: string[];
}

export type JsonType = 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';
export type DroverFormat = 'size' | 'duration' | 'gpu-request' | 'cron';

/** The published schema (the same file `package.json` contributes to YAML tools). */
export const specSchema: JsonSchema = schemaJson as JsonSchema;

const resolved = new WeakMap<JsonSchema, JsonSchema>();

/**
 * Follows `$ref`s, keeping the referring schema's own description and examples, which are
 * more specific than the definition's. Memoized: the validator asks for every node.
 */
export function resolveSchema(schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema;
  let result = resolved.get(schema);
  if (result) return result;
  const name = schema.$ref.replace(/^#\/definitions\//, '');
  const target = (specSchema as { definitions: Record<string, JsonSchema> }).definitions[name];
  if (!target) throw new Error(`schema: unknown $ref ${schema.$ref}`);
  const { $ref: _ref, ...own } = schema;
  result = resolveSchema({ ...target, ...own });
  resolved.set(schema, result);
  return result;
}

/** Picks the branch of an `if: {required}`/`then`/`else` schema that applies to a map with these keys. */
export function conditionalBranch(schema: JsonSchema, keys: ReadonlySet<string>): JsonSchema | undefined {
  if (!schema.if) return undefined;
  const holds = (schema.if.required ?? []).every((key) => keys.has(key));
  return holds ? schema.then : schema.else;
}

/** The schema that governs the value under `key` of an object described by `schema`. */
export function propertySchema(schema: JsonSchema, key: string): JsonSchema | undefined {
  const own = schema.properties?.[key];
  if (own) return own;
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

const types = new WeakMap<JsonSchema, JsonType[]>();

/** The JSON types a schema admits (none listed: any). */
export function typesOf(schema: JsonSchema): JsonType[] {
  let result = types.get(schema);
  if (!result) {
    if (schema.type) result = Array.isArray(schema.type) ? schema.type : [schema.type];
    else if (schema.enum) result = [...new Set(schema.enum.map(jsonTypeOf))];
    else result = [];
    types.set(schema, result);
  }
  return result;
}

const alternatives = new WeakMap<JsonSchema, JsonSchema[]>();

/** A `oneOf` schema's alternatives, resolved. */
export function alternativesOf(schema: JsonSchema): JsonSchema[] {
  let result = alternatives.get(schema);
  if (!result) alternatives.set(schema, (result = (schema.oneOf ?? []).map(resolveSchema)));
  return result;
}

export function jsonTypeOf(value: unknown): JsonType {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as JsonType;
}

/** Whether a value of JSON type `actual` satisfies a schema type `wanted` (an integer is a number). */
export function typeAccepts(wanted: JsonType, actual: JsonType): boolean {
  return wanted === actual || (wanted === 'number' && actual === 'integer');
}
