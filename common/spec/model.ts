import { findExpressions, type Expression } from './expressions';
import type { SourceRange } from './text';
import { parseDuration, parseGpuRequest, parseSize, type GpuRequest, type Parsed } from './units';
import { isMapNode, isSeqNode, mapValue, plainValue, type MapEntry, type MapNode, type SpecNode } from './yaml-source';

export type ParamValue = string | number | boolean;

/** A value together with where it was written. */
export interface Located<T> {
  value: T;
  range: SourceRange;
}

export interface ResourceRequest {
  gpus: GpuRequest;
  cpus?: number;
  memoryBytes?: number;
}

export type SweepDomain =
  | { kind: 'values'; values: ParamValue[] }
  | { kind: 'range'; start: number; stop: number; step: number }
  | { kind: 'uniform' | 'loguniform'; low: number; high: number };

export interface SweepParameter {
  name: string;
  range: SourceRange;
  domain: SweepDomain;
}

/** `sweep.early_stop`: the rule that stops runs of a sweep that cannot win. */
export interface EarlyStop {
  metric: string;
  mode: 'min' | 'max';
  rule: 'median' | 'asha';
  /** No run is stopped before this step; for ASHA, the first rung. */
  graceSteps: number;
  /** Median rule: other runs that must have reached a step before a run is judged there. */
  minRuns: number;
  /** ASHA: rungs are this factor apart, and the best 1/factor of a rung go on. */
  reductionFactor: number;
}

export interface SweepSpec {
  method: 'grid' | 'random';
  maxParallel?: number;
  earlyStop?: EarlyStop;
  samples?: number;
  seed: number;
  parameters: SweepParameter[];
  /** The `sweep` key. */
  range: SourceRange;
}

export interface SlurmSettings {
  partition?: string;
  qos?: string;
  account?: string;
}

/** One job as written (a workflow's settings already merged in). */
export interface JobSpec {
  /** The job's name: its key in a workflow, the spec's name for a single job. */
  id: string;
  /** The name's key in a workflow's `jobs`, or the spec's `name` value; where to point at the job. */
  idRange: SourceRange;
  /** The whole job mapping. */
  range: SourceRange;
  displayName?: string;
  description?: string;
  run?: Located<string>;
  notebook?: Located<string>;
  setup?: string;
  workdir: string;
  params: Record<string, ParamValue>;
  env: Record<string, ParamValue>;
  resources: ResourceRequest;
  hosts?: Located<string>[];
  retries: number;
  timeoutSeconds?: number;
  priority: number;
  schedule?: Located<string>;
  /** `catch_up`: what a schedule does about times missed while the daemon was down. */
  catchUp?: Located<string>;
  needs: Located<string>[];
  outputs: Record<string, string>;
  sweep?: SweepSpec;
  slurm?: SlurmSettings;
  /** Every `${{ }}` in the job's strings. */
  expressions: Expression[];
}

export interface SpecModel {
  kind: 'job' | 'workflow';
  name: string;
  description?: string;
  schedule?: Located<string>;
  /** Missed scheduled times: one run for them once the daemon is back (default), or none. */
  catchUp?: 'once' | 'none';
  params: Record<string, ParamValue>;
  jobs: JobSpec[];
}

/** Hands back a workflow job already read from the same entry, or reads it (`read`). */
export interface JobMemo {
  job(entry: MapEntry, read: () => JobSpec): JobSpec;
}

/**
 * Reads the model from a YAML tree, taking what is well-formed and skipping the rest, so a
 * half-typed spec still yields a model (the validator reports what was skipped).
 */
export function buildModel(root: SpecNode | null, text: string, defaultName: string, memo?: JobMemo): SpecModel | undefined {
  if (!isMapNode(root)) return undefined;
  const name = stringAt(root, 'name') ?? defaultName;
  const jobsNode = mapValue(root, 'jobs');
  const spec: SpecModel = { kind: jobsNode !== undefined ? 'workflow' : 'job', name, params: recordAt(root, 'params'), jobs: [] };
  const description = stringAt(root, 'description');
  if (description !== undefined) spec.description = description;
  const schedule = locatedString(root, 'schedule');
  const catchUp = stringAt(root, 'catch_up');
  if (catchUp === 'once' || catchUp === 'none') spec.catchUp = catchUp;
  if (spec.kind === 'job') {
    const idRange = mapValue(root, 'name')?.range ?? root.entries[0]?.keyRange ?? root.range;
    spec.jobs.push(readJob(root, name, idRange, text, {}));
    if (schedule) spec.schedule = schedule;
    return spec;
  }
  if (schedule) spec.schedule = schedule;
  const inherited: Inherited = { params: spec.params, env: recordAt(root, 'env'), workdir: stringAt(root, 'workdir') };
  if (isMapNode(jobsNode)) {
    const seen = new Set<string>();
    for (const entry of jobsNode.entries) {
      const { key, keyRange, plainKey, value } = entry;
      if (!plainKey || seen.has(key)) continue;
      seen.add(key);
      const read = (): JobSpec => readJob(isMapNode(value) ? value : undefined, key, keyRange, text, inherited);
      spec.jobs.push(memo ? memo.job(entry, read) : read());
    }
  }
  return spec;
}

interface Inherited {
  params?: Record<string, ParamValue>;
  env?: Record<string, ParamValue>;
  workdir?: string | undefined;
}

function readJob(map: MapNode | undefined, id: string, idRange: SourceRange, text: string, inherited: Inherited): JobSpec {
  // A job reads some twenty keys of its mapping: found in one pass rather than a search each.
  const fields = map ? fieldsOf(map) : new Map<string, MapEntry>();
  const field = (key: string): SpecNode | undefined => fields.get(key)?.value;
  const job: JobSpec = {
    id,
    idRange,
    range: map ? map.range : idRange,
    workdir: stringOf(field('workdir')) ?? inherited.workdir ?? '.',
    params: recordOf(field('params'), inherited.params),
    env: recordOf(field('env'), inherited.env),
    resources: { gpus: { count: 0 } },
    retries: 0,
    priority: 0,
    needs: [],
    outputs: {},
    expressions: [],
  };
  if (!map) return job;
  const name = stringOf(field('name'));
  if (name !== id) assignIfDefined(job, 'displayName', name);
  assignIfDefined(job, 'description', stringOf(field('description')));
  assignIfDefined(job, 'run', locatedStringOf(field('run')));
  assignIfDefined(job, 'notebook', locatedStringOf(field('notebook')));
  assignIfDefined(job, 'setup', stringOf(field('setup')));
  assignIfDefined(job, 'schedule', locatedStringOf(field('schedule')));
  assignIfDefined(job, 'catchUp', locatedStringOf(field('catch_up')));
  job.resources = readResources(field('resources'));
  const placement = field('placement');
  if (isMapNode(placement)) assignIfDefined(job, 'hosts', locatedStrings(mapValue(placement, 'hosts')));
  job.retries = integerOf(field('retries')) ?? 0;
  job.priority = integerOf(field('priority')) ?? 0;
  assignIfDefined(job, 'timeoutSeconds', parsedValue(parseDuration, field('timeout')));
  job.needs = locatedStrings(field('needs')) ?? [];
  const outputs = field('outputs');
  if (isMapNode(outputs)) for (const { key, value } of outputs.entries) job.outputs[key] = String(plainValue(value) ?? '');
  assignIfDefined(job, 'sweep', readSweep(fields.get('sweep')));
  const slurm = field('slurm');
  if (isMapNode(slurm)) {
    job.slurm = {};
    for (const key of ['partition', 'qos', 'account'] as const) assignIfDefined(job.slurm, key, stringAt(slurm, key));
  }
  job.expressions = collectExpressions(map, text);
  return job;
}

/** A mapping's entries by key (the first of repeated keys, as `mapEntry` finds them). */
function fieldsOf(map: MapNode): Map<string, MapEntry> {
  const fields = new Map<string, MapEntry>();
  for (const entry of map.entries) if (entry.plainKey && !fields.has(entry.key)) fields.set(entry.key, entry);
  return fields;
}

function readResources(node: SpecNode | undefined): ResourceRequest {
  const resources: ResourceRequest = { gpus: { count: 0 } };
  if (!isMapNode(node)) return resources;
  const gpus = mapValue(node, 'gpus');
  if (gpus !== undefined) resources.gpus = parsedValue(parseGpuRequest, gpus) ?? { count: 0 };
  const cpus = plainValue(mapValue(node, 'cpus'));
  if (typeof cpus === 'number' && cpus > 0) resources.cpus = cpus;
  assignIfDefined(resources, 'memoryBytes', parsedValue(parseSize, mapValue(node, 'memory')));
  return resources;
}

function readSweep(entry: MapEntry | undefined): SweepSpec | undefined {
  const node = entry?.value;
  if (!isMapNode(node)) return undefined;
  const method = plainValue(mapValue(node, 'method'));
  const sweep: SweepSpec = {
    method: method === 'random' ? 'random' : 'grid',
    seed: integerAt(node, 'seed') ?? 0,
    parameters: [],
    range: entry!.keyRange,
  };
  assignIfDefined(sweep, 'maxParallel', positiveIntegerAt(node, 'max_parallel'));
  assignIfDefined(sweep, 'samples', positiveIntegerAt(node, 'samples'));
  assignIfDefined(sweep, 'earlyStop', readEarlyStop(mapValue(node, 'early_stop')));
  const parameters = mapValue(node, 'parameters');
  if (!isMapNode(parameters)) return sweep;
  for (const { key, keyRange, value } of parameters.entries) {
    const domain = readDomain(value);
    if (domain) sweep.parameters.push({ name: key, range: keyRange, domain });
  }
  return sweep;
}

function readEarlyStop(node: SpecNode | undefined): EarlyStop | undefined {
  if (!isMapNode(node)) return undefined;
  const metric = stringAt(node, 'metric');
  if (metric === undefined) return undefined;
  return {
    metric,
    mode: stringAt(node, 'mode') === 'max' ? 'max' : 'min',
    rule: stringAt(node, 'rule') === 'asha' ? 'asha' : 'median',
    graceSteps: Math.max(0, integerAt(node, 'grace_steps') ?? 1),
    minRuns: positiveIntegerAt(node, 'min_runs') ?? 3,
    reductionFactor: Math.max(2, integerAt(node, 'reduction_factor') ?? 3),
  };
}

function readDomain(node: SpecNode): SweepDomain | undefined {
  if (isSeqNode(node)) {
    const values = (plainValue(node) as unknown[]).filter(isParamValue);
    return { kind: 'values', values };
  }
  if (!isMapNode(node)) return undefined;
  const bounds = (key: string): number[] | undefined => {
    const value = plainValue(mapValue(node, key));
    return Array.isArray(value) && value.every((item) => typeof item === 'number') ? (value as number[]) : undefined;
  };
  const range = bounds('range');
  if (range && range.length >= 2) return { kind: 'range', start: range[0]!, stop: range[1]!, step: range[2] ?? 1 };
  for (const kind of ['uniform', 'loguniform'] as const) {
    const interval = bounds(kind);
    if (interval && interval.length === 2) return { kind, low: interval[0]!, high: interval[1]! };
  }
  return undefined;
}

/** Scans the source of every string value in a job (keys excluded) for `${{ }}`. */
function collectExpressions(job: MapNode, text: string): Expression[] {
  const found: Expression[] = [];
  const visit = (node: SpecNode): void => {
    if (node.kind === 'map') for (const entry of node.entries) visit(entry.value);
    else if (node.kind === 'seq') for (const item of node.items) visit(item);
    else if (typeof node.value === 'string' && node.value.includes('${{')) {
      // Scan the source rather than the value so ranges stay exact for quoted and block scalars.
      found.push(...findExpressions(text, node.range.start, node.range.end));
    }
  };
  for (const { key, value } of job.entries) if (key !== 'sweep' && key !== 'outputs') visit(value);
  return found;
}

function isParamValue(value: unknown): value is ParamValue {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

function stringAt(map: MapNode, key: string): string | undefined {
  return stringOf(mapValue(map, key));
}

function stringOf(node: SpecNode | undefined): string | undefined {
  return node?.kind === 'scalar' && typeof node.value === 'string' ? node.value : undefined;
}

function locatedString(map: MapNode, key: string): Located<string> | undefined {
  return locatedStringOf(mapValue(map, key));
}

function locatedStringOf(node: SpecNode | undefined): Located<string> | undefined {
  return node?.kind === 'scalar' && typeof node.value === 'string' ? { value: node.value, range: node.range } : undefined;
}

function locatedStrings(node: SpecNode | undefined): Located<string>[] | undefined {
  if (!isSeqNode(node)) return undefined;
  const items: Located<string>[] = [];
  for (const item of node.items) if (item.kind === 'scalar' && typeof item.value === 'string') items.push({ value: item.value, range: item.range });
  return items;
}

function integerAt(map: MapNode, key: string): number | undefined {
  return integerOf(mapValue(map, key));
}

function integerOf(node: SpecNode | undefined): number | undefined {
  const value = node?.kind === 'scalar' ? node.value : undefined;
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

function positiveIntegerAt(map: MapNode, key: string): number | undefined {
  const value = integerAt(map, key);
  return value !== undefined && value >= 1 ? value : undefined;
}

/** A mapping of plain values (params, env), over `defaults` inherited from a workflow. */
function recordAt(map: MapNode, key: string, defaults?: Record<string, ParamValue>): Record<string, ParamValue> {
  return recordOf(mapValue(map, key), defaults);
}

function recordOf(node: SpecNode | undefined, defaults?: Record<string, ParamValue>): Record<string, ParamValue> {
  const record: Record<string, ParamValue> = { ...defaults };
  if (!isMapNode(node)) return record;
  // Backwards, so that of repeated keys the first one written wins, as everywhere else.
  for (let i = node.entries.length - 1; i >= 0; i--) {
    const entry = node.entries[i]!;
    const value = plainValue(entry.value);
    if (entry.plainKey && isParamValue(value)) record[entry.key] = value;
  }
  return record;
}

function parsedValue<T>(parse: (input: unknown) => Parsed<T>, node: SpecNode | undefined): T | undefined {
  if (node === undefined) return undefined;
  const result = parse(plainValue(node));
  return result.ok ? result.value : undefined;
}

/** Sets an optional property only when there is a value (the model never holds explicit undefineds). */
function assignIfDefined<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}
