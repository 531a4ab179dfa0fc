import * as vscode from 'vscode';
import type { HostView } from '../../../common/protocol';
import { gpuDescription, gpuHolders, gpuLabel, hostDescription, hostTooltip, orderHosts, slurmRows, slurmSectionLabel, withLiveHolders, type SlurmSection } from '../model/clusters';
import type { StoreChange } from '../store/run-store';
import { daemonItem, StoreTree, type DaemonNode } from './tree-common';

export type ClusterNode =
  | DaemonNode
  | { kind: 'host'; name: string }
  | { kind: 'gpu'; host: string; index: number }
  /** A SLURM cluster's partitions, nodes or the user's jobs, and one row of them. */
  | { kind: 'slurm'; host: string; section: SlurmSection }
  | { kind: 'slurmRow'; host: string; section: SlurmSection; id: string }
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
    if (element.kind === 'host') {
      const host = this.host(element.name);
      if (host?.kind === 'slurm') return (['partitions', 'nodes', 'jobs'] as const).map((section) => ({ kind: 'slurm', host: element.name, section }));
      return (host?.gpus ?? []).map((gpu) => ({ kind: 'gpu', host: element.name, index: gpu.index }));
    }
    if (element.kind === 'slurm') {
      const host = this.host(element.host);
      return host ? slurmRows(host, element.section).map((row) => ({ kind: 'slurmRow', host: element.host, section: element.section, id: row.id })) : [];
    }
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
      case 'slurm': {
        const host = this.host(element.host);
        const item = new vscode.TreeItem(host ? slurmSectionLabel(host, element.section) : element.section, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `slurm:${element.host}:${element.section}`;
        item.iconPath = new vscode.ThemeIcon(element.section === 'partitions' ? 'layers' : element.section === 'nodes' ? 'server' : 'list-ordered');
        return item;
      }
      case 'slurmRow': {
        const host = this.host(element.host);
        const row = host && slurmRows(host, element.section).find((candidate) => candidate.id === element.id);
        const item = new vscode.TreeItem(row?.label ?? element.id);
        item.id = `slurm:${element.host}:${element.section}:${element.id}`;
        if (row) {
          item.description = row.description;
          item.tooltip = row.tooltip;
        }
        return item;
      }
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
    if (element.kind === 'gpu' || element.kind === 'slurm') return { kind: 'host', name: element.host };
    if (element.kind === 'slurmRow') return { kind: 'slurm', host: element.host, section: element.section };
    return undefined;
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
    const item = new vscode.TreeItem(name, host?.gpus.length || host?.kind === 'slurm' ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
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
