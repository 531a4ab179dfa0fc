import { CodeActionKind, type CodeAction, type Diagnostic, type Range, type TextEdit } from 'vscode-languageserver';
import { isMapNode, isSeqNode, mapEntry, type JobSpec, type Located, type SourceRange } from '../../../common/spec';
import { jobMapOf } from './navigation';
import { within, type SpecDocument } from './spec-document';

/** The kinds of action `codeActions` returns (for the server's `codeActionProvider`). */
export const CODE_ACTION_KINDS = [CodeActionKind.QuickFix, CodeActionKind.RefactorRewrite];

/** What "Add resources" inserts. */
export const DEFAULT_RESOURCES = '{ gpus: 1, cpus: 4, memory: 16GB }';

/**
 * Code actions for a range of a spec and the diagnostics the editor sent with it (those of
 * `doValidation`): "Change to 'X'" for each did-you-mean, "Remove 'b' from the needs of 'a'"
 * for each edge of a dependency cycle, and "Add resources" on a job that has none.
 */
export function codeActions(document: SpecDocument, range: Range, diagnostics: Diagnostic[]): CodeAction[] {
  const actions: CodeAction[] = [];
  const titles = new Set<string>();
  const add = (action: CodeAction) => {
    if (titles.has(action.title)) return;
    titles.add(action.title);
    actions.push(action);
  };
  for (const diagnostic of diagnostics) {
    if (diagnostic.source !== undefined && diagnostic.source !== 'drover') continue;
    const suggestion = (diagnostic.data as { suggestion?: unknown } | undefined)?.suggestion;
    if (typeof suggestion === 'string') {
      add({
        title: `Change to '${suggestion}'`,
        kind: CodeActionKind.QuickFix,
        diagnostics: [diagnostic],
        isPreferred: true,
        edit: { changes: { [document.uri]: [{ range: diagnostic.range, newText: suggestion }] } },
      });
    }
    if (diagnostic.code === 'dependency-cycle') {
      for (const edge of cycleEdges(document, diagnostic)) {
        add({
          title: `Remove '${edge.need.value}' from the needs of '${edge.job.id}'`,
          kind: CodeActionKind.QuickFix,
          diagnostics: [diagnostic],
          edit: { changes: { [document.uri]: removeNeed(document, edge.job, edge.need) } },
        });
      }
    }
  }
  const resources = addResources(document, document.offsetAt(range.start));
  if (resources) add(resources);
  return actions;
}

interface Edge {
  job: JobSpec;
  need: Located<string>;
}

/**
 * The `needs` entries that make up the cycle a diagnostic reports (it sits on the entry that
 * closes it): those the analysis named, or else a shortest way back from that entry.
 */
function cycleEdges(document: SpecDocument, diagnostic: Diagnostic): Edge[] {
  const { model, diagnostics } = document.analysis;
  if (model?.kind !== 'workflow') return [];
  const start = document.offsetAt(diagnostic.range.start);
  const end = document.offsetAt(diagnostic.range.end);
  const edgeAt = (range: SourceRange): Edge | undefined => {
    for (const job of model.jobs) {
      const need = job.needs.find((candidate) => candidate.range.start === range.start && candidate.range.end === range.end);
      if (need) return { job, need };
    }
    return undefined;
  };
  const closing = edgeAt({ start, end });
  if (!closing) return [];
  if (closing.need.value === closing.job.id) return [closing];
  const analyzed = diagnostics.find((candidate) => candidate.code === 'dependency-cycle' && candidate.range.start === start && candidate.range.end === end);
  if (analyzed?.related) {
    const edges = analyzed.related.map((related) => edgeAt(related.range));
    if (edges.every((edge) => edge !== undefined)) return edges as Edge[];
  }
  // The way from the needed job back to the one that needs it, breadth first.
  const jobsById = new Map(model.jobs.map((job) => [job.id, job]));
  const cameBy = new Map<string, Edge>();
  const queue = [closing.need.value];
  for (let index = 0; index < queue.length; index++) {
    const id = queue[index]!;
    if (id === closing.job.id) {
      const way: Edge[] = [];
      for (let at = id; at !== closing.need.value; at = cameBy.get(at)!.job.id) way.unshift(cameBy.get(at)!);
      return [closing, ...way];
    }
    for (const need of jobsById.get(id)?.needs ?? []) {
      if (need.value === closing.need.value || cameBy.has(need.value) || !jobsById.has(need.value)) continue;
      cameBy.set(need.value, { job: jobsById.get(id)!, need });
      queue.push(need.value);
    }
  }
  return [closing];
}

/** The edits that take one entry out of a job's `needs`, in flow (`[a, b]`) or block (`- a`) form. */
function removeNeed(document: SpecDocument, job: JobSpec, need: Located<string>): TextEdit[] {
  const text = document.text;
  const map = jobMapOf(document, job);
  const entry = map && mapEntry(map, 'needs');
  if (!entry || !isSeqNode(entry.value)) return [];
  const list = entry.value;
  const items = list.items;
  const index = items.findIndex((item) => item.range.start === need.range.start);
  if (index < 0) return [];
  const edit = (start: number, end: number, newText = ''): TextEdit[] => [{ range: document.rangeOf({ start, end }), newText }];
  if (text[list.range.start] === '[') {
    if (items.length === 1) return edit(list.range.start, list.range.end, '[]');
    // `a, ` before the next item, or `, b` after the previous one for the last.
    return index < items.length - 1 ? edit(items[index]!.range.start, items[index + 1]!.range.start) : edit(items[index - 1]!.range.end, items[index]!.range.end);
  }
  // A block list: its only item gives way to `[]`; any other goes with its whole line.
  if (items.length === 1) return edit(entry.keyRange.end, list.range.end, ': []');
  const item = items[index]!;
  const lineStart = text.lastIndexOf('\n', item.range.start - 1) + 1;
  const lineEnd = text.indexOf('\n', item.range.end);
  return lineEnd >= 0 ? edit(lineStart, lineEnd + 1) : edit(Math.max(0, lineStart - 1), text.length);
}

/** "Add resources" on the key (or name) of a job that has no `resources`. */
function addResources(document: SpecDocument, offset: number): CodeAction | undefined {
  const { model, source } = document.analysis;
  const root = source.root;
  if (!model || !isMapNode(root)) return undefined;
  const job = model.jobs.find((candidate) => {
    if (within(offset, candidate.idRange)) return true;
    const nameKey = model.kind === 'job' ? mapEntry(root, 'name')?.keyRange : undefined;
    return nameKey !== undefined && within(offset, nameKey);
  });
  if (!job) return undefined;
  const map = jobMapOf(document, job);
  if (!map || mapEntry(map, 'resources') || map.entries.length === 0) return undefined;
  const text = document.text;
  const last = map.entries[map.entries.length - 1]!;
  const lastEnd = Math.max(last.keyRange.end, last.value.range.end);
  let insertAt: number;
  let newText: string;
  if (text[map.range.start] === '{') {
    insertAt = lastEnd;
    newText = `, resources: ${DEFAULT_RESOURCES}`;
  } else {
    // On a line of its own after the job's last entry (past any comment that ends its line), at the job's indentation.
    const indent = ' '.repeat(document.positionAt(map.entries[0]!.keyRange.start).character);
    const lineEnd = text.indexOf('\n', lastEnd);
    insertAt = lineEnd >= 0 ? lineEnd : text.length;
    newText = `\n${indent}resources: ${DEFAULT_RESOURCES}`;
  }
  return {
    title: 'Add resources',
    kind: CodeActionKind.RefactorRewrite,
    edit: { changes: { [document.uri]: [{ range: document.rangeOf({ start: insertAt, end: insertAt }), newText }] } },
  };
}
