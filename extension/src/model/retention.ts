import { FINAL_STATES, type JobView } from '../../../common/protocol';

const DAY_MS = 86_400_000;

/** Finished runs that ended more than `days` days ago; none when `days` is 0 (keep everything). */
export function expiredRuns(jobs: Iterable<JobView>, days: number, now: number): number[] {
  if (!(days > 0)) return [];
  const cutoff = now - days * DAY_MS;
  return [...jobs].filter((job) => FINAL_STATES.includes(job.state) && (job.endedAt ?? job.createdAt) < cutoff).map((job) => job.id);
}
