/**
 * Notebook runs: the command that starts the per-cell driver (runner/python/drover_notebook.py)
 * and the reading of the cell events it writes. The driver's records are turned into the
 * protocol's CellEvent here, so clients get times in ms and metric points already parsed with the
 * one reader of the metric format (metric-lines.ts).
 */
import { join } from 'node:path';
import type { CellEvent, CellMetricPoint, NotebookOutput } from '../../../common/protocol';
import { shellWord } from '../../../common/spec';
import { parseMetricJson, parseMetricLine, type MetricPoint } from '../metrics/metric-lines';
import { packageRoot } from '../package-root';

/** The driver's file name, in the package and in an attempt's folder on an SSH host. */
export const NOTEBOOK_DRIVER = 'drover_notebook.py';

/** Where the driver is in this installation. */
export function notebookDriverPath(): string {
  return join(packageRoot(), 'runner', 'python', NOTEBOOK_DRIVER);
}

/**
 * The shell command of a notebook run. It takes the first Python that has nbclient and
 * ipykernel: $DROVER_PYTHON when set, then `python3`, then the system's /usr/bin/python3 (a
 * virtualenv or pyenv python3 often comes first on PATH without Jupyter). With none, the driver
 * runs under `python3` and says what to install.
 */
export function notebookCommand(options: { notebook: string; driver: string; events: string; output: string }): string {
  const { notebook, driver, events, output } = options;
  return [
    'py=',
    'for candidate in "${DROVER_PYTHON:-}" python3 /usr/bin/python3; do',
    '  [ -n "$candidate" ] && "$candidate" -c "import nbclient, ipykernel" >/dev/null 2>&1 && { py=$candidate; break; }',
    'done',
    `exec "\${py:-python3}" ${[driver, notebook, '--events', events, '--output', output].map(shellWord).join(' ')}`,
  ].join('\n');
}

/** The driver's environment for a run: its parameters, injected after the `parameters` cell. */
export function notebookEnv(params: Record<string, unknown>): Record<string, string> {
  return Object.keys(params).length > 0 ? { DROVER_NOTEBOOK_PARAMS: JSON.stringify(params) } : {};
}

type DriverRecord = Record<string, unknown> & { event?: unknown; time?: unknown; lines?: unknown; output?: unknown };

/**
 * The events of complete lines in `text` (what follows the last line end is left for the next
 * read). Returns the events and how many bytes of `text` they took.
 */
export function readCellEvents(text: string): { events: CellEvent[]; bytes: number } {
  const end = text.lastIndexOf('\n');
  if (end < 0) return { events: [], bytes: 0 };
  const whole = text.slice(0, end + 1);
  const events: CellEvent[] = [];
  for (const line of whole.split('\n')) {
    if (line.trim() === '') continue;
    let record: DriverRecord;
    try {
      record = JSON.parse(line) as DriverRecord;
    } catch {
      continue; // not the driver's: nothing else writes this file, but a torn disk write must not stop the rest
    }
    const event = toCellEvent(record);
    if (event) events.push(event);
  }
  return { events, bytes: Buffer.byteLength(whole) };
}

function toCellEvent(record: DriverRecord): CellEvent | undefined {
  const time = typeof record.time === 'number' ? Math.round(record.time * 1000) : 0;
  const { lines, ...rest } = record;
  switch (record.event) {
    case 'metrics': {
      const points = (Array.isArray(lines) ? lines : []).flatMap((line) => (typeof line === 'string' ? (parseMetricJson(line) ?? []) : []));
      return { ...(rest as object), time, points: points.map(cellPoint) } as CellEvent;
    }
    case 'output': {
      const output = record.output as NotebookOutput;
      const points = output?.output_type === 'stream' && typeof output.text === 'string' ? output.text.split(/\r\n|\n|\r/).flatMap((line) => parseMetricLine(line) ?? []) : [];
      return { ...(rest as object), time, ...(points.length > 0 && { points: points.map(cellPoint) }) } as CellEvent;
    }
    case 'begin':
    case 'outputs':
    case 'start':
    case 'finish':
    case 'end':
      return { ...(rest as object), time } as CellEvent;
    default:
      return undefined;
  }
}

function cellPoint(point: MetricPoint): CellMetricPoint {
  return { name: point.name, step: point.step, value: point.value };
}
