import * as vscode from 'vscode';
import { runLabel } from '../model/format';
import { queueEntries, type QueueEntry } from '../model/queue';
import type { StoreChange } from '../store/run-store';
import { daemonItem, StoreTree, type DaemonNode, type RunNode } from './tree-common';

export type QueueNode = DaemonNode | RunNode;

/** Pending and running runs in scheduling order, with position, resources and why each waits. */
export class QueueTree extends StoreTree<QueueNode> {
  private entries = new Map<number, QueueEntry>();

  getChildren(element?: QueueNode): QueueNode[] {
    if (element) return [];
    if (this.store.daemon.state !== 'connected') return [{ kind: 'daemon' }];
    const entries = queueEntries(this.store.jobs, Date.now());
    this.entries = new Map(entries.map((entry) => [entry.job.id, entry]));
    return entries.map((entry) => ({ kind: 'run', id: entry.job.id }));
  }

  getTreeItem(element: QueueNode): vscode.TreeItem {
    if (element.kind === 'daemon') return daemonItem(this.store);
    const entry = this.entries.get(element.id);
    const job = entry?.job ?? this.store.job(element.id);
    const item = new vscode.TreeItem(job ? runLabel(job) : `run ${element.id}`);
    item.id = `queue:${element.id}`;
    if (!job || !entry) return item;
    item.description = entry.description;
    item.tooltip = entry.tooltip;
    item.iconPath = job.state === 'running' ? new vscode.ThemeIcon('sync~spin', new vscode.ThemeColor('charts.blue')) : new vscode.ThemeIcon('clock');
    item.contextValue = `run.${job.state}`;
    return item;
  }

  protected relevant(change: StoreChange): boolean {
    return change.reloaded || change.jobs.length > 0;
  }

  protected override ticking(): boolean {
    return this.entries.size > 0;
  }
}
