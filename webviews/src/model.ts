import type { DashboardSnapshot, DashboardTarget, DashboardUi, GpuSampleSeries, JobDetail, JobView, SeriesColumns, ToWebviewMessage } from '../../common/protocol';
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

/** Charts overlay at most this many runs when none are selected (the newest). */
export const DEFAULT_OVERLAY = 10;

export function seriesKey(jobId: number, name: string): string {
  return `${jobId}\u0000${name}`;
}

/** What changed since the last render, so only that is drawn again. */
export interface Dirty {
  all: boolean;
  jobs: boolean;
  /** Metric names with new points. */
  metrics: Set<string>;
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
  readonly series = new Map<string, SeriesColumns>();
  /** Series at full detail for a zoomed chart's range (the daemon's answer to `range`). */
  readonly zoomed = new Map<string, SeriesColumns>();
  logTail = '';
  /** Undefined where the panel has none (not a GPU timeline, or a daemon that does not sample). */
  utilization: Utilization | undefined;
  dirty: Dirty = { all: true, jobs: true, metrics: new Set(), log: true, samples: true };

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
      case 'series':
        for (const replacement of message.series) {
          const key = seriesKey(replacement.jobId, replacement.name);
          if (message.range) this.zoomed.set(key, replacement);
          else {
            this.zoomed.delete(key);
            this.series.set(key, replacement);
          }
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
    this.dirty = { all: false, jobs: false, metrics: new Set(), log: false, samples: false };
    return dirty;
  }

  /** Metric names across the runs, in first-seen order. */
  metricNames(jobIds?: ReadonlySet<number>): string[] {
    const names = new Set<string>();
    for (const series of this.series.values()) if (!jobIds || jobIds.has(series.jobId)) names.add(series.name);
    return [...names];
  }

  /** Every parameter any run was given, in first-seen order. */
  paramNames(): string[] {
    const names = new Set<string>();
    for (const job of this.jobs.values()) for (const name of Object.keys(job.params)) names.add(name);
    return [...names];
  }

  seriesOf(jobId: number, name: string): SeriesColumns | undefined {
    return this.series.get(seriesKey(jobId, name));
  }

  /** What a chart draws: the zoomed range at full detail when there is one. */
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
    const series = this.seriesOf(jobId, name);
    if (!series || series.value.length === 0) return undefined;
    const lowerIsBetter = isLowerBetter(name);
    let best = series.value[0]!;
    for (const value of series.value) if (lowerIsBetter ? value < best : value > best) best = value;
    return { last: series.value.at(-1)!, best };
  }

  private load(snapshot: DashboardSnapshot): void {
    this.target = snapshot.target;
    this.title = snapshot.title;
    this.maxPoints = snapshot.maxPoints;
    this.jobs.clear();
    this.details.clear();
    this.series.clear();
    this.zoomed.clear();
    for (const job of snapshot.jobs) this.jobs.set(job.id, job);
    for (const detail of snapshot.details) {
      this.details.set(detail.id, detail);
      this.jobs.set(detail.id, detail);
    }
    for (const series of snapshot.series) this.series.set(seriesKey(series.jobId, series.name), series);
    this.logTail = snapshot.logTail ?? '';
    this.utilization = snapshot.gpuSamples && { intervalMs: snapshot.gpuSamples.intervalMs, series: new Map(snapshot.gpuSamples.series.map((series) => [laneKey(series.host, series.gpu), series])) };
    this.dirty = { all: true, jobs: true, metrics: new Set(), log: true, samples: true };
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

  private append(delta: SeriesColumns): void {
    const key = seriesKey(delta.jobId, delta.name);
    const series = this.series.get(key);
    if (!series) this.series.set(key, { ...delta });
    else {
      series.step.push(...delta.step);
      series.at.push(...delta.at);
      series.value.push(...delta.value);
      series.total += delta.value.length;
    }
    this.dirty.metrics.add(delta.name);
    // A new metric or a new run's first point: the table's columns change too.
    if (!series) this.dirty.jobs = true;
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
