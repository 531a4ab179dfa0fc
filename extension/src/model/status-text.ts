import type { HostView, JobView } from '../../../common/protocol';
import { gpuHolders, withLiveHolders } from './clusters';

export type DaemonState = 'connecting' | 'connected' | 'stopped';

/** "Drover: 3 running · 5 queued · 4/6 GPUs": GPUs held by Drover's runs out of all GPUs it can see. */
export function statusText(daemon: DaemonState, jobs: readonly JobView[], hosts: Iterable<HostView>): string {
  if (daemon === 'stopped') return 'Drover: daemon stopped';
  if (daemon === 'connecting') return 'Drover: connecting…';
  let running = 0;
  let queued = 0;
  for (const job of jobs) {
    if (job.state === 'running') running += 1;
    else if (job.state === 'queued') queued += 1;
  }
  let held = 0;
  let total = 0;
  const holders = gpuHolders(jobs);
  for (const host of [...hosts].map((entry) => withLiveHolders(entry, holders))) {
    if (host.state === 'unreachable') continue;
    total += host.gpus.length;
    held += host.gpus.filter((gpu) => gpu.jobId !== undefined).length;
  }
  return `Drover: ${running} running · ${queued} queued · ${held}/${total} GPUs`;
}
