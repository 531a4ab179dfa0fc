import * as vscode from 'vscode';
import type { RenderReport } from '../../common/protocol';
import { registerCommand, registerCommands } from './commands';
import { forgetUnsavedChoiceWhenDisabled } from './commands/submit-commands';
import { DroverContext } from './context';
import { registerHostSync } from './host-sync';
import { NotebookRuns, notebookCommands } from './notebook/notebook-runs';
import { registerNotifications } from './notifications';
import { registerRetention } from './retention';
import { StatusBar } from './status-bar';
import type { RunStore } from './store/run-store';
import { ClustersTree } from './views/clusters-view';
import { QueueTree } from './views/queue-view';
import { RunsTree } from './views/runs-view';

/** What the extension hands to whoever asks (`extensions.getExtension(...).exports`): hooks for its tests. */
export interface DroverApi {
  /** From the first line of its bundle to the end of activate(): what activation cost this window. */
  activationMs: number | undefined;
  test: {
    store: RunStore;
    trees: { clusters: ClustersTree; queue: QueueTree; runs: RunsTree };
    statusBarText(): string;
    /** All that the log terminal of a run was given to show; undefined when none is open. */
    terminalOutput(jobId: number): string | undefined;
    /** The notebook runs: each cell's status bar text (what the user sees under the cell). */
    notebooks: NotebookRuns;
    /** What a dashboard panel's page last said it shows (by the key its command returned); the open panels' keys. */
    dashboards: { lastReport(key: string): RenderReport | undefined; openKeys(): string[] };
  };
}

let current: DroverContext | undefined;

/** Wires everything and returns at once: the daemon and the language server connect in the background. */
export function activate(extension: vscode.ExtensionContext): DroverApi {
  const ctx = new DroverContext(extension);
  current = ctx;
  const clusters = ctx.own(new ClustersTree(ctx.store));
  const queue = ctx.own(new QueueTree(ctx.store));
  const runs = ctx.own(new RunsTree(ctx.store, (id) => ctx.daemon.client().request('drover/metrics', { id })));
  clusters.attach(ctx.own(vscode.window.createTreeView('drover.clusters', { treeDataProvider: clusters, showCollapseAll: true })));
  queue.attach(ctx.own(vscode.window.createTreeView('drover.queue', { treeDataProvider: queue, canSelectMany: true })));
  runs.attach(ctx.own(vscode.window.createTreeView('drover.runs', { treeDataProvider: runs, canSelectMany: true, showCollapseAll: true })));
  const statusBar = ctx.own(new StatusBar(ctx.store));
  registerCommands(ctx);
  const notebooks = ctx.own(new NotebookRuns(ctx));
  for (const [id, [handler, doing]] of Object.entries(notebookCommands(notebooks))) registerCommand(ctx, id, handler, doing);
  ctx.own(registerNotifications(ctx));
  ctx.own(forgetUnsavedChoiceWhenDisabled(ctx));
  registerHostSync(ctx);
  registerRetention(ctx);
  ctx.own(
    vscode.workspace.onDidChangeConfiguration((event) => {
      // A different daemon: everything shown is read again from it.
      if (event.affectsConfiguration('drover.daemon.socket')) ctx.daemon.reconnect();
    }),
  );
  // The views' welcome text (package.json viewsWelcome) shows only once the daemon has answered.
  let shownState = '';
  ctx.own(
    ctx.store.onDidChange(() => {
      if (ctx.store.daemon.state === shownState) return;
      shownState = ctx.store.daemon.state;
      void vscode.commands.executeCommand('setContext', 'drover.daemonState', shownState);
    }),
  );
  ctx.start();
  // Set by a banner at the top of dist/extension.js (webpack.config.js), before any module loads.
  const bundleStart = (globalThis as { __droverBundleStart?: number }).__droverBundleStart;
  return {
    activationMs: bundleStart === undefined ? undefined : performance.now() - bundleStart,
    test: {
      store: ctx.store,
      trees: { clusters, queue, runs },
      statusBarText: () => statusBar.text,
      terminalOutput: (jobId) => ctx.logs.output(jobId),
      notebooks,
      dashboards: { lastReport: (key) => ctx.dashboards.lastReport(key), openKeys: () => ctx.dashboards.openKeys },
    },
  };
}

export async function deactivate(): Promise<void> {
  const ctx = current;
  current = undefined;
  await ctx?.dispose();
}
