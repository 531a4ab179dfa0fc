import type { CodeLens } from 'vscode-languageserver';
import { hasErrors, isMapNode, mapEntry, sweepSize } from '../../../common/spec';
import type { SpecDocument } from './spec-document';

/** The extension's command that submits a spec (the URI is its argument); other editors may bind it too. */
export const SUBMIT_COMMAND = 'drover.submitSpec';

/**
 * One lens above the spec: submit it, saying how many runs that makes; a spec with errors gets a
 * lens saying so instead, since the daemon would refuse it.
 */
export function codeLenses(document: SpecDocument, uri: string): CodeLens[] {
  const { model, source, diagnostics } = document.analysis;
  const root = source.root;
  if (!model || !isMapNode(root) || root.entries.length === 0) return [];
  const first = root.entries[0]!;
  const at = document.rangeOf(mapEntry(root, 'name')?.keyRange ?? first.keyRange);
  if (hasErrors(diagnostics)) {
    const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 'error').length;
    return [{ range: at, command: { title: `$(error) ${errors} error${errors === 1 ? '' : 's'} to fix before it can run`, command: '' } }];
  }
  const runs = model.jobs.reduce((total, job) => total + (job.sweep ? sweepSize(job.sweep) : 1), 0);
  const count = Number.isNaN(runs) ? 'a sweep' : `${runs.toLocaleString('en-US')} run${runs === 1 ? '' : 's'}`;
  return [{ range: at, command: { title: `$(play) Run on cluster: ${count}`, command: SUBMIT_COMMAND, arguments: [uri] } }];
}
