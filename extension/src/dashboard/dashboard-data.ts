import type { DaemonClient } from '../../../common/node/daemon-client';
import { overlayPointBudget, toColumns, type DashboardTarget, type GpuSamples, type GpuSampleSeries, type HostView, type JobView, type MetricSummary, type SeriesColumns, type XAxis } from '../../../common/protocol';

/** The most points per series a zoomed chart asks for (fewer when it overlays many runs: overlayPointBudget). */
export const MAX_POINTS = 2000;

/** Utilization points per GPU the GPU timeline asks for: about what its lanes have pixels for. */
export const TIMELINE_POINTS = 600;
/** What the GPU timeline shows before any run held a GPU. */
const EMPTY_TIMELINE_MS = 60 * 60_000;

export function targetKey(target: DashboardTarget): string {
  switch (target.kind) {
    case 'experiment':
      return `experiment:${target.specName}`;
    case 'run':
      return `run:${target.jobId}`;
    case 'compare':
      return `compare:${[...target.jobIds].sort((a, b) => a - b).join(',')}`;
    case 'gpus':
      return 'gpus';
  }
}

export function targetTitle(target: DashboardTarget, jobs: readonly JobView[]): string {
  switch (target.kind) {
    case 'experiment':
      return `Experiment ${target.specName}`;
    case 'run': {
      const job = jobs.find((candidate) => candidate.id === target.jobId);
      return job ? `Run ${job.key} #${job.id}` : `Run ${target.jobId}`;
    }
    case 'compare':
      return `Compare runs ${target.jobIds.join(', ')}`;
    case 'gpus':
      return 'GPU timeline';
  }
}

/** Whether a run belongs on a panel (an experiment gains runs as they are submitted). */
export function targetIncludes(target: DashboardTarget, job: JobView): boolean {
  switch (target.kind) {
    case 'experiment':
      return job.specName === target.specName;
    case 'run':
      return job.id === target.jobId;
    case 'compare':
      return target.jobIds.includes(job.id);
    case 'gpus':
      return job.gpus !== undefined && job.gpus.length > 0;
  }
}

/** A checked target from a restored panel's state (it was written by an older webview, perhaps). */
export function parseTarget(value: unknown): DashboardTarget | undefined {
  const target = value as DashboardTarget | undefined;
  if (typeof target !== 'object' || target === null) return undefined;
  if (target.kind === 'experiment' && typeof target.specName === 'string') return { kind: 'experiment', specName: target.specName };
  if (target.kind === 'run' && Number.isInteger(target.jobId)) return { kind: 'run', jobId: target.jobId };
  if (target.kind === 'compare' && Array.isArray(target.jobIds) && target.jobIds.every(Number.isInteger)) return { kind: 'compare', jobIds: target.jobIds };
  if (target.kind === 'gpus') return { kind: 'gpus' };
  return undefined;
}

/** Runs per `drover/runMetrics` request: the daemon answers others' requests between them. */
const RUNS_PER_REQUEST = 25;

/**
 * Runs' metrics as the charts take them, downsampled by the daemon (to `maxPoints` per series,
 * within `range` when given), a batch of runs per request.
 */
export async function readSeries(
  client: DaemonClient,
  jobIds: readonly number[],
  options: { names?: string[]; axis?: XAxis; range?: { min: number; max: number }; maxPoints?: number } = {},
): Promise<SeriesColumns[]> {
  const result: SeriesColumns[] = [];
  for (let index = 0; index < jobIds.length; index += RUNS_PER_REQUEST) {
    const runs = await client.request('drover/runMetrics', {
      ids: jobIds.slice(index, index + RUNS_PER_REQUEST),
      maxPoints: options.maxPoints ?? MAX_POINTS,
      ...(options.names && { names: options.names }),
      ...(options.range && { range: { axis: options.axis ?? 'step', ...options.range } }),
    });
    for (const run of runs) for (const entry of run.series) result.push(toColumns(run.jobId, entry.name, entry.points, entry.total));
  }
  return result;
}

/** Each metric of these runs in brief (count, last, lowest, highest), read from the daemon's tiers without their points. */
export async function readSummaries(client: DaemonClient, jobIds: readonly number[]): Promise<MetricSummary[]> {
  return jobIds.length ? client.request('drover/metricSummaries', { ids: [...jobIds] }) : [];
}

/**
 * What a dashboard's first message holds of the metrics: every run's summaries (the runs table),
 * and the series of the `charted` runs only (those the charts overlay), at the share of the
 * charts' point budget each gets.
 */
export async function readDashboardMetrics(client: DaemonClient, jobIds: readonly number[], charted: readonly number[]): Promise<{ series: SeriesColumns[]; summaries: MetricSummary[] }> {
  const [series, summaries] = await Promise.all([readSeries(client, charted, { maxPoints: overlayPointBudget(charted.length) }), readSummaries(client, jobIds)]);
  return { series, summaries };
}

/**
 * The GPU timeline's utilization: each GPU's samples from the first run's start (the last hour
 * when no run held a GPU yet) to now, thinned by the daemon. Undefined from a daemon that does
 * not sample (an older one): the page says utilization is not sampled.
 */
export async function readGpuSamples(client: DaemonClient, jobs: readonly JobView[], now: number): Promise<GpuSamples | undefined> {
  const starts = jobs.flatMap((job) => (job.gpus?.length && job.startedAt !== undefined ? [job.startedAt] : []));
  const from = starts.length ? Math.min(...starts) : now - EMPTY_TIMELINE_MS;
  try {
    const { intervalMs, series } = await client.request('drover/gpuSamples', { from, maxPoints: TIMELINE_POINTS });
    return { intervalMs, series };
  } catch {
    return undefined;
  }
}

/**
 * The GPU timeline, live: each host update the daemon sends carries a probe, which is a sample
 * of each of its GPUs (the daemon stored the same). Returns those newer than `sampledUpTo` (the
 * newest sample the page has, per host), and moves it on.
 */
export function newSamples(hosts: Iterable<HostView>, sampledUpTo: Map<string, number>): GpuSampleSeries[] {
  const series: GpuSampleSeries[] = [];
  for (const host of hosts) {
    if (!host.gpus.length || host.updatedAt <= (sampledUpTo.get(host.name) ?? -Infinity)) continue;
    sampledUpTo.set(host.name, host.updatedAt);
    for (const gpu of host.gpus) series.push({ host: host.name, gpu: gpu.index, at: [host.updatedAt], utilization: [gpu.utilizationPercent], memoryUsedBytes: [gpu.memoryUsedBytes], samples: [1], total: 1 });
  }
  return series;
}
