import * as vscode from 'vscode';
import type { DroverContext } from './context';

export const RUN_DOCUMENT_SCHEME = 'drover-run';

type RunDocumentKind = 'record';

/** Read-only documents made from the daemon's records: a run's raw record as JSON. */
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
    if (kind !== 'record' || ids.length === 0) throw new Error(`not a Drover run document: ${uri.toString()}`);
    return `${JSON.stringify(await client.request('drover/job', { id: ids[0]! }), null, 2)}\n`;
  }

  dispose(): void {
    this.changes.dispose();
  }
}

function runDocumentUri(kind: RunDocumentKind, ids: number[]): vscode.Uri {
  const name = `Run ${ids[0]} record (read-only).json`;
  return vscode.Uri.from({ scheme: RUN_DOCUMENT_SCHEME, path: `/${name}`, query: new URLSearchParams({ view: kind, ids: ids.join(',') }).toString() });
}
