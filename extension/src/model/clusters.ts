import type { GpuView, HostView, JobView } from '../../../common/protocol';
import { formatGib } from './format';

/** `NVIDIA A100-SXM4-40GB` → `A100-SXM4-40GB`: the vendor prefix says nothing here. */
export function gpuModel(name: string): string {
  return name.replace(/^NVIDIA\s+(GeForce\s+)?/i, '');
}

export function gpuLabel(gpu: GpuView): string {
  return `GPU ${gpu.index}: ${gpuModel(gpu.name)}`;
}

/** "17.0/40 GiB · 37% · run 12", or "· other user (pid 4242)" for work Drover did not start. */
export function gpuDescription(gpu: GpuView): string {
  const parts = [`${formatGib(gpu.memoryUsedBytes)}/${formatGib(gpu.memoryTotalBytes)} GiB`];
  parts.push(gpu.utilizationPercent === null ? 'util n/a' : `${gpu.utilizationPercent}%`);
  if (gpu.jobId !== undefined) parts.push(`run ${gpu.jobId}`);
  else if (gpu.foreignPids.length > 0) parts.push(`other user (pid ${gpu.foreignPids.join(', ')})`);
  else parts.push('free');
  return parts.join(' · ');
}

/** Local host first, then SSH hosts, then anything newer (SLURM clusters), each by name. */
export function orderHosts(hosts: Iterable<HostView>): HostView[] {
  const rank = (host: HostView) => (host.kind === 'local' ? 0 : host.kind === 'ssh' ? 1 : 2);
  return [...hosts].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

export function hostDescription(host: HostView): string {
  if (host.state === 'unreachable') return `unreachable: ${host.message ?? 'no reason given'}`;
  if (host.state === 'connecting') return 'connecting…';
  if (host.kind === 'slurm') {
    const slurm = host.slurm;
    const running = slurm?.jobs.filter((job) => job.state === 'RUNNING').length ?? 0;
    const pending = slurm?.jobs.filter((job) => job.state === 'PENDING').length ?? 0;
    const nodes = slurm?.nodes.length ?? 0;
    return [`SLURM${slurm?.via ? ` via ${slurm.via}` : ''}`, `${nodes} node${nodes === 1 ? '' : 's'}`, `your jobs: ${running} running, ${pending} pending`].join(' · ');
  }
  const held = host.gpus.filter((gpu) => gpu.jobId !== undefined).length;
  const gpus = host.gpus.length === 0 ? 'no GPUs' : `${held}/${host.gpus.length} GPUs in use`;
  const kind = host.kind === 'local' ? 'this machine' : host.kind;
  return [kind, gpus, host.state === 'degraded' ? `degraded${host.message ? `: ${host.message}` : ''}` : undefined].filter(Boolean).join(' · ');
}

export function hostTooltip(host: HostView): string {
  const lines = [`${host.name} (${host.kind}): ${host.state}`];
  if (host.message) lines.push(host.message);
  if (host.os) lines.push(`${host.os}, ${host.cpus} CPUs, ${formatGib(host.memoryBytes)} GiB memory`);
  if (host.driverVersion) lines.push(`NVIDIA driver ${host.driverVersion}`);
  return lines.join('\n');
}

/** Which run holds each GPU, by host and index, from the running runs (fresher than host probes). */
export function gpuHolders(jobs: Iterable<JobView>): Map<string, Map<number, number>> {
  const holders = new Map<string, Map<number, number>>();
  for (const job of jobs) {
    if (job.state !== 'running' || job.host === undefined) continue;
    let host = holders.get(job.host);
    if (!host) holders.set(job.host, (host = new Map()));
    for (const index of job.gpus ?? []) host.set(index, job.id);
  }
  return holders;
}

/**
 * A host with its GPUs' holders taken from the running runs: the daemon reports hosts only when
 * it probes them (every few seconds), while runs start and end at once.
 */
export function withLiveHolders(host: HostView, holders: Map<string, Map<number, number>>): HostView {
  const held = holders.get(host.name);
  return {
    ...host,
    gpus: host.gpus.map((gpu) => {
      const { jobId: _probed, ...rest } = gpu;
      const holder = held?.get(gpu.index);
      return holder === undefined ? rest : { ...rest, jobId: holder };
    }),
  };
}

export type SlurmSection = 'partitions' | 'nodes' | 'jobs';

export interface SlurmRow {
  id: string;
  label: string;
  description: string;
  tooltip: string;
}

/** The rows under a SLURM cluster's section: partitions, nodes with their GRES and use, the user's queued and running jobs. */
export function slurmRows(host: HostView, section: SlurmSection): SlurmRow[] {
  const slurm = host.slurm;
  if (!slurm) return [];
  if (section === 'partitions') {
    return slurm.partitions.map((partition) => ({
      id: partition.name,
      label: `${partition.name}${partition.default ? ' (default)' : ''}`,
      description: `${partition.state} · nodes ${partition.nodes} · limit ${partition.timeLimit}`,
      tooltip: `partition ${partition.name}: ${partition.state}, nodes ${partition.nodes}, time limit ${partition.timeLimit}`,
    }));
  }
  if (section === 'nodes') {
    return slurm.nodes.map((node) => ({
      id: node.name,
      label: node.name,
      description: [node.state, `${node.cpusAllocated}/${node.cpus} CPUs`, node.gres ? `${node.gres} (used ${node.gresUsed || 'none'})` : 'no GRES'].join(' · '),
      tooltip: `${node.name}: ${node.state}\npartitions ${node.partitions.join(', ')}\n${node.cpusAllocated}/${node.cpus} CPUs, ${node.memoryAllocatedMiB}/${node.memoryMiB} MiB allocated\nGRES ${node.gres || 'none'}, in use ${node.gresUsed || 'none'}`,
    }));
  }
  return slurm.jobs
    .filter((job) => job.state === 'RUNNING' || job.state === 'PENDING' || job.state === 'COMPLETING' || job.state === 'CONFIGURING')
    .map((job) => ({
      id: job.id,
      label: `${job.id} ${job.name}`,
      description: job.state === 'PENDING' ? `pending: ${job.reason}` : `${job.state.toLowerCase()} on ${job.nodes}`,
      tooltip: `SLURM job ${job.id} (${job.name}) in ${job.partition}: ${job.state}${job.state === 'PENDING' ? `, ${job.reason}` : ''}`,
    }));
}

/** A section's title with its count. */
export function slurmSectionLabel(host: HostView, section: SlurmSection): string {
  const count = slurmRows(host, section).length;
  return section === 'jobs' ? `Your jobs (${count})` : `${section[0]!.toUpperCase()}${section.slice(1)} (${count})`;
}
