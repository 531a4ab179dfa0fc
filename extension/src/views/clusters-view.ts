import * as vscode from 'vscode';
import type { HostView } from '../../../common/protocol';
import { gpuDescription, gpuHolders, gpuLabel, hostDescription, hostTooltip, orderHosts, withLiveHolders } from '../model/clusters';
import type { StoreChange } from '../store/run-store';
import { daemonItem, StoreTree, type DaemonNode } from './tree-common';

export type ClusterNode =
  | DaemonNode
  | { kind: 'host'; name: string }
  | { kind: 'gpu'; host: string; index: number }
  /** An alias in `drover.hosts` the daemon refused to add. */
  | { kind: 'refused'; alias: string };

/** Hosts (local, SSH, SLURM) → their GPUs, with memory, load and the run holding each. */
export class ClustersTree extends StoreTree<ClusterNode> {
  getChildren(element?: ClusterNode): ClusterNode[] {
    if (!element) {
      if (this.store.daemon.state !== 'connected') return [{ kind: 'daemon' }];
      const hosts: ClusterNode[] = orderHosts(this.store.hosts).map((host) => ({ kind: 'host', name: host.name }));
      const known = new Set([...this.store.hosts].map((host) => host.name));
      for (const alias of this.store.hostRefusals.keys()) if (!known.has(alias)) hosts.push({ kind: 'refused', alias });
      return hosts;
    }
    if (element.kind === 'host') return (this.host(element.name)?.gpus ?? []).map((gpu) => ({ kind: 'gpu', host: element.name, index: gpu.index }));
    return [];
  }

  getTreeItem(element: ClusterNode): vscode.TreeItem {
    switch (element.kind) {
      case 'daemon':
        return daemonItem(this.store);
      case 'host':
        return this.hostItem(element.name);
      case 'gpu':
        return this.gpuItem(element.host, element.index);
      case 'refused': {
        const reason = this.store.hostRefusals.get(element.alias) ?? '';
        const item = new vscode.TreeItem(element.alias);
        item.id = `refused:${element.alias}`;
        item.description = `not added: ${reason}`;
        item.tooltip = `${element.alias} is in drover.hosts, but the daemon did not add it:\n${reason}`;
        item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
        item.contextValue = 'host.refused';
        return item;
      }
    }
  }

  getParent(element: ClusterNode): ClusterNode | undefined {
    return element.kind === 'gpu' ? { kind: 'host', name: element.host } : undefined;
  }

  protected relevant(change: StoreChange): boolean {
    // Runs starting and ending move GPUs between held and free.
    return change.hosts || change.reloaded || change.jobs.some((job) => job.host !== undefined);
  }

  private host(name: string): HostView | undefined {
    for (const host of this.store.hosts) if (host.name === name) return withLiveHolders(host, gpuHolders(this.store.jobs));
    return undefined;
  }

  private hostItem(name: string): vscode.TreeItem {
    const host = this.host(name);
    const item = new vscode.TreeItem(name, host?.gpus.length ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
    item.id = `host:${name}`;
    if (!host) return item;
    item.description = hostDescription(host);
    item.tooltip = hostTooltip(host);
    const icon = host.kind === 'local' ? 'vm' : host.kind === 'ssh' ? 'remote' : 'server';
    item.iconPath =
      host.state === 'unreachable'
        ? new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground'))
        : host.state === 'degraded'
          ? new vscode.ThemeIcon(icon, new vscode.ThemeColor('problemsWarningIcon.foreground'))
          : new vscode.ThemeIcon(host.state === 'connecting' ? 'loading~spin' : icon);
    item.contextValue = `host.${host.kind}`;
    return item;
  }

  private gpuItem(hostName: string, index: number): vscode.TreeItem {
    const gpu = this.host(hostName)?.gpus.find((candidate) => candidate.index === index);
    const item = new vscode.TreeItem(gpu ? gpuLabel(gpu) : `GPU ${index}`);
    item.id = `gpu:${hostName}:${index}`;
    if (!gpu) return item;
    item.description = gpuDescription(gpu);
    item.tooltip = `${gpu.name} (${gpu.uuid})\n${gpuDescription(gpu)}`;
    const busy = gpu.jobId !== undefined || gpu.foreignPids.length > 0;
    item.iconPath = new vscode.ThemeIcon('circuit-board', busy ? new vscode.ThemeColor('charts.orange') : new vscode.ThemeColor('charts.green'));
    item.contextValue = gpu.jobId !== undefined ? 'gpu.held' : 'gpu';
    return item;
  }
}
