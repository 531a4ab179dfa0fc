import type { SpecDiagnostic } from './diagnostics';
import type { JobSpec } from './model';
import { detachedCopy, type SourceRange } from './text';
import { analyzeSource, analyzeSpec, type AnalysisMemo, type SpecAnalysis } from './validate';
import { isMapNode, parseStrict, skipSpace, trimEnd, type MapEntry, type MapNode, type SpecNode } from './yaml-source';

/**
 * Analyses successive versions of one spec, as an editor changes it, redoing only the jobs whose
 * text changed: each job of a workflow's block `jobs:` map is parsed, schema-checked and read into
 * the model once per text, and reused while that text stays the same (moved ranges are shifted).
 * What spans jobs (the workflow's own keys, `needs`, cycles, expressions) is checked on every
 * version. The result equals `analyzeSpec`'s; a text whose layout it cannot split with certainty
 * (flow-style `jobs`, anchors, syntax errors, repeated job names, several documents…) is simply
 * analysed whole.
 *
 * An analysis stays valid until the next `analyze`: the reused jobs' nodes are moved in place.
 */
export class IncrementalAnalyzer {
  /** The jobs of the last analysis, by their text. */
  private chunks = new Map<string, JobChunk>();
  /** The text outside the `jobs` block that the chunks were read with (they inherit from it). */
  private outside: string | undefined;
  /** How many jobs the last analysis took over from the one before (0 when it analysed the text whole). */
  reusedJobs = 0;

  constructor(private readonly fileName?: string) {}

  analyze(text: string): SpecAnalysis {
    this.reusedJobs = 0;
    const layout = workflowLayout(text);
    if (!layout) return analyzeSpec(text, this.fileName);
    const outside = text.slice(0, layout.blockStart) + text.slice(layout.blockEnd);
    if (outside !== this.outside) {
      this.chunks.clear();
      this.outside = outside;
    }
    // Nothing to look up on the first version (or after a change outside the jobs).
    const known = this.chunks.size === 0 ? layout.jobs.map(() => undefined) : layout.jobs.map(({ start, end }) => this.chunks.get(text.slice(start, end)));
    const missing = known.reduce((count, chunk) => (chunk ? count : count + 1), 0);
    // Many new jobs (the first version, a paste): one parse of the whole text is faster than one per job.
    const analysis = missing > REPARSE_WHOLE_ABOVE ? this.analyzeWhole(text, layout) : this.analyzeByJob(text, layout, known);
    if (analysis) return analysis;
    this.reusedJobs = 0;
    return analyzeSpec(text, this.fileName);
  }

  /** Parses the whole text at once and remembers its jobs; undefined when it does not split as laid out. */
  private analyzeWhole(text: string, layout: WorkflowLayout): SpecAnalysis | undefined {
    let root: SpecNode | null;
    try {
      root = parseStrict(text);
    } catch {
      return undefined;
    }
    const jobsMap = isMapNode(root) ? root.entries.find((entry) => entry.keyRange.start === layout.jobsKeyAt)?.value : undefined;
    if (!isMapNode(jobsMap) || jobsMap.entries.length !== layout.jobs.length) return undefined;
    const chunks = new Map<string, JobChunk>();
    for (let i = 0; i < layout.jobs.length; i++) {
      const { start, end, keyAt } = layout.jobs[i]!;
      const entry = jobsMap.entries[i]!;
      if (entry.keyRange.start !== keyAt) return undefined;
      const source = detachedCopy(text.slice(start, end));
      chunks.set(source, { text: source, start, entry });
    }
    return this.finish(text, root!, chunks);
  }

  /** Parses only the jobs not seen before (`known` holds the others), and the text outside the jobs, and puts the tree together. */
  private analyzeByJob(text: string, layout: WorkflowLayout, known: (JobChunk | undefined)[]): SpecAnalysis | undefined {
    const root = parseOutside(text, layout);
    if (!root) return undefined;
    const jobsIndex = root.entries.findIndex((entry) => entry.keyRange.start === layout.jobsKeyAt);
    const jobsEntry = root.entries[jobsIndex];
    if (!jobsEntry || jobsEntry.value.kind !== 'scalar' || jobsEntry.value.value !== null) return undefined;

    const chunks = new Map<string, JobChunk>();
    const entries: MapEntry[] = [];
    const keys = new Set<string>();
    for (let i = 0; i < layout.jobs.length; i++) {
      const { start, end, keyAt } = layout.jobs[i]!;
      let chunk = known[i];
      if (chunk) {
        if (chunk.start !== start) moveChunk(chunk, start - chunk.start);
        this.reusedJobs++;
      } else {
        const source = text.slice(start, end);
        const entry = parseJob(source, start);
        if (!entry || entry.keyRange.start !== keyAt) return undefined;
        chunk = { text: detachedCopy(source), start, entry };
      }
      // Repeated job names are a parse error for the whole text, which reports them its own way.
      if (keys.has(chunk.entry.key)) return undefined;
      keys.add(chunk.entry.key);
      chunks.set(chunk.text, chunk);
      entries.push(chunk.entry);
    }
    // What the whole-text parse gives the `jobs` map and the root (see parseStrict's ranges).
    const from = layout.jobsKeyAt + 'jobs:'.length;
    const end = trimEnd(text, from, layout.blockEnd);
    const jobsMap: MapNode = { kind: 'map', range: { start: skipSpace(text, from, end), end }, entries };
    root.entries[jobsIndex] = { ...jobsEntry, value: jobsMap };
    root.range = { start: root.range.start, end: trimEnd(text, root.range.start, text.length) };
    return this.finish(text, root, chunks);
  }

  private finish(text: string, root: SpecNode, chunks: Map<string, JobChunk>): SpecAnalysis {
    const byEntry = new Map<MapEntry, JobChunk>();
    for (const chunk of chunks.values()) byEntry.set(chunk.entry, chunk);
    const memo: AnalysisMemo = {
      entryDiagnostics(entry, check) {
        const chunk = byEntry.get(entry);
        if (!chunk) return undefined;
        if (chunk.diagnostics) return chunk.diagnostics;
        const found = check();
        // "The first is on line N" names a line, which moves with edits above the job.
        if (!found.some((diagnostic) => diagnostic.code === 'duplicate-key')) chunk.diagnostics = found;
        return found;
      },
      job(entry, read) {
        const chunk = byEntry.get(entry);
        if (!chunk) return read();
        return (chunk.job ??= read());
      },
    };
    this.chunks = chunks;
    return analyzeSource({ text, root, syntaxDiagnostics: [] }, this.fileName, memo);
  }
}

/** Above this many jobs not seen before, the whole text is parsed at once. */
const REPARSE_WHOLE_ABOVE = 32;

/** One job of the `jobs` map and what was worked out from its text. */
interface JobChunk {
  /** Its text (a copy, so that it does not keep a whole version of the document alive). */
  text: string;
  /** Where its text starts, in the text its ranges are offsets of. */
  start: number;
  entry: MapEntry;
  /** Its schema diagnostics, once checked (not kept when they name a line). */
  diagnostics?: SpecDiagnostic[];
  job?: JobSpec;
}

/** Where a workflow's block `jobs` map and each of its jobs lie in the text. */
interface WorkflowLayout {
  /** The `jobs` key. */
  jobsKeyAt: number;
  /** From the line after `jobs:` to the next top-level line (or the end). */
  blockStart: number;
  blockEnd: number;
  /** Each job: from its name's line to the next job's (comments and blank lines after it included). */
  jobs: { start: number; end: number; keyAt: number }[];
}

const JOBS_LINE = /^jobs:[ ]*(#.*)?\r?$/;

/**
 * Reads the layout from the lines' indentation alone; undefined for any text whose layout is not
 * the plain one (then the whole text is analysed, which is always right). The parse of each piece
 * checks the rest: every job must parse alone to one entry whose key is where the layout put it.
 */
function workflowLayout(text: string): WorkflowLayout | undefined {
  let jobsKeyAt = -1;
  let blockStart = -1;
  let blockEnd = -1;
  let jobIndent = -1;
  const jobs: WorkflowLayout['jobs'] = [];
  for (let lineStart = 0; lineStart < text.length; ) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline < 0 ? text.length : newline;
    const next = newline < 0 ? text.length : newline + 1;
    let indent = lineStart;
    while (indent < lineEnd && text.charCodeAt(indent) === 32) indent++;
    const first = text.charCodeAt(indent);
    const blank = indent === lineEnd || first === 13 || first === 35; // empty, CR only, or a comment
    if (first === 9) return undefined; // a tab: leave it to the parser
    if (!blank && indent === lineStart) {
      // A top-level line.
      if (first === 45 || first === 46 || first === 37) return undefined; // `---`, `...`, `%`: several documents, directives
      if (blockStart >= 0 && blockEnd < 0) blockEnd = lineStart;
      if (JOBS_LINE.test(text.slice(lineStart, lineEnd))) {
        if (jobsKeyAt >= 0) return undefined;
        jobsKeyAt = lineStart;
        blockStart = next;
      }
    } else if (!blank && blockStart >= 0 && blockEnd < 0) {
      const column = indent - lineStart;
      if (jobIndent < 0) jobIndent = column;
      if (column === jobIndent) {
        const previous = jobs[jobs.length - 1];
        if (previous) previous.end = lineStart;
        jobs.push({ start: lineStart, end: -1, keyAt: indent });
      } else if (column < jobIndent) return undefined;
    }
    lineStart = next;
  }
  if (jobsKeyAt < 0 || jobs.length === 0) return undefined;
  if (blockEnd < 0) blockEnd = text.length;
  jobs[jobs.length - 1]!.end = blockEnd;
  return { jobsKeyAt, blockStart, blockEnd, jobs };
}

/**
 * The tree of the text outside the `jobs` block (`jobs:` itself has no value there), with ranges
 * in the whole text; undefined unless it parses to a mapping.
 */
function parseOutside(text: string, layout: WorkflowLayout): MapNode | undefined {
  const { blockStart, blockEnd } = layout;
  let root: SpecNode | null;
  try {
    root = parseStrict(text.slice(0, blockStart) + text.slice(blockEnd));
  } catch {
    return undefined;
  }
  if (!isMapNode(root)) return undefined;
  // Whatever follows the block moves back to where it is in the whole text.
  const delta = blockEnd - blockStart;
  const pending: SpecNode[] = [root];
  const move = (range: SourceRange): void => {
    if (range.start >= blockStart) range.start += delta;
    if (range.end >= blockStart) range.end += delta;
  };
  while (delta > 0 && pending.length > 0) {
    const node = pending.pop()!;
    move(node.range);
    if (node.kind === 'map') {
      for (const entry of node.entries) {
        move(entry.keyRange);
        pending.push(entry.value);
      }
    } else if (node.kind === 'seq') pending.push(...node.items);
  }
  return root;
}

/** One job's text alone → its entry, with ranges in the whole text; undefined unless it is exactly one entry. */
function parseJob(source: string, start: number): MapEntry | undefined {
  let node: SpecNode | null;
  try {
    node = parseStrict(source);
  } catch {
    return undefined;
  }
  if (!isMapNode(node) || node.entries.length !== 1) return undefined;
  const entry = node.entries[0]!;
  shiftNode(entry, start, new Set());
  return entry;
}

/** Moves a reused job by `delta` characters: every range in its tree, model and diagnostics, once each. */
function moveChunk(chunk: JobChunk, delta: number): void {
  const moved = new Set<SourceRange>();
  shiftNode(chunk.entry, delta, moved);
  const shift = (range: SourceRange | undefined): void => shiftRange(range, delta, moved);
  const { job } = chunk;
  if (job) {
    shift(job.idRange);
    shift(job.range);
    shift(job.run?.range);
    shift(job.notebook?.range);
    shift(job.schedule?.range);
    for (const host of job.hosts ?? []) shift(host.range);
    for (const need of job.needs) shift(need.range);
    shift(job.sweep?.range);
    for (const parameter of job.sweep?.parameters ?? []) shift(parameter.range);
    for (const expression of job.expressions) {
      shift(expression.range);
      shift(expression.pathRange);
    }
  }
  for (const diagnostic of chunk.diagnostics ?? []) {
    shift(diagnostic.range);
    for (const related of diagnostic.related ?? []) shift(related.range);
  }
  chunk.start += delta;
}

function shiftNode(entry: MapEntry, delta: number, moved: Set<SourceRange>): void {
  shiftRange(entry.keyRange, delta, moved);
  const pending: SpecNode[] = [entry.value];
  while (pending.length > 0) {
    const node = pending.pop()!;
    shiftRange(node.range, delta, moved);
    if (node.kind === 'map') {
      for (const child of node.entries) {
        shiftRange(child.keyRange, delta, moved);
        pending.push(child.value);
      }
    } else if (node.kind === 'seq') pending.push(...node.items);
  }
}

function shiftRange(range: SourceRange | undefined, delta: number, moved: Set<SourceRange>): void {
  if (!range || moved.has(range)) return;
  moved.add(range);
  range.start += delta;
  range.end += delta;
}
