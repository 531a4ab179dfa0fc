/**
 * The messages between the extension and its dashboard webviews (postMessage both ways). Each
 * message is declared once here, by its `type`, and both sides import the map. The webview asks
 * for a snapshot when it is ready; after that the extension sends only deltas.
 */
import type { GpuSampleSeries, JobDetail, JobView, MetricSummary } from './daemon';

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
  /** The series of the runs in `charted` (the runs the charts overlay); the page asks for others' with `load`. */
  series: SeriesColumns[];
  /** The runs whose series are here (with none where a run has no points yet). */
  charted: number[];
  /** Every run's metrics in brief (the runs table's last and best, the scatter), charted or not. */
  summaries: MetricSummary[];
  /** The end of the run's output (run view). */
  logTail?: string;
  /** The most points per series a zoomed chart asks for (fewer when it overlays many runs: overlayPointBudget). */
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
  /** The answer to `load` (its `request`): these runs' series (a run without points has none). */
  loaded: { request: number; jobIds: number[]; series: SeriesColumns[] };
  /** Series replaced (the answer to `range`: downsampled again for the visible range). */
  series: { series: SeriesColumns[]; range: { axis: XAxis; min: number; max: number } };
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
  /** The page is ready for its snapshot; `selected`: the runs it was left with selected (a restored panel), whose series the snapshot carries. */
  ready: { selected: number[] };
  /** The charts now overlay runs whose series the page does not hold: read them at `maxPoints` per series. */
  load: { request: number; jobIds: number[]; maxPoints: number };
  /** The user zoomed a chart: downsample again for this range (a zoom out the page undoes itself, from the series it holds). */
  range: { jobIds: number[]; names: string[]; axis: XAxis; range: { min: number; max: number }; maxPoints: number };
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

/** An experiment's charts overlay at most this many runs when none are selected (the newest). */
export const DEFAULT_OVERLAY = 10;

/**
 * The runs an experiment's charts overlay: the selected ones of its `runs`, else the newest few
 * of those `shown` (the runs its table shows through the filter; all of them by default).
 */
export function overlaidRuns(runs: readonly number[], selected: readonly number[], shown: readonly number[] = runs): number[] {
  const onPanel = new Set(runs);
  const chosen = selected.filter((id) => onPanel.has(id));
  return chosen.length ? chosen : [...shown].sort((a, b) => b - a).slice(0, DEFAULT_OVERLAY);
}

/** Points a chart draws at most, across the runs it overlays (more cost drawing time and memory, not detail a chart can show). */
const CHART_POINT_BUDGET = 6000;

/**
 * Points per series the charts ask the daemon for when they overlay `runs` runs: the chart's
 * budget shared among them, from 40 (a line's shape) to 2,000 (about what a wide chart has
 * pixels for). The table needs no points: it shows the daemon's summaries. A zoomed chart asks
 * again for its range.
 */
export function overlayPointBudget(runs: number): number {
  return Math.max(40, Math.min(2000, Math.floor(CHART_POINT_BUDGET / Math.max(1, runs))));
}

/** The points of a live delta recorded after `upTo` (ms): what a reader holding the points up to then lacks (undefined: none). */
export function pointsAfter(delta: SeriesColumns, upTo: number): SeriesColumns | undefined {
  const first = delta.at.findIndex((at) => at > upTo);
  if (first < 0) return undefined;
  return { ...delta, step: delta.step.slice(first), at: delta.at.slice(first), value: delta.value.slice(first), total: delta.at.length - first };
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
