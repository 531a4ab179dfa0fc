/**
 * The messages between the extension and its dashboard webviews (postMessage both ways). Each
 * message is declared once here, by its `type`, and both sides import the map. The webview asks
 * for a snapshot when it is ready; after that the extension sends only deltas.
 */
import type { GpuSampleSeries, JobDetail, JobView } from './daemon';

/** What a dashboard panel shows; also what a restored panel reopens (kept in the webview's state). */
export type DashboardTarget =
  | { kind: 'experiment'; specName: string }
  | { kind: 'run'; jobId: number }
  | { kind: 'compare'; jobIds: number[] }
  | { kind: 'gpus' };

/** The x axis of the metric charts: the step a point reported, or the wall time it was recorded. */
export type XAxis = 'step' | 'time';

/**
 * One run's metric, column by column (compact to post, and what the charts draw). `step` is null
 * where the line gave none. `total` counts the points the daemon holds: more than are here when it
 * downsampled them.
 */
export interface SeriesColumns {
  jobId: number;
  name: string;
  step: (number | null)[];
  at: number[];
  value: number[];
  total: number;
}

export interface DashboardSnapshot {
  target: DashboardTarget;
  title: string;
  /** The runs the panel is about (an experiment's, the run, the compared ones, or all that held a GPU). */
  jobs: JobView[];
  /** Full records (run and compare views). */
  details: JobDetail[];
  series: SeriesColumns[];
  /** The end of the run's output (run view). */
  logTail?: string;
  /** The most points per series the extension asks the daemon for. */
  maxPoints: number;
  /** GPU timeline: each GPU's utilization over the timeline's window (thinned), and how often it is sampled. */
  gpuSamples?: GpuSamples;
}

/** GPU utilization for the GPU timeline, as `drover/gpuSamples` answers it. */
export interface GpuSamples {
  /** How often the daemon probes (samples) hosts, in ms. */
  intervalMs: number;
  series: GpuSampleSeries[];
}

/** Extension → webview, by `type`. */
export interface ToWebview {
  snapshot: DashboardSnapshot;
  /** Runs that changed or appeared. */
  jobs: { jobs: JobView[] };
  /** Runs' records read again (after their state changed). */
  details: { details: JobDetail[] };
  /** New points appended to series (live). */
  points: { series: SeriesColumns[] };
  /** Series replaced (the answer to `range`: downsampled again for the visible range). */
  series: { series: SeriesColumns[]; range: { axis: XAxis; min: number; max: number } | null };
  /** More of the run's output (run view); `reset` starts the tail afresh. */
  log: { data: string; reset: boolean };
  /** New GPU utilization samples, appended to each GPU's (GPU timeline, live from the host probes). */
  samples: { series: GpuSampleSeries[] };
}

export type RunAction = 'cancel' | 'rerun' | 'rerunWithParams' | 'openDiff' | 'openRun' | 'compare' | 'showLogs' | 'openRecord';

/** What the webview reports after each render: what it shows (the integration tests read it). */
export interface RenderReport {
  target: DashboardTarget;
  runs: number;
  rowsShown: number;
  selected: number[];
  charts: string[];
  /** Points drawn across all charts. */
  points: number;
  /** GPU utilization points drawn on the timeline. */
  samples: number;
}

/** Webview → extension, by `type`. */
export interface FromWebview {
  ready: object;
  /** The user zoomed a chart: downsample again for this range (null: everything). */
  range: { jobIds: number[]; names: string[]; axis: XAxis; range: { min: number; max: number } | null; maxPoints: number };
  action: { action: RunAction; jobIds: number[] };
  rendered: RenderReport;
}

export type ToWebviewMessage = { [K in keyof ToWebview]: { type: K } & ToWebview[K] }[keyof ToWebview];
export type FromWebviewMessage = { [K in keyof FromWebview]: { type: K } & FromWebview[K] }[keyof FromWebview];

/** The webview's own state (vscode.setState), which the panel serializer gets back after a reload. */
export interface DashboardState {
  target: DashboardTarget;
  ui?: Partial<DashboardUi>;
}

export interface DashboardUi {
  selected: number[];
  sort: { column: string; descending: boolean };
  filter: string;
  xAxis: XAxis;
  /** Exponential moving average weight, 0 (none) to 0.99. */
  smoothing: number;
  logScale: boolean;
  /** The metric the parameter scatter plots against. */
  scatterMetric: string;
  scatterParam: string;
}

/** The view type of every Drover dashboard panel (the serializer is registered for it). */
export const DASHBOARD_VIEW_TYPE = 'drover.dashboard';

/**
 * Points per series a dashboard's snapshot asks the daemon for: about what a wide chart has
 * pixels for, fewer when many runs share the page (the table needs only each series' last and
 * best, which the daemon's thinning keeps; a zoomed chart asks again at full detail).
 */
export function snapshotPointBudget(runs: number): number {
  return Math.max(250, Math.min(2000, Math.floor(100_000 / Math.max(1, runs))));
}

/** Builds a series from row-shaped points (as `drover/metrics` answers). */
export function toColumns(jobId: number, name: string, points: readonly { step: number | null; value: number; at: number }[], total = points.length): SeriesColumns {
  const columns: SeriesColumns = { jobId, name, step: [], at: [], value: [], total };
  for (const point of points) {
    columns.step.push(point.step);
    columns.at.push(point.at);
    columns.value.push(point.value);
  }
  return columns;
}
