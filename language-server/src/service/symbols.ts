import { FoldingRangeKind, SymbolKind, type DocumentSymbol, type FoldingRange } from 'vscode-languageserver';
import { isMapNode, mapEntry, mapValue, sweepSize, type JobSpec, type MapEntry, type MapNode, type SourceRange, type SpecNode } from '../../../common/spec';
import { jobEntryOf, jobMapOf } from './navigation';
import type { SpecDocument } from './spec-document';

/**
 * The outline: a job spec is one job (kind Function) with its `resources`, `sweep` and
 * `schedule`; a workflow (kind Class) holds a job per entry of `jobs`, each with its own.
 */
export function documentSymbols(document: SpecDocument): DocumentSymbol[] {
  const { model, source } = document.analysis;
  const root = source.root;
  if (!model || !isMapNode(root)) return [];
  if (model.kind === 'job') {
    const job = model.jobs[0]!;
    return [symbol(document, job.id, SymbolKind.Function, commandOf(job), root.range, job.idRange, jobChildren(document, root, job))];
  }
  const jobs = model.jobs.flatMap((job) => {
    const entry = jobEntryOf(document, job);
    if (!entry) return [];
    const map = jobMapOf(document, job);
    const detail = job.needs.length > 0 ? `needs ${job.needs.map((need) => need.value).join(', ')}` : commandOf(job);
    return [symbol(document, job.id, SymbolKind.Function, detail, entryRange(entry), job.idRange, map ? jobChildren(document, map, job) : [])];
  });
  const selection = mapValue(root, 'name')?.range ?? mapEntry(root, 'jobs')?.keyRange ?? root.range;
  return [symbol(document, model.name, SymbolKind.Class, model.schedule?.value, root.range, selection, jobs)];
}

function jobChildren(document: SpecDocument, map: MapNode, job: JobSpec): DocumentSymbol[] {
  const children: DocumentSymbol[] = [];
  const resources = mapEntry(map, 'resources');
  if (resources) children.push(entrySymbol(document, resources, SymbolKind.Object, describe(resources.value, true)));
  const sweep = mapEntry(map, 'sweep');
  if (sweep) {
    const parameters = isMapNode(sweep.value) ? mapValue(sweep.value, 'parameters') : undefined;
    const parameterSymbols = isMapNode(parameters) ? parameters.entries.map((entry) => entrySymbol(document, entry, SymbolKind.Variable, describe(entry.value, false))) : [];
    children.push(entrySymbol(document, sweep, SymbolKind.Array, job.sweep ? runCount(job) : undefined, parameterSymbols));
  }
  const schedule = mapEntry(map, 'schedule');
  if (schedule) children.push(entrySymbol(document, schedule, SymbolKind.Event, describe(schedule.value, false)));
  return children;
}

/** "6 runs"; a grid over an interval has no count, so it says which method it is. */
function runCount(job: JobSpec): string {
  const size = sweepSize(job.sweep!);
  if (Number.isNaN(size)) return `${job.sweep!.method} sweep`;
  return `${size.toLocaleString('en-US')} run${size === 1 ? '' : 's'}`;
}

/** A job's command (its first line) or notebook. */
function commandOf(job: JobSpec): string | undefined {
  if (job.run) return job.run.value.split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
  return job.notebook?.value;
}

/** A value in one short line: `gpus: 1, cpus: 4` for a mapping (braces only when nested), `[a, b]` for a list. */
function describe(node: SpecNode, top: boolean): string {
  if (node.kind === 'scalar') return node.value === null ? '' : String(node.value);
  if (node.kind === 'seq') return `[${node.items.map((item) => describe(item, false)).join(', ')}]`;
  const inner = node.entries.map((entry) => `${entry.key}: ${describe(entry.value, false)}`).join(', ');
  return top ? inner : `{ ${inner} }`;
}

function entrySymbol(document: SpecDocument, entry: MapEntry, kind: SymbolKind, detail: string | undefined, children: DocumentSymbol[] = []): DocumentSymbol {
  return symbol(document, entry.key, kind, detail, entryRange(entry), entry.keyRange, children);
}

/** From an entry's key to the end of its value. */
function entryRange(entry: { keyRange: SourceRange; value: SpecNode }): SourceRange {
  return { start: entry.keyRange.start, end: Math.max(entry.keyRange.end, entry.value.range.end) };
}

function symbol(document: SpecDocument, name: string, kind: SymbolKind, detail: string | undefined, range: SourceRange, selection: SourceRange, children: DocumentSymbol[]): DocumentSymbol {
  // An editor insists that the name's range lies inside the symbol's.
  const full = { start: Math.min(range.start, selection.start), end: Math.max(range.end, selection.end) };
  const result: DocumentSymbol = { name: name === '' ? '(unnamed)' : name, kind, range: document.rangeOf(full), selectionRange: document.rangeOf(selection), children };
  if (detail !== undefined && detail !== '') result.detail = detail;
  return result;
}

/**
 * Folds every mapping, list or block of text that spans lines, from the line of its key (or
 * list dash) to its last line, and every run of two or more comment lines.
 */
export function foldingRanges(document: SpecDocument): FoldingRange[] {
  const ranges: FoldingRange[] = [];
  const root = document.analysis.source.root;
  const lineOf = (offset: number) => document.positionAt(offset).line;
  /** Lines inside multi-line scalars, where a `#` is text, not a comment. */
  const textLines = new Set<number>();
  const fold = (start: number, node: SpecNode): void => {
    const startLine = lineOf(start);
    const endLine = lineOf(node.range.end);
    if (endLine > startLine) ranges.push({ startLine, endLine });
  };
  const visit = (node: SpecNode): void => {
    if (node.kind === 'scalar') {
      for (let line = lineOf(node.range.start) + 1; line <= lineOf(node.range.end); line++) textLines.add(line);
    } else if (node.kind === 'map') {
      for (const entry of node.entries) {
        fold(entry.keyRange.start, entry.value);
        visit(entry.value);
      }
    } else if (node.kind === 'seq') {
      for (const item of node.items) {
        // A dash starts the item: fold a multi-line item (a job of a list, say) from there.
        if (item.kind !== 'scalar') fold(item.range.start, item);
        visit(item);
      }
    }
  };
  if (root) visit(root);

  const lines = document.text.split('\n');
  let blockStart = -1;
  const closeBlock = (end: number) => {
    if (blockStart >= 0 && end - blockStart >= 1) ranges.push({ startLine: blockStart, endLine: end, kind: FoldingRangeKind.Comment });
    blockStart = -1;
  };
  lines.forEach((line, index) => {
    const isComment = line.trimStart().startsWith('#') && !textLines.has(index);
    if (isComment && blockStart < 0) blockStart = index;
    else if (!isComment) closeBlock(index - 1);
  });
  closeBlock(lines.length - 1);
  // One range per start line (an editor keeps only one): the widest.
  ranges.sort((a, b) => a.startLine - b.startLine || b.endLine - a.endLine);
  return ranges.filter((range, index) => index === 0 || ranges[index - 1]!.startLine !== range.startLine);
}
