import * as vscode from 'vscode';
import type { MetricSeries } from '../../../common/protocol';
import { runLabel } from '../model/format';
import { groupDescription, groupRuns, runDescription, stateIcon, type RunGroup } from '../model/runs';
import type { RunStore, StoreChange } from '../store/run-store';
import { daemonItem, StoreTree, type DaemonNode, type RunNode } from './tree-common';

export type RunsNode = DaemonNode | { kind: 'group'; name: string } | RunNode;

/** Run history grouped by experiment (spec name), with state icons and each run's key metric. */
export class RunsTree extends StoreTree<RunsNode> {
  private groups = new Map<string, RunGroup>();

  constructor(
    store: RunStore,
    private readonly readMetrics: (id: number) => Promise<MetricSeries[]>,
  ) {
    super(store);
  }

  getChildren(element?: RunsNode): RunsNode[] {
    if (!element) {
      if (this.store.daemon.state !== 'connected') return [{ kind: 'daemon' }];
      const groups = groupRuns(this.store.jobs);
      this.groups = new Map(groups.map((group) => [group.name, group]));
      return groups.map((group) => ({ kind: 'group', name: group.name }));
    }
    if (element.kind !== 'group') return [];
    const runs = this.groups.get(element.name)?.runs ?? [];
    // Key metrics are read only for the runs about to be shown.
    this.store.ensureKeyMetrics(
      runs.map((run) => run.id),
      this.readMetrics,
    );
    return runs.map((run) => ({ kind: 'run', id: run.id }));
  }

  getTreeItem(element: RunsNode): vscode.TreeItem {
    if (element.kind === 'daemon') return daemonItem(this.store);
    if (element.kind === 'group') {
      const group = this.groups.get(element.name);
      const item = new vscode.TreeItem(element.name, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `group:${element.name}`;
      item.iconPath = new vscode.ThemeIcon('beaker');
      if (group) item.description = groupDescription(group);
      item.contextValue = 'runGroup';
      return item;
    }
    const job = this.store.job(element.id);
    const item = new vscode.TreeItem(job ? runLabel(job) : `run ${element.id}`);
    item.id = `run:${element.id}`;
    if (!job) return item;
    item.description = runDescription(job, this.store.keyMetric(job.id), Date.now());
    const icon = stateIcon(job.state);
    item.iconPath = new vscode.ThemeIcon(icon.id, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
    const params = Object.entries(job.params).map(([name, value]) => `${name}=${String(value)}`);
    item.tooltip = [`${runLabel(job)}: ${job.state}`, job.reason, job.command, params.length ? `params: ${params.join(', ')}` : undefined].filter(Boolean).join('\n');
    item.contextValue = job.state === 'queued' || job.state === 'running' ? `run.${job.state}` : 'run.final';
    return item;
  }

  getParent(element: RunsNode): RunsNode | undefined {
    if (element.kind !== 'run') return undefined;
    const job = this.store.job(element.id);
    return job ? { kind: 'group', name: job.specName } : undefined;
  }

  protected relevant(change: StoreChange): boolean {
    return change.reloaded || change.jobs.length > 0 || change.metrics.length > 0;
  }

  protected override ticking(): boolean {
    for (const job of this.store.jobs) if (job.state === 'running') return true;
    return false;
  }
}
