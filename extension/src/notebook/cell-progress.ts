import { FINAL_STATES, type CellEvent, type CellMetricPoint, type JobView, type NotebookOutput } from '../../../common/protocol';
import { formatElapsed } from '../../../common/spec';

export type CellState = 'queued' | 'running' | 'done' | 'failed' | 'not run';

/** One cell of a notebook run, as its events told it. */
export interface CellProgress {
  state: CellState;
  startedAt?: number;
  endedAt?: number;
  outputs: NotebookOutput[];
  points: CellMetricPoint[];
}

/**
 * The progress of one notebook run, cell by cell, from its cell events in order. It holds no
 * VS Code object, so the status bar text and the outputs it drives are tested under mocha.
 * Cells are the submitted notebook's indices; the injected parameters cell is left out (it is not
 * in the user's notebook).
 */
export class NotebookRunProgress {
  readonly cells = new Map<number, CellProgress>();
  /** Where the next `drover/cells` read starts. */
  offset = 0;
  /** The attempt these events are of; a retry starts over. */
  attempt = 0;
  ended = false;

  constructor(
    readonly jobId: number,
    /** The cells asked for, in order: they show as queued until the run reaches them. */
    readonly requested: number[],
  ) {
    this.restart(0);
  }

  /** Starts over for a new attempt (a retry runs every cell again). */
  restart(attempt: number): void {
    this.attempt = attempt;
    this.offset = 0;
    this.ended = false;
    this.cells.clear();
    for (const cell of this.requested) this.cells.set(cell, { state: 'queued', outputs: [], points: [] });
  }

  /** Applies events in order; returns the cells whose outputs changed (to be written into the notebook). */
  apply(events: readonly CellEvent[]): Set<number> {
    const changed = new Set<number>();
    for (const event of events) {
      if (event.event === 'end') this.ended = true;
      if (event.event === 'begin' || event.event === 'end' || event.injected) continue;
      const cell = this.cellAt(event.cell);
      switch (event.event) {
        case 'start':
          cell.state = 'running';
          cell.startedAt = event.time;
          cell.outputs = [];
          cell.points = [];
          changed.add(event.cell);
          break;
        case 'output':
          cell.outputs.push(event.output);
          if (event.points) cell.points.push(...event.points);
          changed.add(event.cell);
          break;
        case 'outputs':
          cell.outputs = [...event.outputs];
          changed.add(event.cell);
          break;
        case 'metrics':
          cell.points.push(...event.points);
          changed.add(event.cell);
          break;
        case 'finish':
          cell.state = event.status === 'ok' ? 'done' : 'failed';
          cell.endedAt = event.time;
          break;
      }
    }
    return changed;
  }

  /** Once the run is over, a cell it never reached was not run, and one it was in failed (cancelled, killed). */
  settle(job: JobView): void {
    if (!FINAL_STATES.includes(job.state)) return;
    for (const cell of this.cells.values()) {
      if (cell.state === 'queued') cell.state = 'not run';
      else if (cell.state === 'running') {
        cell.state = 'failed';
        cell.endedAt = job.endedAt ?? cell.startedAt;
      }
    }
  }

  private cellAt(index: number): CellProgress {
    let cell = this.cells.get(index);
    if (!cell) this.cells.set(index, (cell = { state: 'queued', outputs: [], points: [] }));
    return cell;
  }
}

/** What a cell's status bar says: queued → running on box-2 GPU 1 · 12s → done in 12s / failed. */
export function cellStatusText(cell: CellProgress, job: JobView | undefined, now: number): { text: string; tooltip: string } {
  const where = job?.host ? `${job.host}${job.gpus?.length ? ` GPU ${job.gpus.join(',')}` : ''}` : undefined;
  const run = job ? `Drover run ${job.id}` : 'Drover';
  const on = where ? ` on ${where}` : '';
  switch (cell.state) {
    case 'queued':
      if (job?.state === 'running') return { text: `$(clock) queued${on}`, tooltip: `${run} runs${on}; this cell waits for the cells before it` };
      return { text: '$(clock) queued', tooltip: `${run}: queued${job?.reason ? ` (${job.reason})` : ''}` };
    case 'running':
      return {
        text: `$(sync~spin) running${on}${cell.startedAt === undefined ? '' : ` · ${formatElapsed(now - cell.startedAt)}`}`,
        tooltip: `${run}: this cell is running${on}`,
      };
    case 'done':
      return { text: `$(check) done in ${formatElapsed(took(cell))}${on}`, tooltip: `${run}: this cell ran${on}` };
    case 'failed':
      return { text: `$(error) failed after ${formatElapsed(took(cell))}${on}`, tooltip: `${run}: this cell failed${job?.reason ? ` (${job.reason})` : ''}` };
    case 'not run':
      return { text: '$(circle-slash) not run', tooltip: `${run} ended before this cell${job?.reason ? `: ${job.reason}` : ''}` };
  }
}

function took(cell: CellProgress): number {
  return cell.startedAt !== undefined && cell.endedAt !== undefined ? cell.endedAt - cell.startedAt : 0;
}

/** A cell's metric points by name, for its chart. */
export function seriesOf(points: readonly CellMetricPoint[]): Record<string, { step: number | null; value: number }[]> {
  const series: Record<string, { step: number | null; value: number }[]> = {};
  for (const point of points) (series[point.name] ??= []).push({ step: point.step, value: point.value });
  return series;
}

export type CellScope = { kind: 'all' } | { kind: 'cells'; cells: number[] } | { kind: 'from'; cell: number };

/**
 * The cells a "Run on cluster" asks for, as the driver's DROVER_NOTEBOOK_CELLS: all (undefined),
 * the given ones (`2,5`), or from one down (`3-`).
 */
export function cellSelection(scope: CellScope): string | undefined {
  if (scope.kind === 'all') return undefined;
  if (scope.kind === 'from') return `${scope.cell}-`;
  return [...new Set(scope.cells)].sort((a, b) => a - b).join(',');
}
