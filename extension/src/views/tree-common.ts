import * as vscode from 'vscode';
import type { RunStore, StoreChange } from '../store/run-store';

/** The item a tree shows instead of its content while no daemon answers. */
export interface DaemonNode {
  kind: 'daemon';
}

export interface RunNode {
  kind: 'run';
  id: number;
}

export function daemonItem(store: RunStore): vscode.TreeItem {
  const { state, reason } = store.daemon;
  if (state === 'connecting') {
    const item = new vscode.TreeItem('Connecting to the Drover daemon…');
    item.iconPath = new vscode.ThemeIcon('loading~spin');
    return item;
  }
  const item = new vscode.TreeItem('Daemon not running: click to start it');
  // The reason is long (it says how to start the daemon from a shell): the tooltip holds it.
  item.tooltip = `${reason ?? 'The Drover daemon does not answer.'}\nClick to start it (runs already started keep going either way).`;
  item.iconPath = new vscode.ThemeIcon('debug-disconnect', new vscode.ThemeColor('problemsWarningIcon.foreground'));
  item.command = { command: 'drover.startDaemon', title: 'Start Daemon' };
  item.contextValue = 'daemonStopped';
  return item;
}

/**
 * A tree that re-renders from the store: store changes arrive in bursts (a sweep submits many
 * runs), so they are coalesced into one refresh; and while visible, time-based descriptions
 * (elapsed times) tick.
 */
export abstract class StoreTree<T> implements vscode.TreeDataProvider<T>, vscode.Disposable {
  private readonly changes = new vscode.EventEmitter<T | undefined>();
  readonly onDidChangeTreeData = this.changes.event;
  private pending: NodeJS.Timeout | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(protected readonly store: RunStore) {
    this.subscriptions.push(store.onDidChange((change) => this.relevant(change) && this.refresh()));
  }

  abstract getTreeItem(element: T): vscode.TreeItem;
  abstract getChildren(element?: T): T[];
  protected abstract relevant(change: StoreChange): boolean;
  /** Whether something shown changes with time alone (an elapsed time). */
  protected ticking(): boolean {
    return false;
  }

  /** Ticks once a second while `view` is visible and something shown moves with time. */
  attach(view: vscode.TreeView<T>): void {
    const update = () => {
      clearInterval(this.ticker);
      this.ticker = undefined;
      if (view.visible) this.ticker = setInterval(() => this.ticking() && this.changes.fire(undefined), 1000);
    };
    this.subscriptions.push(view.onDidChangeVisibility(update));
    update();
  }

  refresh(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.changes.fire(undefined);
    }, 50);
  }

  dispose(): void {
    clearTimeout(this.pending);
    clearInterval(this.ticker);
    this.changes.dispose();
    for (const subscription of this.subscriptions.splice(0)) subscription.dispose();
  }
}
