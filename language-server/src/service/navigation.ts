import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Location, Position, Range, TextEdit, WorkspaceEdit } from 'vscode-languageserver';
import {
  findExpressions,
  isMapNode,
  mapEntry,
  mapValue,
  type Expression,
  type JobSpec,
  type Located,
  type MapNode,
  type SourceRange,
  type SpecNode,
} from '../../../common/spec';
import { within, type SpecDocument } from './spec-document';

/** What a job name must look like (the schema's `propertyNames` for `jobs`). */
export const JOB_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Plain words YAML (core schema) reads as something other than a string. */
const NON_STRING_WORDS = /^(true|True|TRUE|false|False|FALSE|null|Null|NULL)$/;

const SCRIPT_EXTENSION = /\.(py|sh|ipynb|R|r)$/;
const INTERPRETER = /^(python[\d.]*|pypy3?|bash|sh|zsh|dash|Rscript|torchrun|deepspeed|accelerate|papermill)$/;

export interface DefinitionOptions {
  /** Whether a file exists (default: `fs.existsSync`); a script or notebook is only offered when it does. */
  fileExists?: (file: string) => boolean;
}

// ---------------------------------------------------------------------------------------------
// Go to definition

/**
 * Where the thing under the cursor is defined: a `needs` entry's job, the job (or its output)
 * in `${{ jobs.X.outputs.Y }}`, the param in `${{ params.Z }}`, or the script or notebook a job
 * runs (resolved against the spec's folder and `workdir`).
 */
export function findDefinition(document: SpecDocument, position: Position, options: DefinitionOptions = {}): Location[] {
  const model = document.analysis.model;
  if (!model) return [];
  const offset = document.offsetAt(position);
  const here = (range: SourceRange): Location[] => [{ uri: document.uri, range: document.rangeOf(range) }];
  const jobsById = new Map(model.jobs.map((job) => [job.id, job]));

  if (model.kind === 'workflow') {
    for (const job of model.jobs) {
      const need = job.needs.find((candidate) => within(offset, candidate.range));
      if (need) {
        const target = jobsById.get(need.value);
        return target ? here(nameRange(document.text, target.idRange)) : [];
      }
    }
  }

  for (const { expression, job } of expressionsWithJobs(document)) {
    if (!within(offset, expression.range) || !expression.path) continue;
    const { path: parts } = expression;
    const segments = segmentRanges(expression);
    if (parts[0] === 'jobs' && parts.length >= 2 && model.kind === 'workflow') {
      const target = jobsById.get(parts[1]!);
      if (!target) return [];
      if (parts.length >= 4 && parts[2] === 'outputs' && within(offset, segments[3]!)) {
        const targetMap = jobMapOf(document, target);
        const outputs = targetMap && mapValue(targetMap, 'outputs');
        const output = isMapNode(outputs) ? mapEntry(outputs, parts[3]!) : undefined;
        if (output) return here(nameRange(document.text, output.keyRange));
      }
      return here(nameRange(document.text, target.idRange));
    }
    if (parts[0] === 'params' && parts.length === 2) {
      const range = paramDefinition(document, job, parts[1]!);
      return range ? here(nameRange(document.text, range)) : [];
    }
    return [];
  }

  for (const job of model.jobs) {
    let file: string | undefined;
    if (job.notebook && within(offset, job.notebook.range)) file = job.notebook.value.trim();
    else if (job.run && within(offset, job.run.range)) file = scriptAt(document.text, job.run, offset);
    if (file === undefined) continue;
    const resolved = resolveFile(document.uri, job.workdir, file);
    const exists = options.fileExists ?? fs.existsSync;
    return resolved && exists(resolved) ? [{ uri: pathToFileURL(resolved).href, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }] : [];
  }
  return [];
}

/**
 * Where a parameter a job reads is defined, in the order values win when a run is planned:
 * the job's sweep, its own `params`, then the workflow's `params`.
 */
function paramDefinition(document: SpecDocument, job: JobSpec | undefined, name: string): SourceRange | undefined {
  const swept = job?.sweep?.parameters.find((parameter) => parameter.name === name);
  if (swept) return swept.range;
  const maps: (MapNode | undefined)[] = [job && jobMapOf(document, job)];
  const root = document.analysis.source.root;
  if (document.analysis.model?.kind === 'workflow' && isMapNode(root)) maps.push(root);
  for (const map of maps) {
    const params = map && mapValue(map, 'params');
    const entry = isMapNode(params) ? mapEntry(params, name) : undefined;
    if (entry) return entry.keyRange;
  }
  return undefined;
}

/**
 * The script a `run` command runs, when the cursor is on it: in each command of the line
 * (split at `&&`, `||`, `;`, `|` and line breaks), the first word with a script extension after
 * an interpreter (`python3 -u train.py`), or the command itself (`./prepare.sh`).
 */
function scriptAt(text: string, run: Located<string>, offset: number): string | undefined {
  let start = run.range.start;
  const first = text[start];
  // A block scalar's header (`|`, `>-`…) is not part of the command.
  if (first === '|' || first === '>') {
    const lineEnd = text.indexOf('\n', start);
    if (lineEnd < 0 || lineEnd >= run.range.end) return undefined;
    start = lineEnd + 1;
  }
  const source = text.slice(start, run.range.end);
  const pattern = /(&&|\|\||[;|&\n])|([^\s;&|'"`()]+)/g;
  let command: { word: string; start: number; end: number }[] = [];
  const commands = [command];
  for (let match = pattern.exec(source); match; match = pattern.exec(source)) {
    if (match[1] !== undefined) commands.push((command = []));
    else command.push({ word: match[2]!, start: start + match.index, end: start + match.index + match[2]!.length });
  }
  for (const words of commands) {
    let index = 0;
    while (index < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[index]!.word)) index++; // FOO=bar python …
    const head = words[index];
    if (!head) continue;
    let script: (typeof words)[number] | undefined;
    if (INTERPRETER.test(path.posix.basename(head.word))) {
      for (const word of words.slice(index + 1)) {
        if (word.word === '-m' || word.word === '-c') break;
        if (SCRIPT_EXTENSION.test(word.word)) {
          script = word;
          break;
        }
      }
    } else if (SCRIPT_EXTENSION.test(head.word)) script = head;
    if (script && offset >= script.start && offset <= script.end && !script.word.includes('${{')) return script.word;
  }
  return undefined;
}

/** A file named in a spec, as an absolute path: relative to the spec's folder and the job's workdir. */
function resolveFile(uri: string, workdir: string, file: string): string | undefined {
  if (file === '' || file.includes('${{') || workdir.includes('${{') || file.startsWith('~')) return undefined;
  let specFile: string;
  try {
    specFile = fileURLToPath(uri);
  } catch {
    return undefined;
  }
  return path.resolve(path.dirname(specFile), workdir, file);
}

// ---------------------------------------------------------------------------------------------
// References and rename

/** The workflow job named under the cursor, and the range of that name there. */
interface JobNameAt {
  id: string;
  range: SourceRange;
  defined: boolean;
}

function jobNameAt(document: SpecDocument, offset: number): JobNameAt | undefined {
  const model = document.analysis.model;
  if (model?.kind !== 'workflow') return undefined;
  const ids = new Set(model.jobs.map((job) => job.id));
  const text = document.text;
  for (const job of model.jobs) {
    if (within(offset, job.idRange)) return { id: job.id, range: nameRange(text, job.idRange), defined: true };
  }
  for (const job of model.jobs) {
    for (const need of job.needs) {
      if (within(offset, need.range)) return { id: need.value, range: nameRange(text, need.range), defined: ids.has(need.value) };
    }
  }
  for (const expression of allExpressions(document)) {
    const parts = expression.path;
    if (parts?.[0] !== 'jobs' || parts.length < 2) continue;
    const segments = segmentRanges(expression);
    if (offset >= expression.range.start && offset <= segments[1]!.end) return { id: parts[1]!, range: segments[1]!, defined: ids.has(parts[1]!) };
  }
  return undefined;
}

/** Every place a workflow job's name is written: its key, `needs` entries and `jobs.X` in expressions. */
function jobNameOccurrences(document: SpecDocument, id: string, includeDeclaration: boolean): SourceRange[] {
  const model = document.analysis.model!;
  const ranges: SourceRange[] = [];
  const text = document.text;
  for (const job of model.jobs) {
    if (job.id === id && includeDeclaration) ranges.push(nameRange(text, job.idRange));
    for (const need of job.needs) if (need.value === id) ranges.push(nameRange(text, need.range));
  }
  for (const expression of allExpressions(document)) {
    if (expression.path?.[0] === 'jobs' && expression.path[1] === id) ranges.push(segmentRanges(expression)[1]!);
  }
  return ranges.sort((a, b) => a.start - b.start);
}

/** For a workflow job under the cursor (its key, a `needs` entry or `jobs.X`): where it is named. */
export function findReferences(document: SpecDocument, position: Position, includeDeclaration: boolean): Location[] {
  const at = jobNameAt(document, document.offsetAt(position));
  if (!at) return [];
  return jobNameOccurrences(document, at.id, includeDeclaration).map((range) => ({ uri: document.uri, range: document.rangeOf(range) }));
}

/** The name a rename would change, when the cursor is on a workflow job's name; null elsewhere. */
export function prepareRename(document: SpecDocument, position: Position): Range | null {
  const at = jobNameAt(document, document.offsetAt(position));
  return at?.defined ? document.rangeOf(at.range) : null;
}

/** Renames a workflow job: its key, every `needs` entry naming it and every `jobs.X` in an expression. */
export function doRename(document: SpecDocument, position: Position, newName: string): WorkspaceEdit | { error: string } {
  const at = jobNameAt(document, document.offsetAt(position));
  if (!at) return { error: "only a workflow job can be renamed: put the cursor on a job's key, a needs entry or jobs.NAME in an expression" };
  if (!at.defined) return { error: `there is no job '${at.id}' in this workflow to rename` };
  if (!JOB_NAME_PATTERN.test(newName)) {
    return { error: `'${newName}' is not a valid job name: it starts with a letter or '_' and holds only letters, digits, '_' and '-'` };
  }
  if (NON_STRING_WORDS.test(newName)) return { error: `'${newName}' cannot name a job: YAML reads it as ${/null/i.test(newName) ? 'null' : 'a boolean'}, not a name` };
  if (newName === at.id) return { changes: { [document.uri]: [] } };
  if (document.analysis.model!.jobs.some((job) => job.id === newName)) return { error: `this workflow already has a job named '${newName}'` };
  const edits: TextEdit[] = jobNameOccurrences(document, at.id, true).map((range) => ({ range: document.rangeOf(range), newText: newName }));
  return { changes: { [document.uri]: edits } };
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the other services

/** Every `${{ }}` in the spec's string values (keys excluded), workflow-level ones and sweeps included, in order. */
export function allExpressions(document: SpecDocument): Expression[] {
  return expressionsWithJobs(document).map((found) => found.expression);
}

/** Each expression with the job whose mapping holds it (none for workflow-level values). */
function expressionsWithJobs(document: SpecDocument): { expression: Expression; job: JobSpec | undefined }[] {
  const { text, analysis } = document;
  const { root } = analysis.source;
  const model = analysis.model;
  const found: { expression: Expression; job: JobSpec | undefined }[] = [];
  const visit = (node: SpecNode, job: JobSpec | undefined): void => {
    if (node.kind === 'map') for (const entry of node.entries) visit(entry.value, job);
    else if (node.kind === 'seq') for (const item of node.items) visit(item, job);
    else if (typeof node.value === 'string' && text.slice(node.range.start, node.range.end).includes('${{')) {
      for (const expression of findExpressions(text, node.range.start, node.range.end)) {
        // An expression never spans lines.
        if (!text.slice(expression.range.start, expression.range.end).includes('\n')) found.push({ expression, job });
      }
    }
  };
  if (!root || !model) return found;
  if (model.kind === 'job' || !isMapNode(root)) {
    visit(root, model.jobs[0]);
    return found;
  }
  for (const entry of root.entries) {
    if (entry.key !== 'jobs' || !isMapNode(entry.value)) visit(entry.value, undefined);
    else for (const jobEntry of entry.value.entries) visit(jobEntry.value, model.jobs.find((job) => job.idRange.start === jobEntry.keyRange.start));
  }
  return found;
}

/** The range of each dotted segment of an expression's path (which holds no blanks). */
export function segmentRanges(expression: Expression): SourceRange[] {
  const ranges: SourceRange[] = [];
  let start = expression.pathRange.start;
  for (const segment of expression.path ?? []) {
    ranges.push({ start, end: start + segment.length });
    start += segment.length + 1;
  }
  return ranges;
}

/** A scalar's range without its quotes, if it is quoted. */
export function nameRange(text: string, range: SourceRange): SourceRange {
  const first = text[range.start];
  if (range.end - range.start >= 2 && (first === '"' || first === "'") && text[range.end - 1] === first) return { start: range.start + 1, end: range.end - 1 };
  return range;
}

/** The mapping of a job in the tree: the root for a single-job spec, its value under `jobs` in a workflow. */
export function jobMapOf(document: SpecDocument, job: JobSpec): MapNode | undefined {
  const root = document.analysis.source.root;
  if (!isMapNode(root)) return undefined;
  if (document.analysis.model?.kind === 'job') return root;
  const value = jobEntryOf(document, job)?.value;
  return isMapNode(value) ? value : undefined;
}

/** A workflow job's entry under `jobs` (its key and value). */
export function jobEntryOf(document: SpecDocument, job: JobSpec): { keyRange: SourceRange; value: SpecNode } | undefined {
  const root = document.analysis.source.root;
  const jobs = isMapNode(root) ? mapValue(root, 'jobs') : undefined;
  if (!isMapNode(jobs)) return undefined;
  const entry = jobs.entries.find((candidate) => candidate.keyRange.start === job.idRange.start);
  return entry;
}
