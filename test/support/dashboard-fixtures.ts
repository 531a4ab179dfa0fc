import type { DashboardSnapshot, GpuSampleSeries, JobDetail, JobView, MetricSummary, SeriesColumns } from '../../common/protocol';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);

/** A run of an `lr` × `seed` sweep, as the daemon reports it. */
export function sweepRun(id: number, fields: Partial<JobView> = {}): JobView {
  const lrs = [0.1, 0.03, 0.01];
  return {
    id,
    submissionId: 1,
    specName: 'lr-sweep',
    key: `lr-sweep[${id - 1}]`,
    state: 'succeeded',
    priority: 0,
    resources: { gpus: { count: 1 } },
    command: `python3 train.py --lr ${lrs[(id - 1) % 3]} --seed ${Math.floor((id - 1) / 3)}`,
    params: { lr: lrs[(id - 1) % 3]!, seed: Math.floor((id - 1) / 3) },
    attempts: 1,
    host: id % 2 ? 'gpu-box-1' : 'local',
    gpus: [id % 2],
    exitCode: 0,
    createdAt: T0 + id * 1000,
    startedAt: T0 + id * 60_000,
    endedAt: T0 + id * 60_000 + 300_000 + id * 17_000,
    ...fields,
  };
}

export function detailOf(job: JobView, fields: Partial<JobDetail['record']> = {}): JobDetail {
  return {
    ...job,
    attemptList: [],
    needs: [],
    record: {
      specPath: '/home/ada/project/train.drover.yaml',
      specText: 'name: lr-sweep\nrun: python3 train.py\n',
      overrides: {},
      workdir: '/home/ada/project',
      env: { WANDB_MODE: 'offline', CUDA_VISIBLE_DEVICES: String(job.gpus?.[0] ?? '') },
      git: { commit: 'a'.repeat(40), dirty: job.id % 2 === 0, branch: 'main' },
      host: { name: job.host ?? 'local', os: 'linux', gpuModels: ['NVIDIA A100-SXM4-80GB'], driverVersion: '550.54.15' },
      ...fields,
    },
  };
}

/** A training curve: a loss that falls at a rate set by the run's lr, with noise; an accuracy that rises. */
export function curve(job: JobView, name: 'loss' | 'acc', points: number, from = 0): SeriesColumns {
  const lr = Number(job.params['lr'] ?? 0.01);
  const series: SeriesColumns = { jobId: job.id, name, step: [], at: [], value: [], total: 0 };
  let seed = job.id * 7919 + (name === 'acc' ? 13 : 0) + from;
  const noise = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647 - 0.5;
  };
  for (let step = from; step < from + points; step++) {
    const progress = 1 - Math.exp((-step * lr * 30) / points - step / (points * 2));
    series.step.push(step);
    series.at.push((job.startedAt ?? T0) + step * 250);
    series.value.push(name === 'loss' ? 2.3 * (1 - progress) + 0.05 + Math.abs(noise()) * 0.08 : 0.1 + 0.85 * progress + noise() * 0.02);
  }
  series.total = series.value.length;
  return series;
}

/** Series in brief, as the daemon's summaries give them (of every point: these series are whole). */
export function summarize(series: readonly SeriesColumns[]): MetricSummary[] {
  return series
    .filter((entry) => entry.value.length > 0)
    .map((entry) => ({ jobId: entry.jobId, name: entry.name, count: entry.value.length, last: entry.value.at(-1)!, min: Math.min(...entry.value), max: Math.max(...entry.value) }));
}

/** The first message of a run or compare view: `jobs` with these whole series, every run charted. */
export function runsSnapshot(target: DashboardSnapshot['target'], title: string, jobs: JobView[], series: SeriesColumns[], fields: Partial<DashboardSnapshot> = {}): DashboardSnapshot {
  return { target, title, jobs, details: jobs.map((job) => detailOf(job)), series, charted: jobs.map((job) => job.id), summaries: summarize(series), maxPoints: 2000, ...fields };
}

/**
 * An experiment dashboard's first message: `runs` runs with `points` points of loss and acc,
 * every run's summaries, and the series of the `charted` runs (by default all of them).
 */
export function experimentSnapshot(runs: number, points: number, maxPoints = 2000, charted?: readonly number[]): DashboardSnapshot {
  const jobs = Array.from({ length: runs }, (_, index) => sweepRun(index + 1));
  const series = jobs.flatMap((job) => [curve(job, 'loss', points), curve(job, 'acc', points)]);
  const chartedIds = charted ? [...charted] : jobs.map((job) => job.id);
  return {
    target: { kind: 'experiment', specName: 'lr-sweep' },
    title: 'lr-sweep',
    jobs,
    details: [],
    series: series.filter((entry) => chartedIds.includes(entry.jobId)),
    charted: chartedIds,
    summaries: summarize(series),
    maxPoints,
  };
}

/** How often the GPU timeline fixture's hosts were probed. */
export const SAMPLE_INTERVAL_MS = 15_000;

/**
 * The GPU timeline's first message: six sweep runs on two hosts and one more on a third host,
 * with each sampled GPU's utilization every 15 s for 15 minutes: busy while a run held it, a
 * foreign job on local GPU 1, and gpu-box-1 unreachable for two minutes. gpu-box-2 was never
 * sampled.
 */
export function gpuTimelineSnapshot(): DashboardSnapshot {
  const jobs = [...Array.from({ length: 6 }, (_, index) => sweepRun(index + 1)), sweepRun(7, { host: 'gpu-box-2', gpus: [0] })];
  const lanes: [string, number][] = [['local', 0], ['local', 1], ['gpu-box-1', 1]];
  const series = lanes.map(([host, gpu]) => {
    const entry: GpuSampleSeries = { host, gpu, at: [], utilization: [], memoryUsedBytes: [], samples: [], total: 0 };
    for (let at = T0; at <= T0 + 15 * 60_000; at += SAMPLE_INTERVAL_MS) {
      if (host === 'gpu-box-1' && at > T0 + 8 * 60_000 && at < T0 + 10 * 60_000) continue;
      const held = jobs.some((job) => job.host === host && job.gpus?.includes(gpu) && at >= job.startedAt! && at <= job.endedAt!);
      const foreign = host === 'local' && gpu === 1 && at > T0 + 2 * 60_000 && at < T0 + 7 * 60_000;
      const wobble = Math.sin(at / 40_000) * 12;
      entry.at.push(at);
      entry.utilization.push(held ? Math.round(80 + wobble) : foreign ? Math.round(40 + wobble / 2) : 2);
      entry.memoryUsedBytes.push((held ? 30 : foreign ? 12 : 0.5) * 2 ** 30);
      entry.samples.push(1);
    }
    entry.total = entry.at.length;
    return entry;
  });
  return { target: { kind: 'gpus' }, title: 'GPU timeline', jobs, details: [], series: [], charted: [], summaries: [], maxPoints: 2000, gpuSamples: { intervalMs: SAMPLE_INTERVAL_MS, series } };
}
