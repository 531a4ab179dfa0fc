import { substituteExpressions } from './expressions';
import type { EarlyStop, JobSpec, ParamValue, ResourceRequest, SlurmSettings, SpecModel, SweepDomain, SweepSpec } from './model';
import { closestMatch, didYouMean } from './suggest';

/** Sweeps larger than this are refused; above `SWEEP_WARNING_SIZE` they are questioned. */
export const SWEEP_SIZE_LIMIT = 10_000;
export const SWEEP_WARNING_SIZE = 1_000;

/** One concrete run a spec asks for: everything resolved but the outputs of upstream jobs. */
export interface RunPlan {
  /** Unique within the spec: the job's name, or `job[i]` for the i-th point of its sweep. */
  key: string;
  job: string;
  sweepIndex?: number;
  /** Every parameter value of this run (the job's params with its sweep point applied). */
  params: Record<string, ParamValue>;
  command?: string;
  notebook?: string;
  setup?: string;
  workdir: string;
  env: Record<string, string>;
  resources: ResourceRequest;
  hosts?: string[];
  retries: number;
  timeoutSeconds?: number;
  priority: number;
  /** The sweep's `max_parallel`, shared by all runs of the same job. */
  maxParallel?: number;
  /** The sweep's `early_stop`, judged across the runs of the same job. */
  earlyStop?: EarlyStop;
  /** Keys of the runs that must succeed before this one starts. */
  needs: string[];
  /** The job's `slurm:` settings, for when it runs on a SLURM cluster. */
  slurm?: SlurmSettings;
}

export interface ExpandOptions {
  /** `-p name=value`: fixes a parameter (a swept one too) for every job that has it. */
  overrides?: Record<string, ParamValue>;
  /** Replaces the seed of random sweeps. */
  seed?: number;
}

export class ExpansionError extends Error {}

/** How many values a list or range holds, without listing them; NaN for an interval. */
export function domainSize(domain: SweepDomain): number {
  if (domain.kind === 'values') return domain.values.length;
  if (domain.kind !== 'range') return NaN;
  const { start, stop, step } = domain;
  if (!(step > 0) || stop <= start) return 0;
  return Math.ceil((stop - start) / step - 1e-9);
}

/** The i-th value of a list or range. */
function domainValue(domain: SweepDomain, index: number): ParamValue {
  return domain.kind === 'values' ? domain.values[index]! : roundValue((domain as { start: number }).start + index * (domain as { step: number }).step);
}

/**
 * The values a list or range stands for; undefined for intervals, which only random sweeps draw
 * from. Only for domains whose size has been checked: a range may stand for billions.
 */
export function domainValues(domain: SweepDomain): ParamValue[] | undefined {
  const size = domainSize(domain);
  if (Number.isNaN(size)) return undefined;
  return Array.from({ length: size }, (_, i) => domainValue(domain, i));
}

/** How many runs a sweep expands to (NaN when a grid holds an interval, which has no count). */
export function sweepSize(sweep: SweepSpec): number {
  if (sweep.method === 'random') return sweep.samples ?? 0;
  let size = 1;
  for (const parameter of sweep.parameters) size *= domainSize(parameter.domain);
  return size;
}

/** All parameter names a spec's jobs know: their params and their sweeps'. */
export function parameterNames(spec: SpecModel): Set<string> {
  const names = new Set<string>(Object.keys(spec.params));
  for (const job of spec.jobs) {
    for (const name of Object.keys(job.params)) names.add(name);
    for (const parameter of job.sweep?.parameters ?? []) names.add(parameter.name);
  }
  return names;
}

/** A spec (+ overrides) → its concrete runs, in job order; the same input always gives the same runs. */
export function expandSpec(spec: SpecModel, options: ExpandOptions = {}): RunPlan[] {
  const overrides = options.overrides ?? {};
  const overridden = Object.keys(overrides);
  // Every job's parameter names, gathered only to check overrides against.
  const known = overridden.length > 0 ? parameterNames(spec) : new Set<string>();
  for (const name of overridden) {
    if (!known.has(name)) {
      const listed = known.size ? ` (it has ${[...known].sort().join(', ')})` : ' (it has none)';
      throw new ExpansionError(`'${spec.name}' has no parameter '${name}'${didYouMean(closestMatch(name, known))}${listed}`);
    }
  }
  const runKeys = new Map<string, string[]>();
  const plans: RunPlan[] = [];
  const jobOfPlan: JobSpec[] = [];
  for (const job of spec.jobs) {
    const points = sweepPoints(job, overrides, options.seed);
    const ownParams = { ...job.params, ...overridesOf(job, overrides) };
    const keys: string[] = [];
    for (let index = 0; index < points.length; index++) {
      const key = job.sweep ? `${job.id}[${index}]` : job.id;
      keys.push(key);
      plans.push(planRun(job, key, job.sweep ? index : undefined, job.sweep ? { ...ownParams, ...points[index] } : ownParams));
      jobOfPlan.push(job);
    }
    runKeys.set(job.id, keys);
  }
  // Edges last: a job may need one written after it.
  for (let index = 0; index < plans.length; index++) {
    const { needs } = plans[index]!;
    for (const need of jobOfPlan[index]!.needs) {
      const keys = runKeys.get(need.value);
      if (keys) for (const key of keys) needs.push(key);
    }
  }
  return plans;
}

/** The overrides that name one of the job's own params (swept ones are applied to the sweep). */
function overridesOf(job: JobSpec, overrides: Record<string, ParamValue>): Record<string, ParamValue> | undefined {
  let own: Record<string, ParamValue> | undefined;
  for (const name in overrides) if (name in job.params) (own ??= {})[name] = overrides[name]!;
  return own;
}

function planRun(job: JobSpec, key: string, sweepIndex: number | undefined, params: Record<string, ParamValue>): RunPlan {
  const substitute = (template: string, quote: boolean): string =>
    !template.includes('${{')
      ? template
      : substituteExpressions(template, (path) => {
          if (path.length !== 2 || path[0] !== 'params' || !(path[1]! in params)) return undefined;
          const value = formatParam(params[path[1]!]!);
          return quote ? shellWord(value) : value;
        });
  const env: Record<string, string> = {};
  for (const name in job.env) env[name] = substitute(formatParam(job.env[name]!), false);
  const plan: RunPlan = {
    key,
    job: job.id,
    params,
    workdir: substitute(job.workdir, false),
    env,
    resources: job.resources,
    retries: job.retries,
    priority: job.priority,
    needs: [],
  };
  if (sweepIndex !== undefined) plan.sweepIndex = sweepIndex;
  if (job.run) plan.command = substitute(job.run.value, true);
  if (job.notebook) plan.notebook = substitute(job.notebook.value, false);
  if (job.setup !== undefined) plan.setup = substitute(job.setup, true);
  if (job.hosts) plan.hosts = job.hosts.map((host) => host.value);
  if (job.timeoutSeconds !== undefined) plan.timeoutSeconds = job.timeoutSeconds;
  if (job.sweep?.maxParallel !== undefined) plan.maxParallel = job.sweep.maxParallel;
  if (job.slurm !== undefined) plan.slurm = job.slurm;
  if (job.sweep?.earlyStop !== undefined) plan.earlyStop = job.sweep.earlyStop;
  return plan;
}

/** The sweep points of a job: one empty point for a job without a sweep. */
function sweepPoints(job: JobSpec, overrides: Record<string, ParamValue>, seedOverride: number | undefined): Record<string, ParamValue>[] {
  const sweep = job.sweep;
  if (!sweep) return [{}];
  const dimensions = sweep.parameters.map((parameter) => ({
    name: parameter.name,
    domain: parameter.name in overrides ? ({ kind: 'values', values: [overrides[parameter.name]!] } as SweepDomain) : parameter.domain,
  }));
  if (sweep.method === 'random') {
    const random = seededRandom(seedOverride ?? sweep.seed);
    return Array.from({ length: sweep.samples ?? 0 }, () =>
      Object.fromEntries(dimensions.map(({ name, domain }) => [name, draw(domain, random)])),
    );
  }
  let points: Record<string, ParamValue>[] = [{}];
  for (const { name, domain } of dimensions) {
    const values = domainValues(domain);
    if (!values) throw new ExpansionError(`sweep parameter '${name}' of job '${job.id}' is an interval; a grid needs a list or a range`);
    points = points.flatMap((point) => values.map((value) => ({ ...point, [name]: value })));
  }
  return points;
}

function draw(domain: SweepDomain, random: () => number): ParamValue {
  if (domain.kind === 'uniform') return roundValue(domain.low + random() * (domain.high - domain.low));
  if (domain.kind === 'loguniform') {
    const [low, high] = [Math.log(domain.low), Math.log(domain.high)];
    return roundValue(Math.exp(low + random() * (high - low)));
  }
  return domainValue(domain, Math.floor(random() * domainSize(domain)));
}

/** mulberry32: a small, well-distributed PRNG whose whole state is the seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Keeps drawn and stepped numbers readable (0.30000000000000004 → 0.3). */
function roundValue(value: number): number {
  return Number(value.toPrecision(6));
}

export function formatParam(value: ParamValue): string {
  return String(value);
}

/** A parameter value as one shell word: plain tokens as they are, anything else single-quoted. */
export function shellWord(value: string): string {
  if (/^[\w.,:/@%+=-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
