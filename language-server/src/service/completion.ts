import {
  CompletionItemKind,
  InsertTextFormat,
  InsertTextMode,
  MarkupKind,
  type CompletionItem,
  type CompletionList,
  type Position,
} from 'vscode-languageserver';
import { domainSize, domainValues, formatSize, resolveSchema, specSchema, type JobSpec, type JsonSchema, type LineIndex, type SpecModel, type SpecNode, type SweepDomain } from '../../../common/spec';
import { describeSchema, enumValues, inlineYaml, isArraySchema, isObjectSchema, knownProperties, nodeAtPath, schemaForPath, type PathSegment } from './schema-at';
import type { SpecDocument } from './spec-document';

/** A GPU as the daemon reports it (`GpuView` fits); only `name` is required. */
export interface ContextGpu {
  name: string;
  memoryTotalBytes?: number;
  /** The Drover job holding it. */
  jobId?: number;
  /** Processes Drover did not start that use it. */
  foreignPids?: number[];
}

/** A host as the daemon reports it (`HostView` fits); only `name` and `gpus` are required. */
export interface ContextHost {
  name: string;
  gpus: ContextGpu[];
  cpus?: number;
  memoryBytes?: number;
}

/** What the editor knows beyond the text: the daemon's hosts, when it is reachable. */
export interface SpecContext {
  hosts?: ContextHost[];
}

/**
 * Completion at a position: keys valid there (with their documentation and a snippet), enum
 * values, job names in `needs`, names inside `${{ … }}`, host aliases in `placement.hosts` and
 * GPU types in `gpus` (the last two from `context`). Works from the text before the cursor, so a
 * half-typed line that the parser could not place still completes; never throws.
 */
export function doComplete(document: SpecDocument, position: Position, context: SpecContext = {}): CompletionList {
  const offset = document.offsetAt(position);
  const completer = new Completer(document, offset, context);
  const items = completer.items();
  return { isIncomplete: completer.incomplete, items };
}

/**
 * Lists of jobs longer than this are cut to the best matches of the word typed so far and marked
 * incomplete, so that the editor asks again as the word grows (clangd limits its lists the same
 * way): a workflow of thousands of jobs would otherwise send megabytes on every `needs: [`.
 */
export const MAX_JOB_ITEMS = 100;

/** Where the cursor is, as far as completion cares. */
type Place =
  | { kind: 'key'; path: PathSegment[]; start: number; flow: boolean }
  | { kind: 'value'; path: PathSegment[]; start: number }
  | { kind: 'expression'; segments: string[]; start: number };

class Completer {
  /** Whether `items()` left out matches (see MAX_JOB_ITEMS). */
  incomplete = false;
  private readonly text: string;
  private readonly root: SpecNode | null;
  private readonly model: SpecModel | undefined;

  constructor(
    private readonly document: SpecDocument,
    private readonly offset: number,
    private readonly context: SpecContext,
  ) {
    this.text = document.text;
    this.root = document.analysis.source.root;
    this.model = document.analysis.model;
  }

  items(): CompletionItem[] {
    const place = placeAt(this.text, this.document.analysis.lines, this.offset, (path) => this.itemsAreMappings(path));
    if (!place) return [];
    if (place.kind === 'expression') return this.expressionItems(place.segments, place.start);
    if (place.kind === 'key') return this.keyItems(place.path, place.start, place.flow);
    return this.valueItems(place.path, place.start);
  }

  /** Whether the items of the list at `path` (ending in -1) are mappings, so `- na` starts a key. */
  private itemsAreMappings(path: PathSegment[]): boolean {
    const schema = schemaForPath(this.root, path);
    return schema !== undefined && isObjectSchema(schema);
  }

  // ---- keys ----

  private keyItems(path: PathSegment[], start: number, flow: boolean): CompletionItem[] {
    const properties = path.length === 0 ? this.rootProperties() : propertiesAt(this.root, path);
    if (properties.size === 0) return [];
    const present = this.presentKeys(path, start);
    const range = this.replaceRange(start, /[\w-]/);
    const followedByColon = this.text[this.offsetOf(range.end)] === ':';
    const items: CompletionItem[] = [];
    let order = 0;
    for (const [key, raw] of properties) {
      order++;
      if (present.has(key)) continue;
      const schema = resolveSchema(raw);
      const item: CompletionItem = {
        label: key,
        kind: CompletionItemKind.Property,
        documentation: markdown(describeSchema(schema, key)),
        sortText: `0${String(order).padStart(3, '0')}`,
        filterText: key,
      };
      if (followedByColon) {
        item.insertTextFormat = InsertTextFormat.PlainText;
        item.textEdit = { range, newText: key };
      } else {
        item.insertTextFormat = InsertTextFormat.Snippet;
        item.textEdit = { range, newText: keySnippet(key, schema, flow) };
        if (!flow && isObjectSchema(schema)) item.insertTextMode = InsertTextMode.adjustIndentation;
      }
      items.push(item);
    }
    // Ready-made blocks where a job's keys go.
    if (!flow && !followedByColon && properties.has('run') && properties.has('sweep')) {
      for (const snippet of BLOCK_SNIPPETS) {
        if (present.has(snippet.key)) continue;
        items.push({
          label: snippet.key,
          labelDetails: { description: snippet.detail },
          kind: CompletionItemKind.Snippet,
          detail: snippet.detail,
          documentation: markdown(`${snippet.detail}\n\n${describeSchema(resolveSchema(properties.get(snippet.key)!))}`),
          sortText: `1${snippet.key}`,
          filterText: snippet.key,
          insertTextFormat: InsertTextFormat.Snippet,
          insertTextMode: InsertTextMode.adjustIndentation,
          textEdit: { range, newText: snippet.body },
        });
      }
    }
    return items;
  }

  /**
   * Keys at the top: a workflow's when the spec has `jobs`; otherwise a job's, and `jobs` too
   * while nothing written rules a workflow out.
   */
  private rootProperties(): Map<string, JsonSchema> {
    const workflow = knownProperties(resolveSchema(specSchema.then!));
    const job = knownProperties(resolveSchema(specSchema.else!));
    const keys = this.root?.kind === 'map' ? this.root.entries.map((entry) => entry.key) : [];
    if (keys.includes('jobs')) return workflow;
    const properties = new Map(job);
    // `needs` links the jobs of a workflow; a single job has nothing to need.
    properties.delete('needs');
    if (keys.every((key) => workflow.has(key))) for (const [key, schema] of workflow) if (!properties.has(key)) properties.set(key, schema);
    return properties;
  }

  /** Keys already written in the mapping at `path`, but for the one being typed at `start`. */
  private presentKeys(path: PathSegment[], start: number): Set<string> {
    const node = nodeAtPath(this.root, path);
    const present = new Set<string>();
    if (node?.kind !== 'map') return present;
    for (const entry of node.entries) {
      if (entry.keyRange.start === start) continue;
      // A half-typed key the parser read as a key (or took into one) on the cursor's line.
      if (entry.keyRange.start <= start && start <= entry.keyRange.end) continue;
      present.add(entry.key);
    }
    return present;
  }

  // ---- values ----

  private valueItems(path: PathSegment[], start: number): CompletionItem[] {
    const range = this.replaceRange(start, /[\w.:-]/);
    const typed = this.text.slice(start, this.offset);
    const items: CompletionItem[] = [];
    const schema = schemaForPath(this.root, path);
    if (schema) {
      for (const { value, description } of enumValues(schema)) {
        const label = String(value);
        items.push({
          label,
          kind: CompletionItemKind.EnumMember,
          ...(description !== undefined && { detail: description, documentation: markdown(description) }),
          textEdit: { range, newText: label },
        });
      }
    }
    const last = path[path.length - 1];
    const key = typeof last === 'string' ? last : path[path.length - 2];
    const isItem = last === -1;
    if (isItem && key === 'needs' && path[0] === 'jobs' && path.length === 4 && typeof path[1] === 'string') {
      items.push(...this.needsItems(path, path[1], start, range));
    } else if (isItem && key === 'hosts' && path[path.length - 3] === 'placement') {
      items.push(...this.hostItems(path, start, range));
    } else if ((last === 'gpus' && path[path.length - 2] === 'resources') || (last === 'type' && path[path.length - 2] === 'gpus')) {
      if (!/^\d/.test(typed)) items.push(...this.gpuTypeItems(range));
    }
    return items;
  }

  private needsItems(path: PathSegment[], self: string, start: number, range: LspRange): CompletionItem[] {
    const listed = this.listedStrings(path.slice(0, -1), start);
    const candidates = this.jobs().filter((job) => job.id !== self && !listed.has(job.id));
    return this.fewestJobs(candidates, start)
      .map((job) => ({
        label: job.id,
        kind: CompletionItemKind.Reference,
        ...jobDocumentation(job),
        textEdit: { range, newText: job.id },
      }));
  }

  private hostItems(path: PathSegment[], start: number, range: LspRange): CompletionItem[] {
    const listed = this.listedStrings(path.slice(0, -1), start);
    return (this.context.hosts ?? [])
      .filter((host) => !listed.has(host.name))
      .map((host) => ({
        label: host.name,
        kind: CompletionItemKind.Value,
        detail: gpuSummary(host.gpus) || 'no GPUs',
        documentation: markdown(describeHost(host)),
        textEdit: { range, newText: host.name },
      }));
  }

  private gpuTypeItems(range: LspRange): CompletionItem[] {
    const byToken = new Map<string, { host: string; gpu: ContextGpu }[]>();
    for (const host of this.context.hosts ?? []) {
      for (const gpu of host.gpus) {
        const token = gpuModelToken(gpu.name);
        if (!token) continue;
        const list = byToken.get(token) ?? [];
        list.push({ host: host.name, gpu });
        byToken.set(token, list);
      }
    }
    return [...byToken].map(([token, gpus]) => {
      const hosts = new Map<string, number>();
      for (const { host } of gpus) hosts.set(host, (hosts.get(host) ?? 0) + 1);
      const names = [...new Set(gpus.map(({ gpu }) => gpu.name))];
      return {
        label: token,
        kind: CompletionItemKind.Value,
        detail: names.join(', '),
        documentation: markdown(`${names.map((name) => `\`${name}\``).join(', ')}\n\nOn ${[...hosts].map(([host, count]) => `${host} (${count})`).join(', ')}.`),
        textEdit: { range, newText: token },
      };
    });
  }

  /** The strings already in the list at `path`, but for the item being typed at `start`. */
  private listedStrings(path: PathSegment[], start: number): Set<string> {
    const node = nodeAtPath(this.root, path);
    const listed = new Set<string>();
    if (node?.kind !== 'seq') return listed;
    for (const item of node.items) {
      if (item.kind !== 'scalar' || typeof item.value !== 'string') continue;
      if (item.range.start <= start && start <= item.range.end) continue;
      listed.add(item.value);
    }
    return listed;
  }

  // ---- ${{ … }} ----

  private expressionItems(segments: string[], start: number): CompletionItem[] {
    const range = this.replaceRange(start, /[\w-]/);
    const item = (label: string, kind: CompletionItemKind, extra: Partial<CompletionItem> = {}): CompletionItem => ({ label, kind, textEdit: { range, newText: label }, ...extra });
    const workflow = this.model?.kind === 'workflow';
    const [namespace, name, field] = segments;
    if (segments.length === 0) {
      const items = [item('params', CompletionItemKind.Module, { documentation: markdown('Parameter values: `${{ params.NAME }}`.') })];
      if (workflow) items.push(item('jobs', CompletionItemKind.Module, { documentation: markdown('Upstream jobs\' outputs: `${{ jobs.NAME.outputs.KEY }}`.') }));
      return items;
    }
    if (namespace === 'params' && segments.length === 1) {
      return this.parameters().map(({ name: parameter, summary }) => item(parameter, CompletionItemKind.Variable, { detail: summary, documentation: markdown(`\`params.${parameter}\`: ${summary}`) }));
    }
    if (namespace !== 'jobs' || !workflow) return [];
    const self = this.currentJob()?.id;
    if (segments.length === 1) {
      // Outputs can only be read from jobs this one needs (directly or not): those first.
      const needed = this.upstreamOf(self);
      const candidates = this.jobs().filter((job) => job.id !== self);
      return this.fewestJobs(candidates, start, needed)
        .map((job) => item(job.id, CompletionItemKind.Reference, { ...jobDocumentation(job), sortText: `${needed.has(job.id) ? 0 : 1}${job.id}` }));
    }
    const job = this.jobs().find((candidate) => candidate.id === name);
    if (!job) return [];
    if (segments.length === 2) return [item('outputs', CompletionItemKind.Module, { documentation: markdown(`The outputs job \`${job.id}\` declares.`) })];
    if (segments.length === 3 && field === 'outputs') {
      return Object.entries(job.outputs).map(([output, description]) =>
        item(output, CompletionItemKind.Field, { detail: description, documentation: markdown(`Output \`${output}\` of job \`${job.id}\`: ${description}`) }),
      );
    }
    return [];
  }

  /** The parameters the job at the cursor knows (its params and its sweep's), else every job's. */
  private parameters(): { name: string; summary: string }[] {
    const jobs = this.currentJob() ? [this.currentJob()!] : this.jobs();
    const found = new Map<string, string>();
    for (const job of jobs) {
      for (const name of Object.keys(job.params).sort()) if (!found.has(name)) found.set(name, `= ${inlineYaml(job.params[name])}`);
      for (const parameter of job.sweep?.parameters ?? []) found.set(parameter.name, `swept: ${describeDomain(parameter.domain)}`);
    }
    for (const [name, value] of Object.entries(this.model?.params ?? {})) if (!found.has(name)) found.set(name, `= ${inlineYaml(value)}`);
    return [...found].map(([name, summary]) => ({ name, summary }));
  }

  /** The jobs `id` needs, directly or through others. */
  private upstreamOf(id: string | undefined): Set<string> {
    const byId = new Map(this.jobs().map((job) => [job.id, job]));
    const seen = new Set<string>();
    const pending = id === undefined ? [] : [id];
    while (pending.length > 0) {
      for (const need of byId.get(pending.pop()!)?.needs ?? []) {
        if (!seen.has(need.value)) {
          seen.add(need.value);
          pending.push(need.value);
        }
      }
    }
    return seen;
  }

  /**
   * `jobs` when there are at most MAX_JOB_ITEMS; else the list is marked incomplete and holds at
   * most that many of the jobs that hold the letters typed since `start` in order (as the editor
   * filters): the one named so first, then those in `preferred`, those that start with the typed
   * word, and the nearest to the cursor.
   */
  private fewestJobs(jobs: JobSpec[], start: number, preferred: ReadonlySet<string> = new Set()): JobSpec[] {
    if (jobs.length <= MAX_JOB_ITEMS) return jobs;
    this.incomplete = true;
    const typed = this.text.slice(start, this.offset).toLowerCase();
    // Nothing typed yet (just after `needs: [`): every job matches, whatever its case.
    const lower = (job: JobSpec): string => (typed === '' ? job.id : job.id.toLowerCase());
    const matching = typed === '' ? jobs : jobs.filter((job) => holdsInOrder(lower(job), typed));
    if (matching.length <= MAX_JOB_ITEMS) return matching;
    const rank = (job: JobSpec): number => {
      const id = lower(job);
      return id === typed ? 0 : 1 + (preferred.has(job.id) ? 0 : 2) + (id.startsWith(typed) ? 0 : 1);
    };
    const distance = (job: JobSpec): number => Math.abs(job.idRange.start - this.offset);
    const byRank: JobSpec[][] = [[], [], [], [], []];
    for (const job of matching) byRank[rank(job)]!.push(job);
    const picked: JobSpec[] = [];
    for (const jobsOfRank of byRank) {
      // They are in document order: walk outward from the cursor, taking the nearer side each time.
      let after = jobsOfRank.findIndex((job) => job.idRange.start > this.offset);
      if (after < 0) after = jobsOfRank.length;
      let before = after - 1;
      while (picked.length < MAX_JOB_ITEMS && (before >= 0 || after < jobsOfRank.length)) {
        const takeBefore = after >= jobsOfRank.length || (before >= 0 && distance(jobsOfRank[before]!) <= distance(jobsOfRank[after]!));
        picked.push(takeBefore ? jobsOfRank[before--]! : jobsOfRank[after++]!);
      }
    }
    return picked;
  }

  private currentJob(): JobSpec | undefined {
    return jobAt(this.model, this.offset);
  }

  private jobs(): JobSpec[] {
    return this.model?.kind === 'workflow' ? this.model.jobs : [];
  }

  // ---- text ----

  /** From `start` to the cursor, and on over the rest of the word the cursor is in. */
  private replaceRange(start: number, word: RegExp): LspRange {
    let end = this.offset;
    while (end < this.text.length && word.test(this.text[end]!)) end++;
    return { start: this.document.positionAt(start), end: this.document.positionAt(end) };
  }

  private offsetOf(position: Position): number {
    return this.document.offsetAt(position);
  }
}

type LspRange = { start: Position; end: Position };

interface BlockSnippet {
  key: string;
  detail: string;
  body: string;
}

const BLOCK_SNIPPETS: BlockSnippet[] = [
  { key: 'resources', detail: 'GPUs, CPUs and memory per run', body: 'resources: { gpus: ${1:1}, cpus: ${2:4}, memory: ${3:16GB} }' },
  {
    key: 'sweep',
    detail: 'a grid sweep over one parameter',
    body: 'sweep:\n  method: ${1|grid,random|}\n  max_parallel: ${2:4}\n  parameters:\n    ${3:lr}: [${4:1e-3, 3e-4}]',
  },
  { key: 'retries', detail: 'retry failed attempts', body: 'retries: ${1:2}' },
];

function keySnippet(key: string, schema: JsonSchema, flow: boolean): string {
  if (isObjectSchema(schema)) return flow ? `${key}: { $1 }` : `${key}:\n  `;
  if (isArraySchema(schema)) return `${key}: [$1]`;
  return `${key}: `;
}

/** The keys of the mapping at `path` per the schema (none for free-form maps such as `env`). */
function propertiesAt(root: SpecNode | null, path: PathSegment[]): Map<string, JsonSchema> {
  const schema = schemaForPath(root, path);
  return schema ? knownProperties(schema) : new Map();
}

/** The job whose mapping holds `offset` (a single job's spec: its one job). */
export function jobAt(model: SpecModel | undefined, offset: number): JobSpec | undefined {
  if (!model) return undefined;
  if (model.kind === 'job') return model.jobs[0];
  return model.jobs.find((job) => job.range.start <= offset && offset <= job.range.end && job.range.end > job.range.start);
}

/** Whether `word` holds the characters of `typed` in order (not necessarily next to each other). */
function holdsInOrder(word: string, typed: string): boolean {
  let at = 0;
  for (const char of typed) {
    at = word.indexOf(char, at) + 1;
    if (at === 0) return false;
  }
  return true;
}

function jobDocumentation(job: JobSpec): Partial<CompletionItem> {
  const what = job.run?.value ?? (job.notebook ? `notebook ${job.notebook.value}` : undefined);
  const outputs = Object.keys(job.outputs);
  const lines = [`Job \`${job.id}\`${job.description ? `: ${job.description}` : ''}`];
  if (what) lines.push(`\`\`\`sh\n${what}\n\`\`\``);
  if (outputs.length) lines.push(`Outputs: ${outputs.map((output) => `\`${output}\``).join(', ')}`);
  return { ...(what !== undefined && { detail: what }), documentation: markdown(lines.join('\n\n')) };
}

/** A sweep parameter's domain in words: its values, or its interval. */
export function describeDomain(domain: SweepDomain): string {
  if (domain.kind === 'uniform' || domain.kind === 'loguniform') return `${domain.kind} [${inlineYaml(domain.low)}, ${inlineYaml(domain.high)}]`;
  // A long range is described, not listed (nor built: it may hold millions of values).
  if (domain.kind === 'range' && domainSize(domain) > SHOWN_VALUES) {
    const count = domainSize(domain);
    const step = domain.step === 1 ? '' : ` step ${domain.step}`;
    return `${count.toLocaleString('en-US')} values from ${domain.start} up to ${domain.stop}${step}`;
  }
  const values = domainValues(domain) ?? [];
  if (values.length === 0) return 'no values';
  const shown = values.slice(0, SHOWN_VALUES).map((value) => inlineYaml(value));
  return values.length > SHOWN_VALUES ? `${shown.join(', ')}, … (${values.length} values)` : shown.join(', ');
}

const SHOWN_VALUES = 12;

export function markdown(value: string): { kind: typeof MarkupKind.Markdown; value: string } {
  return { kind: MarkupKind.Markdown, value };
}

// ---- hosts and GPUs ----

const VENDOR_WORDS = /^(nvidia|tesla|geforce|quadro|amd|radeon|instinct|intel)$/i;

/**
 * The model token of a GPU name, as a `gpus` type matches it (case-insensitive, within the name):
 * `NVIDIA A100-SXM4-40GB` → `A100`, `NVIDIA H100 80GB HBM3` → `H100`, `Tesla T4` → `T4`. Undefined
 * where no single word names the model (`NVIDIA GeForce RTX 4090`: `RTX4090` is not in the name).
 */
export function gpuModelToken(name: string): string | undefined {
  for (const word of name.trim().split(/\s+/)) {
    if (VENDOR_WORDS.test(word)) continue;
    const head = word.split('-')[0]!;
    if (/^[A-Za-z][A-Za-z0-9_.]*$/.test(head) && /\d/.test(head)) return head;
  }
  return undefined;
}

/** `4 × A100, 2 × T4` (model tokens where there are, full names elsewhere). */
export function gpuSummary(gpus: readonly ContextGpu[]): string {
  const counts = new Map<string, number>();
  for (const gpu of gpus) {
    const label = gpuModelToken(gpu.name) ?? gpu.name;
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts].map(([label, count]) => `${count} × ${label}`).join(', ');
}

/** Whether the host says who uses its GPUs (the daemon's view does; a bare list of names does not). */
export function reportsOccupancy(gpus: readonly ContextGpu[]): boolean {
  return gpus.some((gpu) => gpu.foreignPids !== undefined || gpu.jobId !== undefined);
}

export function isGpuFree(gpu: ContextGpu): boolean {
  return gpu.jobId === undefined && (gpu.foreignPids?.length ?? 0) === 0;
}

/** Markdown for a host: its GPUs (by full name, with memory), CPUs and memory, as far as known. */
export function describeHost(host: ContextHost): string {
  const lines = [`**${host.name}**`];
  if (host.gpus.length === 0) lines.push('No GPUs.');
  else {
    const byName = new Map<string, ContextGpu[]>();
    for (const gpu of host.gpus) byName.set(gpu.name, [...(byName.get(gpu.name) ?? []), gpu]);
    const occupancy = reportsOccupancy(host.gpus);
    for (const [name, gpus] of byName) {
      const memory = gpus[0]!.memoryTotalBytes;
      const free = gpus.filter(isGpuFree).length;
      lines.push(`- ${gpus.length} × ${name}${memory ? ` (${formatSize(memory)})` : ''}${occupancy ? `, ${free} free` : ''}`);
    }
  }
  const machine = [host.cpus !== undefined ? `${host.cpus} CPUs` : undefined, host.memoryBytes !== undefined ? `${formatSize(host.memoryBytes)} memory` : undefined].filter(Boolean);
  if (machine.length) lines.push(machine.join(', '));
  return lines.join('\n\n');
}

// ---- where the cursor is ----

/**
 * Reads the cursor's place from the text: inside `${{ … }}`; at a key (the enclosing mapping
 * found by indentation, or by the flow `{` the cursor is in); or at a value (of a key, or an item
 * of a list). Undefined where nothing completes (a comment, a block scalar, a plain value's
 * continuation line).
 */
function placeAt(text: string, lines: LineIndex, offset: number, itemsAreMappings: (path: PathSegment[]) => boolean): Place | undefined {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  const prefix = text.slice(lineStart, offset);
  const open = prefix.lastIndexOf('${{');
  if (open >= 0 && !prefix.includes('}}', open)) {
    const match = /^\s*((?:[A-Za-z_][\w-]*\.)*)([\w-]*)$/.exec(prefix.slice(open + 3));
    if (!match) return undefined;
    const segments = match[1] ? match[1].slice(0, -1).split('.') : [];
    return { kind: 'expression', segments, start: offset - match[2]!.length };
  }
  const indent = prefix.length - prefix.trimStart().length;
  let rest = prefix.slice(indent);
  let restAt = lineStart + indent;
  let base: PathSegment[] | undefined;
  let inItem = false;
  const dash = /^-(\s+|$)/.exec(rest);
  if (dash) {
    const owner = listOwner(text, lines, lineStart, indent);
    if (!owner) return undefined;
    base = [...owner, -1];
    inItem = true;
    rest = rest.slice(dash[0].length);
    restAt += dash[0].length;
  } else {
    base = enclosingKeys(text, lines, lineStart, indent);
    if (!base) return undefined;
  }
  const scan = scanLine(rest);
  if (!scan) return undefined;
  const path = [...base];
  for (const frame of scan.frames) {
    if (frame.key !== undefined) path.push(frame.key);
    if (frame.kind === '[') path.push(-1);
  }
  const start = restAt + scan.tailStart;
  const tail = rest.slice(scan.tailStart);
  const top = scan.frames[scan.frames.length - 1];
  if (scan.key !== undefined) return { kind: 'value', path: [...path, scan.key], start: start + quoteLength(tail) };
  if (top?.kind === '[') return { kind: 'value', path, start: start + quoteLength(tail) };
  const keyLike = /^[\w-]*$/.test(tail);
  if (top?.kind === '{') return keyLike ? { kind: 'key', path, start, flow: true } : undefined;
  if (inItem && scan.frames.length === 0 && !itemsAreMappings(path)) return { kind: 'value', path, start: start + quoteLength(tail) };
  return keyLike ? { kind: 'key', path, start, flow: false } : undefined;
}

function quoteLength(tail: string): number {
  return tail.startsWith('"') || tail.startsWith("'") ? 1 : 0;
}

interface LineScan {
  /** The flow collections open at the cursor, each with the key it is the value of. */
  frames: { kind: '{' | '['; key: string | undefined }[];
  /** The key of the pair the cursor is in the value of (at the innermost level), if it is past one. */
  key: string | undefined;
  /** Where the word being typed starts, in the scanned text. */
  tailStart: number;
}

/** Scans the text of a line before the cursor (after its indentation and list dash). */
function scanLine(text: string): LineScan | undefined {
  const frames: LineScan['frames'] = [];
  let key: string | undefined;
  let tokenStart = 0;
  let valueStart = true;
  for (let i = 0; i < text.length; ) {
    const char = text[i]!;
    if (char === ' ' || char === '\t') {
      i++;
      if (valueStart) tokenStart = i;
      continue;
    }
    if (char === '#' && (i === 0 || /\s/.test(text[i - 1]!))) return undefined;
    if (valueStart && (char === '{' || char === '[')) {
      frames.push({ kind: char, key });
      key = undefined;
      tokenStart = ++i;
      continue;
    }
    if (valueStart && (char === '"' || char === "'")) {
      const close = closingQuote(text, i);
      if (close < 0) return { frames, key, tailStart: i };
      i = close + 1;
      valueStart = false;
      continue;
    }
    const next = text[i + 1];
    if (char === ':' && (next === undefined || /\s/.test(next) || (frames.length > 0 && /[,\]}]/.test(next)))) {
      key = unquote(text.slice(tokenStart, i).trim());
      tokenStart = ++i;
      valueStart = true;
      continue;
    }
    if (frames.length > 0 && char === ',') {
      key = undefined;
      tokenStart = ++i;
      valueStart = true;
      continue;
    }
    if (frames.length > 0 && (char === '}' || char === ']')) {
      key = frames.pop()!.key;
      valueStart = false;
      i++;
      continue;
    }
    valueStart = false;
    i++;
  }
  return { frames, key, tailStart: tokenStart };
}

function closingQuote(text: string, open: number): number {
  const quote = text[open];
  for (let i = open + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) {
      if (quote === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  return -1;
}

function unquote(key: string): string {
  return /^(".*"|'.*')$/.test(key) ? key.slice(1, -1) : key;
}

/** `key:` with nothing after it but a comment: a line that opens a block. */
const BLOCK_KEY = /^("[^"]*"|'[^']*'|[^\s#'"-][^#]*?|-[^\s#][^#]*?)\s*:(\s+#.*)?$/;

/**
 * The line from `start` to `end` (the start of the next one): completion walks up line by line
 * from the cursor, cutting a line's text out only when it needs it (a workflow may have many
 * thousand lines).
 */
function lineAbove(text: string, start: number, end: number): LineAbove {
  let content = start;
  while (content < end - 1 && isWhitespace(text.charCodeAt(content))) content++;
  return { start, indent: content - start, content, end: end - 1 };
}

/** Whether the line from `start` to its break at `end` holds only blanks in its first `width` characters (it is blank or indented at least that much). */
function blankFor(text: string, start: number, end: number, width: number): boolean {
  const limit = Math.min(start + width, end);
  for (let at = start; at < limit; at++) if (!isWhitespace(text.charCodeAt(at))) return false;
  return true;
}

interface LineAbove {
  start: number;
  /** How many blanks start it. */
  indent: number;
  /** Where its content starts (`end` for a blank line). */
  content: number;
  /** Where its line break is. */
  end: number;
}

/** What `trimStart` takes off a line: spaces, tabs, the CR of a CRLF and the like. */
function isWhitespace(char: number): boolean {
  return char === 32 || char === 9 || char === 13 || char === 11 || char === 12 || char === 0xa0 || char === 0xfeff;
}

/** The line's content, without a CR at its end (empty for a blank line). */
function contentOf(text: string, line: LineAbove): string {
  return text.slice(line.content, line.end).replace(/\r$/, '');
}

function isBlankOrComment(text: string, line: LineAbove): boolean {
  return line.content === line.end || text.charCodeAt(line.content) === 35;
}

/**
 * The keys of the block mappings that enclose a line indented by `column`, read from the lines
 * above it (those before offset `before`, a line start): each is the nearest line less indented
 * that opens a block. Undefined when that line opens none (the cursor is in a block scalar, or
 * continues a value).
 */
function enclosingKeys(text: string, lines: LineIndex, before: number, column: number): string[] | undefined {
  const keys: string[] = [];
  let depth = column;
  for (let number = lines.position(before).line - 1; number >= 0 && depth > 0; number--) {
    const start = lines.lineStart(number);
    const end = lines.lineStart(number + 1);
    // Most lines above are deeper than the block looked for (the other jobs of a workflow): skipped
    // from their first characters, without cutting anything out.
    if (blankFor(text, start, end - 1, depth)) continue;
    const line = lineAbove(text, start, end);
    if (isBlankOrComment(text, line)) continue;
    if (text.startsWith('---', line.content) || text.startsWith('...', line.content)) break;
    if (line.indent >= depth) continue;
    const match = BLOCK_KEY.exec(contentOf(text, line).trimEnd());
    if (!match) return undefined;
    keys.unshift(unquote(match[1]!.trim()));
    depth = line.indent;
  }
  return keys;
}

/** The path of the block list whose item starts with a dash at `column` on the line that starts at `before`. */
function listOwner(text: string, lines: LineIndex, before: number, column: number): string[] | undefined {
  for (let number = lines.position(before).line - 1; number >= 0; number--) {
    const start = lines.lineStart(number);
    const end = lines.lineStart(number + 1);
    if (blankFor(text, start, end - 1, column + 1)) continue;
    const line = lineAbove(text, start, end);
    if (isBlankOrComment(text, line)) continue;
    if (line.indent > column) continue;
    const content = contentOf(text, line);
    if (line.indent === column && /^-(\s|$)/.test(content)) continue;
    const match = BLOCK_KEY.exec(content.trimEnd());
    if (!match) return undefined;
    const parents = enclosingKeys(text, lines, line.start, line.indent);
    return parents && [...parents, unquote(match[1]!.trim())];
  }
  return undefined;
}
