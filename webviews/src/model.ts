import { pointsAfter, type DashboardSnapshot, type DashboardTarget, type DashboardUi, type GpuSampleSeries, type JobDetail, type JobView, type MetricSummary, type SeriesColumns, type ToWebviewMessage } from '../../common/protocol';
import type { ParamValue } from '../../common/spec';

export const DEFAULT_UI: DashboardUi = {
  selected: [],
  sort: { column: 'id', descending: true },
  filter: '',
  xAxis: 'step',
  smoothing: 0,
  logScale: false,
  scatterMetric: '',
  scatterParam: '',
};

export function seriesKey(jobId: number, name: string): string {
  return `${jobId}\u0000${name}`;
}

/** What changed since the last render, so only that is drawn again. */
export interface Dirty {
  all: boolean;
  jobs: boolean;
  /** Metric names with new points in the charts. */
  metrics: Set<string>;
  /** Runs' summaries changed (the table's last and best). */
  summaries: boolean;
  log: boolean;
  /** GPU utilization samples came (GPU timeline). */
  samples: boolean;
}

/** The GPU timeline's utilization: how often it is sampled, and each GPU's samples by lane. */
export interface Utilization {
  intervalMs: number;
  series: Map<string, GpuSampleSeries>;
}

/** A GPU's lane on the timeline (and its samples' key). */
export function laneKey(host: string, gpu: number): string {
  return `${host} · GPU ${gpu}`;
}

/**
 * The webview's copy of what the extension sent: the snapshot, with each delta applied in the
 * order it came. The extension owns the truth; this only holds what is being shown.
 */
export class DashboardModel {
  target: DashboardTarget | undefined;
  title = '';
  maxPoints = 2000;
  readonly jobs = new Map<number, JobView>();
  readonly details = new Map<number, JobDetail>();
  /** The series of the charted runs (by seriesKey). */
  readonly series = new Map<string, SeriesColumns>();
  /** Runs whose series the page holds (others have only summaries until the charts need them). */
  readonly charted = new Set<number>();
  /** Runs asked for with `load` and not yet answered: by which request, and the live points that come meanwhile, to merge into the answer. */
  private readonly loading = new Map<number, { request: number; buffered: SeriesColumns[] }>();
  /** The number of the last `load` (an answer is taken only for the request it answers). */
  private requests = 0;
  /** Every run's metrics in brief (by seriesKey), kept up to date by live points. */
  readonly summaries = new Map<string, MetricSummary>();
  /** Series in more detail for a zoomed chart's range (the daemon's answer to `range`). */
  readonly zoomed = new Map<string, SeriesColumns>();
  logTail = '';
  /** Undefined where the panel has none (not a GPU timeline, or a daemon that does not sample). */
  utilization: Utilization | undefined;
  dirty: Dirty = { all: true, jobs: true, metrics: new Set(), summaries: true, log: true, samples: true };

  get loaded(): boolean {
    return this.target !== undefined;
  }

  apply(message: ToWebviewMessage): void {
    switch (message.type) {
      case 'snapshot':
        this.load(message);
        break;
      case 'jobs':
        for (const job of message.jobs) this.jobs.set(job.id, job);
        this.dirty.jobs = true;
        break;
      case 'details':
        for (const detail of message.details) {
          this.details.set(detail.id, detail);
          this.jobs.set(detail.id, detail);
        }
        this.dirty.jobs = true;
        break;
      case 'points':
        for (const delta of message.series) this.append(delta);
        break;
      case 'loaded':
        this.applyLoaded(message.request, message.jobIds, message.series);
        break;
      case 'series':
        for (const replacement of message.series) {
          this.zoomed.set(seriesKey(replacement.jobId, replacement.name), replacement);
          this.dirty.metrics.add(replacement.name);
        }
        break;
      case 'samples':
        if (!this.utilization) break;
        for (const delta of message.series) this.appendSamples(delta);
        this.dirty.samples = true;
        break;
      case 'log': {
        // The tail only: a long-running job's output must not grow the page without end.
        const tail = message.reset ? message.data : this.logTail + message.data;
        this.logTail = tail.length > 200_000 ? tail.slice(tail.length - 200_000) : tail;
        this.dirty.log = true;
        break;
      }
    }
  }

  takeDirty(): Dirty {
    const dirty = this.dirty;
    this.dirty = { all: false, jobs: false, metrics: new Set(), summaries: false, log: false, samples: false };
    return dirty;
  }

  /** Metric names across the runs (charted or not), in first-seen order. */
  metricNames(jobIds?: ReadonlySet<number>): string[] {
    const names = new Set<string>();
    for (const summary of this.summaries.values()) if (!jobIds || jobIds.has(summary.jobId)) names.add(summary.name);
    return [...names];
  }

  /**
   * Of `runs` (those the charts overlay), the ones whose series the page neither holds nor has
   * asked for, as a new request; they count as asked for from now (the caller sends `load`).
   */
  toLoad(runs: readonly number[]): { request: number; jobIds: number[] } | undefined {
    const jobIds = runs.filter((id) => !this.charted.has(id) && !this.loading.has(id));
    if (!jobIds.length) return undefined;
    const request = ++this.requests;
    for (const id of jobIds) this.loading.set(id, { request, buffered: [] });
    return { request, jobIds };
  }

  /** Every parameter any run was given, in first-seen order. */
  paramNames(): string[] {
    const names = new Set<string>();
    for (const job of this.jobs.values()) for (const name of Object.keys(job.params)) names.add(name);
    return [...names];
  }

  /** What a chart draws: the zoomed range in more detail when there is one. */
  chartSeries(jobId: number, name: string): SeriesColumns | undefined {
    const key = seriesKey(jobId, name);
    return this.zoomed.get(key) ?? this.series.get(key);
  }

  /** Forgets the zoomed detail of a metric (the chart zoomed back out). */
  unzoom(name: string): void {
    for (const [key, series] of this.zoomed) if (series.name === name) this.zoomed.delete(key);
    this.dirty.metrics.add(name);
  }

  /** The last value and the best (lowest for a loss/error, else highest) of a run's metric. */
  summary(jobId: number, name: string): { last: number; best: number } | undefined {
    const summary = this.summaries.get(seriesKey(jobId, name));
    if (!summary || summary.count === 0) return undefined;
    return { last: summary.last, best: isLowerBetter(name) ? summary.min : summary.max };
  }

  private load(snapshot: DashboardSnapshot): void {
    this.target = snapshot.target;
    this.title = snapshot.title;
    this.maxPoints = snapshot.maxPoints;
    this.jobs.clear();
    this.details.clear();
    this.series.clear();
    this.charted.clear();
    this.loading.clear();
    this.summaries.clear();
    this.zoomed.clear();
    for (const job of snapshot.jobs) this.jobs.set(job.id, job);
    for (const detail of snapshot.details) {
      this.details.set(detail.id, detail);
      this.jobs.set(detail.id, detail);
    }
    for (const series of snapshot.series) this.series.set(seriesKey(series.jobId, series.name), series);
    for (const id of snapshot.charted) this.charted.add(id);
    for (const summary of snapshot.summaries) this.summaries.set(seriesKey(summary.jobId, summary.name), summary);
    this.logTail = snapshot.logTail ?? '';
    this.utilization = snapshot.gpuSamples && { intervalMs: snapshot.gpuSamples.intervalMs, series: new Map(snapshot.gpuSamples.series.map((series) => [laneKey(series.host, series.gpu), series])) };
    this.dirty = { all: true, jobs: true, metrics: new Set(), summaries: true, log: true, samples: true };
  }

  /** The answer to `load`: the runs' series, with the live points that came while it was read and it does not hold. */
  private applyLoaded(request: number, jobIds: readonly number[], series: readonly SeriesColumns[]): void {
    for (const id of jobIds) {
      // Not the answer to the run's request: asked before the last snapshot, which reset what was asked (its reads are newer).
      if (this.loading.get(id)?.request !== request) continue;
      const { buffered } = this.loading.get(id)!;
      this.loading.delete(id);
      this.charted.add(id);
      for (const entry of series) {
        if (entry.jobId !== id) continue;
        this.series.set(seriesKey(id, entry.name), entry);
        this.dirty.metrics.add(entry.name);
      }
      for (const delta of buffered) {
        const held = this.series.get(seriesKey(id, delta.name));
        // The answer holds the points recorded before it was read (its newest is among them, thinned or not).
        const upTo = held ? held.at.reduce((newest, at) => Math.max(newest, at), -Infinity) : -Infinity;
        const after = pointsAfter(delta, upTo);
        if (after) this.appendPoints(after);
      }
    }
  }

  /** Live samples after the snapshot's (older ones, already held, are dropped). */
  private appendSamples(delta: GpuSampleSeries): void {
    const key = laneKey(delta.host, delta.gpu);
    const series = this.utilization!.series.get(key);
    if (!series) {
      this.utilization!.series.set(key, { ...delta, at: [...delta.at], utilization: [...delta.utilization], memoryUsedBytes: [...delta.memoryUsedBytes], samples: [...delta.samples] });
      return;
    }
    const last = series.at.at(-1) ?? -Infinity;
    delta.at.forEach((at, index) => {
      if (at <= last) return;
      series.at.push(at);
      series.utilization.push(delta.utilization[index] ?? null);
      series.memoryUsedBytes.push(delta.memoryUsedBytes[index]!);
      series.samples.push(delta.samples[index]!);
      series.total += delta.samples[index]!;
    });
  }

  /** Live points: into the run's summary, and its series where the page holds (or is reading) them. */
  private append(delta: SeriesColumns): void {
    if (delta.value.length === 0) return;
    this.summarize(delta);
    if (this.charted.has(delta.jobId)) this.appendPoints(delta);
    else this.loading.get(delta.jobId)?.buffered.push(delta);
  }

  private appendPoints(delta: SeriesColumns): void {
    const key = seriesKey(delta.jobId, delta.name);
    const series = this.series.get(key);
    if (!series) this.series.set(key, { ...delta, step: [...delta.step], at: [...delta.at], value: [...delta.value], total: delta.value.length });
    else {
      series.step.push(...delta.step);
      series.at.push(...delta.at);
      series.value.push(...delta.value);
      series.total += delta.value.length;
    }
    this.dirty.metrics.add(delta.name);
  }

  private summarize(delta: SeriesColumns): void {
    const key = seriesKey(delta.jobId, delta.name);
    let summary = this.summaries.get(key);
    if (!summary) {
      this.summaries.set(key, (summary = { jobId: delta.jobId, name: delta.name, count: 0, last: delta.value[0]!, min: Infinity, max: -Infinity }));
      // A new metric or a new run's first point: the table's columns change too.
      this.dirty.jobs = true;
    }
    summary.count += delta.value.length;
    summary.last = delta.value.at(-1)!;
    for (const value of delta.value) {
      if (value < summary.min) summary.min = value;
      if (value > summary.max) summary.max = value;
    }
    this.dirty.summaries = true;
  }
}

/** Losses, errors and perplexities go down; accuracies and rewards go up. */
export function isLowerBetter(metric: string): boolean {
  return /loss|err|perplexity|ppl|mse|mae|rmse|wer|cer|time|latency/i.test(metric);
}

export function paramText(value: ParamValue | undefined): string {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
