import type { JobState, JobView, MetricSeries } from '../../../common/protocol';
import { describeOutcome, formatElapsed, formatMetricValue } from './format';

export interface KeyMetric {
  name: string;
  value: number;
}

/** The metric a run is summed up by: the last value of its first series (the first one it reported). */
export function pickKeyMetric(series: readonly MetricSeries[]): KeyMetric | undefined {
  for (const entry of series) {
    const last = entry.points.at(-1);
    if (last) return { name: entry.name, value: last.value };
  }
  return undefined;
}

export interface RunGroup {
  /** The spec (experiment) name. */
  name: string;
  /** Newest first. */
  runs: JobView[];
  /** When the group last saw activity, for ordering groups. */
  latest: number;
}

/** History grouped by spec name; the group with the most recent run first, runs newest first. */
export function groupRuns(jobs: Iterable<JobView>): RunGroup[] {
  const groups = new Map<string, RunGroup>();
  for (const job of jobs) {
    let group = groups.get(job.specName);
    if (!group) groups.set(job.specName, (group = { name: job.specName, runs: [], latest: 0 }));
    group.runs.push(job);
    group.latest = Math.max(group.latest, job.endedAt ?? job.startedAt ?? job.createdAt);
  }
  for (const group of groups.values()) group.runs.sort((a, b) => b.id - a.id);
  return [...groups.values()].sort((a, b) => b.latest - a.latest || a.name.localeCompare(b.name));
}

export function groupDescription(group: RunGroup): string {
  const counts = new Map<JobState, number>();
  for (const run of group.runs) counts.set(run.state, (counts.get(run.state) ?? 0) + 1);
  const parts = [`${group.runs.length} run${group.runs.length === 1 ? '' : 's'}`];
  for (const state of ['running', 'queued', 'failed', 'stopped'] as const) if (counts.get(state)) parts.push(`${counts.get(state)} ${state}`);
  return parts.join(' · ');
}

/** "succeeded · loss 0.1234 · 3m04s": the state, the key metric and how long it ran. */
export function runDescription(job: JobView, metric: KeyMetric | undefined, now: number): string {
  const parts: string[] = [job.state === 'queued' || job.state === 'running' ? job.state : describeOutcome(job)];
  if (metric) parts.push(`${metric.name} ${formatMetricValue(metric.value)}`);
  if (job.startedAt !== undefined) parts.push(formatElapsed((job.endedAt ?? now) - job.startedAt));
  if (job.state === 'running' && job.gpusIdleSince !== undefined) parts.push(`GPUs idle ${formatElapsed(now - job.gpusIdleSince)}`);
  return parts.join(' · ');
}

/** A codicon and a theme color id for a run's state (strings, so this module needs no `vscode`). */
export function stateIcon(state: JobState): { id: string; color?: string } {
  switch (state) {
    case 'succeeded':
      return { id: 'pass', color: 'testing.iconPassed' };
    case 'failed':
      return { id: 'error', color: 'testing.iconFailed' };
    case 'cancelled':
      return { id: 'circle-slash', color: 'disabledForeground' };
    case 'skipped':
      return { id: 'debug-step-over', color: 'disabledForeground' };
    case 'stopped':
      return { id: 'stop-circle', color: 'charts.yellow' };
    case 'running':
      return { id: 'sync~spin', color: 'charts.blue' };
    case 'queued':
      return { id: 'clock' };
  }
}
