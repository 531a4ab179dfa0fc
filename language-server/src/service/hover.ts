import type { Hover, Position } from 'vscode-languageserver';
import { domainSize, findExpressions, formatSize, gpuSatisfies, sweepSize, type Expression, type GpuRequest, type MapEntry, type ResourceRequest, type SourceRange, type SweepSpec } from '../../../common/spec';
import { describeDomain, describeHost, gpuSummary, isGpuFree, jobAt, markdown, reportsOccupancy, type ContextGpu, type ContextHost, type SpecContext } from './completion';
import { describeSchema, enumValues, inlineYaml, pathSegments, schemaAt } from './schema-at';
import { within, type PathStep, type SpecDocument } from './spec-document';

/**
 * Hover at a position: a key's documentation from the schema (with what a `sweep` expands to
 * and, given the daemon's hosts, where `resources` fit); a `${{ params.x }}`'s values; a host
 * alias's GPUs; an enum value's meaning. Null where there is nothing to say.
 */
export function doHover(document: SpecDocument, position: Position, context: SpecContext = {}): Hover | null {
  const offset = document.offsetAt(position);
  const steps = document.pathAt(offset);
  for (let i = steps.length - 1; i >= 1; i--) {
    const entry = steps[i]!.entry;
    if (entry && within(offset, entry.keyRange)) return keyHover(document, steps.slice(0, i + 1), entry, offset, context);
  }
  const last = steps[steps.length - 1];
  if (!last || last.node.kind !== 'scalar' || !within(offset, last.node.range)) return null;
  const node = last.node;
  if (typeof node.value === 'string' && node.value.includes('${{')) {
    const expression = findExpressions(document.text, node.range.start, node.range.end).find((candidate) => within(offset, candidate.range));
    if (expression) return expressionHover(document, expression, offset);
  }
  const path = pathSegments(steps);
  const hosts = context.hosts;
  if (hosts && typeof node.value === 'string' && path.length >= 3 && path[path.length - 2] === 'hosts' && path[path.length - 3] === 'placement') {
    const host = hosts.find((candidate) => candidate.name === node.value);
    const text = host ? describeHost(host) : `\`${node.value}\` is not a host the daemon knows${hosts.length ? ` (it knows ${hosts.map((known) => `\`${known.name}\``).join(', ')})` : ''}.`;
    return hover(document, text, node.range);
  }
  const schema = schemaAt(document, steps);
  if (schema) {
    const meaning = enumValues(schema).find(({ value }) => value === node.value);
    if (meaning) return hover(document, `\`${String(meaning.value)}\`${meaning.description ? `: ${meaning.description}` : ''}`, node.range);
  }
  // Any other value: the documentation of the field it is the value of.
  for (let i = steps.length - 1; i >= 1; i--) {
    const entry = steps[i]!.entry;
    if (!entry) continue;
    const field = schemaAt(document, steps.slice(0, i + 1));
    const text = field && describeSchema(field, entry.key);
    return text ? hover(document, `**${entry.key}**\n\n${text}`, node.range) : null;
  }
  return null;
}

function keyHover(document: SpecDocument, steps: PathStep[], entry: MapEntry, offset: number, context: SpecContext): Hover | null {
  const schema = schemaAt(document, steps);
  if (!schema) return null;
  const parts = [`**${entry.key}**`];
  const properties = schema.properties ?? {};
  const model = document.analysis.model;
  if (entry.key === 'sweep' && properties['parameters']) {
    const job = model?.jobs.find((candidate) => candidate.sweep?.range.start === entry.keyRange.start);
    if (job?.sweep) parts.push(sweepSummary(job.sweep));
  }
  if (entry.key === 'resources' && properties['gpus'] && context.hosts) {
    const job = jobAt(model, offset);
    if (job) parts.push(fitReport(job.resources, context.hosts));
  }
  const documentation = describeSchema(schema, entry.key);
  if (documentation) parts.push(documentation);
  // A free-form key (an `env` variable, a param) with nothing to say about it.
  if (parts.length === 1) return null;
  return hover(document, parts.join('\n\n'), entry.keyRange);
}

/** `Expands to 6 runs (grid: 2 × 3), at most 4 at a time.` */
export function sweepSummary(sweep: SweepSpec): string {
  const size = sweepSize(sweep);
  const parallel = sweep.maxParallel !== undefined ? `, at most ${sweep.maxParallel} at a time` : '';
  if (sweep.method === 'random') {
    if (sweep.samples === undefined) return 'A random sweep draws `samples` points: set `samples`.';
    return `Expands to ${plural(size, 'sample')} (random, seed ${sweep.seed})${parallel}.`;
  }
  if (Number.isNaN(size)) return 'A grid sweep cannot expand a `uniform` or `loguniform` interval: list values, use a `range`, or set `method: random`.';
  const counts = sweep.parameters.map((parameter) => String(describeCount(parameter.domain)));
  return `Expands to ${plural(size, 'run')} (grid: ${counts.join(' × ') || '1'})${parallel}.`;
}

function describeCount(domain: SweepSpec['parameters'][number]['domain']): number {
  return domainSize(domain);
}

function expressionHover(document: SpecDocument, expression: Expression, offset: number): Hover | null {
  const path = expression.path;
  if (!path) return null;
  const model = document.analysis.model;
  const job = jobAt(model, offset);
  const [namespace, name, field, output] = path;
  if (namespace === 'params' && name !== undefined && path.length === 2) {
    const lines = [`**params.${name}**`];
    const value = job ? job.params[name] : model?.params[name];
    const swept = job?.sweep?.parameters.find((parameter) => parameter.name === name);
    if (swept) {
      lines.push(`Swept (${job!.sweep!.method}): ${describeDomain(swept.domain)}`);
      if (value !== undefined) lines.push(`\`params\` sets \`${inlineYaml(value)}\`, which the sweep overrides.`);
    } else if (value !== undefined) lines.push(`Value: \`${inlineYaml(value)}\``);
    else lines.push(`Not a parameter of ${job ? `job \`${job.id}\`` : 'this spec'}: nothing in \`params\` or \`sweep.parameters\` names it.`);
    return hover(document, lines.join('\n\n'), expression.range);
  }
  if (namespace === 'jobs' && name !== undefined && model?.kind === 'workflow') {
    const target = model.jobs.find((candidate) => candidate.id === name);
    if (!target) return hover(document, `No job \`${name}\` in this workflow.`, expression.range);
    if (field === 'outputs' && output !== undefined) {
      const description = target.outputs[output];
      const text = description !== undefined ? `Output \`${output}\` of job \`${name}\`: ${description}` : `Job \`${name}\` declares no output \`${output}\`.`;
      return hover(document, text, expression.range);
    }
    return hover(document, `Job \`${name}\`${target.run ? `: \`${target.run.value}\`` : ''}`, expression.range);
  }
  return null;
}

/**
 * Which of the given hosts can hold a run with these resources, from what they report: the
 * number of GPUs of the type (and memory) asked for, and the CPUs and memory where known.
 */
export function fitReport(resources: ResourceRequest, hosts: readonly ContextHost[]): string {
  const { gpus, cpus, memoryBytes } = resources;
  const fits: string[] = [];
  const misses: string[] = [];
  const unchecked: string[] = [];
  for (const host of hosts) {
    const matching = host.gpus.filter((gpu) => gpuSatisfies(gpu, gpus));
    const lacks: string[] = [];
    if (matching.length < gpus.count) lacks.push(`${plural(matching.length, 'GPU')}${describeGpuKind(gpus)}`);
    if (cpus !== undefined && host.cpus !== undefined && cpus > host.cpus) lacks.push(plural(host.cpus, 'CPU'));
    if (memoryBytes !== undefined && host.memoryBytes !== undefined && memoryBytes > host.memoryBytes) lacks.push(`${formatSize(host.memoryBytes)} memory`);
    if (lacks.length > 0) {
      misses.push(`${host.name} (has ${lacks.join(', ')})`);
      continue;
    }
    fits.push(gpus.count > 0 ? `${host.name} (${gpuAvailability(host, matching)})` : host.name);
    if ((cpus !== undefined && host.cpus === undefined) || (memoryBytes !== undefined && host.memoryBytes === undefined)) unchecked.push(host.name);
  }
  const lines = [`Needs ${describeRequest(resources)}.`];
  lines.push(fits.length > 0 ? `Fits on: ${fits.join(', ')}` : 'Fits on no known host.');
  if (misses.length > 0) lines.push(`Not on: ${misses.join(', ')}`);
  if (unchecked.length > 0) lines.push(`Not checked (the host reports no CPUs or memory): ${unchecked.join(', ')}`);
  return lines.join('\n\n');
}

/** `4 × A100 free`, `4 × A100, 1 free`, or `4 × A100` when the host does not say who uses them. */
function gpuAvailability(host: ContextHost, matching: ContextGpu[]): string {
  const summary = gpuSummary(matching);
  if (!reportsOccupancy(host.gpus)) return summary;
  const free = matching.filter(isGpuFree).length;
  return free === matching.length ? `${summary} free` : `${summary}, ${free} free`;
}

function describeGpuKind(request: GpuRequest): string {
  const parts: string[] = [];
  if (request.type) parts.push(` of type ${request.type}`);
  if (request.memoryBytes !== undefined) parts.push(` with ${formatSize(request.memoryBytes)}`);
  return parts.join('');
}

function describeRequest({ gpus, cpus, memoryBytes }: ResourceRequest): string {
  const parts = [gpus.count > 0 ? `${plural(gpus.count, 'GPU')}${describeGpuKind(gpus)}` : 'no GPU'];
  if (cpus !== undefined) parts.push(plural(cpus, 'CPU'));
  if (memoryBytes !== undefined) parts.push(`${formatSize(memoryBytes)} memory`);
  return parts.join(', ');
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function hover(document: SpecDocument, value: string, range: SourceRange): Hover {
  return { contents: markdown(value), range: document.rangeOf(range) };
}
