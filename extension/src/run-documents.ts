import * as vscode from 'vscode';
import type { DroverContext } from './context';
import { compareMarkdown, recordMarkdown } from './model/records';

export const RUN_DOCUMENT_SCHEME = 'drover-run';

type RunDocumentKind = 'dashboard' | 'record' | 'compare';

/**
 * Read-only documents made from the daemon's records: a run's summary (what "Open in
 * Dashboard" shows until the dashboard exists, and its title says so), its raw record as JSON,
 * and a side-by-side comparison of runs.
 */
export class RunDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changes = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changes.event;

  constructor(private readonly ctx: DroverContext) {}

  async open(kind: RunDocumentKind, ids: number[]): Promise<vscode.TextEditor> {
    const uri = runDocumentUri(kind, ids);
    // Opened again: read the record afresh rather than show the cached text.
    this.changes.fire(uri);
    const document = await vscode.workspace.openTextDocument(uri);
    return vscode.window.showTextDocument(document, { preview: true });
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const query = new URLSearchParams(uri.query);
    const kind = query.get('view') as RunDocumentKind;
    const ids = (query.get('ids') ?? '').split(',').map(Number).filter(Number.isInteger);
    const client = this.ctx.daemon.client();
    const runs = await Promise.all(ids.map(async (id) => ({ job: await client.request('drover/job', { id }), metrics: await client.request('drover/metrics', { id }) })));
    if (kind === 'record') return `${JSON.stringify(runs[0]!.job, null, 2)}\n`;
    if (kind === 'compare') return compareMarkdown(runs);
    return recordMarkdown(runs[0]!.job, runs[0]!.metrics);
  }

  dispose(): void {
    this.changes.dispose();
  }
}

function runDocumentUri(kind: RunDocumentKind, ids: number[]): vscode.Uri {
  const name =
    kind === 'compare'
      ? `Compare runs ${ids.join(', ')} (no dashboard yet, read-only).md`
      : kind === 'record'
        ? `Run ${ids[0]} record (read-only).json`
        : `Run ${ids[0]} (no dashboard yet, record read-only).md`;
  return vscode.Uri.from({ scheme: RUN_DOCUMENT_SCHEME, path: `/${name}`, query: new URLSearchParams({ view: kind, ids: ids.join(',') }).toString() });
}
