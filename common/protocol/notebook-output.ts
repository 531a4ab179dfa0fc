/**
 * What the extension puts under a notebook cell for its metrics, and the notebook renderer draws
 * (a small live chart): one output item of this MIME type. Both sides import it from here.
 */
export const CELL_METRICS_MIME = 'application/vnd.drover.cell-metrics+json';

/** The renderer's id in package.json (contributes.notebookRenderer), for its messages. */
export const CELL_METRICS_RENDERER_ID = 'drover.cell-metrics';

export interface CellMetricsOutput {
  jobId: number;
  /** What the user calls the run (`analysis/analysis`). */
  runLabel: string;
  cell: number;
  /** Points by metric name, in the order they were reported; `step` null when none was given. */
  series: Record<string, { step: number | null; value: number }[]>;
}

/** The renderer asks the extension to open the run's dashboard. */
export interface OpenDashboardMessage {
  type: 'openDashboard';
  jobId: number;
}
