import type { JobView } from '../../../common/protocol';
import { formatElapsed, formatResources } from './format';

export interface QueueEntry {
  job: JobView;
  /** 1-based place among the queued runs; running runs have none. */
  position?: number;
  description: string;
  /** Why the run waits (or, when running, where): the tree item's tooltip. */
  tooltip: string;
}

/**
 * Running runs first (oldest start first), then queued ones in the order the daemon's scheduler
 * considers them: higher priority first, then first come, first served.
 */
export function queueOrder(jobs: Iterable<JobView>): JobView[] {
  const active = [...jobs].filter((job) => job.state === 'queued' || job.state === 'running');
  return active.sort((a, b) => {
    if (a.state !== b.state) return a.state === 'running' ? -1 : 1;
    if (a.state === 'running') return (a.startedAt ?? a.createdAt) - (b.startedAt ?? b.createdAt) || a.id - b.id;
    return b.priority - a.priority || a.id - b.id;
  });
}

export function queueEntries(jobs: Iterable<JobView>, now: number): QueueEntry[] {
  let position = 0;
  return queueOrder(jobs).map((job) => {
    const resources = formatResources(job.resources);
    const priority = job.priority !== 0 ? ` · priority ${job.priority}` : '';
    if (job.state === 'running') {
      const where = job.host ? ` on ${job.host}${job.gpus?.length ? ` GPU ${job.gpus.join(',')}` : ''}` : '';
      const attempt = job.attempts > 1 ? ` (attempt ${job.attempts})` : '';
      const idle = job.gpusIdleSince !== undefined ? formatElapsed(now - job.gpusIdleSince) : undefined;
      return {
        job,
        description: `running${where} · ${formatElapsed(now - (job.startedAt ?? job.createdAt))}${attempt}${idle ? ` · GPUs idle ${idle}` : ''}`,
        tooltip: `Running${where}${attempt}\nAsked for ${resources}${idle ? `\nIts GPUs have been at ~0% utilization for ${idle}` : ''}`,
      };
    }
    position += 1;
    return {
      job,
      position,
      description: `#${position} · ${resources} · waiting ${formatElapsed(now - job.createdAt)}${priority}`,
      tooltip: `Pending: ${job.reason ?? 'waiting for the scheduler'}\nAsked for ${resources}`,
    };
  });
}
