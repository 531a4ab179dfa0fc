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
