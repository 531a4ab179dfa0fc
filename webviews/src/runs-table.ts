import type { DashboardUi, JobView } from '../../common/protocol';
import { formatElapsed, formatMetricValue } from '../../common/spec';
import type { Palette } from './colors';
import { h } from './dom';
import { paramText, type DashboardModel } from './model';

interface Column {
  id: string;
  title: string;
  /** What the column sorts by. */
  key: (job: JobView) => string | number | undefined;
  cell: (job: JobView) => string;
  numeric?: boolean;
}

export function runLabel(job: Pick<JobView, 'id' | 'specName' | 'key'>): string {
  return `${job.key} #${job.id}`;
}

export function placement(job: JobView): string {
  if (!job.host) return '';
  return job.gpus?.length ? `${job.host} · GPU ${job.gpus.join(',')}` : job.host;
}

export function duration(job: JobView, now: number): number | undefined {
  if (job.startedAt === undefined) return undefined;
  return (job.endedAt ?? now) - job.startedAt;
}

/**
 * The experiment's runs: status, placement, duration, every swept parameter and the last and
 * best of each metric. Click a header to sort (again to reverse), type to filter (every word
 * must match some cell; `lr=0.1` matches that parameter), click a row to select it for the charts.
 */
export class RunsTable {
  readonly element: HTMLElement;
  private readonly table = h('table', { className: 'runs' });
  rowsShown = 0;

  constructor(
    private readonly model: DashboardModel,
    private readonly ui: () => DashboardUi,
    private readonly changeUi: (change: Partial<DashboardUi>) => void,
  ) {
    this.element = h('div', { className: 'table-scroll' }, this.table);
  }

  columns(): Column[] {
    const now = Date.now();
    const columns: Column[] = [
      { id: 'id', title: 'Run', key: (job) => job.id, cell: runLabel, numeric: true },
      { id: 'state', title: 'Status', key: (job) => job.state, cell: (job) => job.state },
      { id: 'host', title: 'Host / GPU', key: placement, cell: placement },
      { id: 'duration', title: 'Duration', key: (job) => duration(job, now), cell: (job) => (duration(job, now) === undefined ? '' : formatElapsed(duration(job, now)!)), numeric: true },
    ];
    for (const param of this.model.paramNames()) {
      columns.push({ id: `param:${param}`, title: param, key: (job) => job.params[param] as string | number | undefined, cell: (job) => paramText(job.params[param]), numeric: true });
    }
    for (const metric of this.model.metricNames()) {
      for (const which of ['last', 'best'] as const) {
        columns.push({
          id: `${which}:${metric}`,
          title: `${metric} (${which})`,
          key: (job) => this.model.summary(job.id, metric)?.[which],
          cell: (job) => {
            const value = this.model.summary(job.id, metric)?.[which];
            return value === undefined ? '' : formatMetricValue(value);
          },
          numeric: true,
        });
      }
    }
    return columns;
  }

  /** The runs that pass the filter, in the table's order. */
  visibleRuns(columns = this.columns()): JobView[] {
    const ui = this.ui();
    const words = ui.filter.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = [...this.model.jobs.values()].filter((job) => words.every((word) => matches(job, word, columns)));
    const sortColumn = columns.find((column) => column.id === ui.sort.column) ?? columns[0]!;
    const direction = ui.sort.descending ? -1 : 1;
    return rows.sort((a, b) => direction * compare(sortColumn.key(a), sortColumn.key(b)) || b.id - a.id);
  }

  render(palette: Palette): void {
    const ui = this.ui();
    const columns = this.columns();
    const rows = this.visibleRuns(columns);
    const selected = new Set(ui.selected);
    const head = h(
      'tr',
      {},
      h('th', { className: 'select' }),
      ...columns.map((column) => {
        const sorted = ui.sort.column === column.id;
        const th = h('th', { className: `${column.numeric ? 'num' : ''} ${sorted ? 'sorted' : ''}`, title: `Sort by ${column.title}`, dataset: { column: column.id } }, column.title, sorted ? (ui.sort.descending ? ' ▾' : ' ▴') : '');
        th.setAttribute('aria-sort', sorted ? (ui.sort.descending ? 'descending' : 'ascending') : 'none');
        th.addEventListener('click', () => this.changeUi({ sort: { column: column.id, descending: sorted ? !ui.sort.descending : column.numeric === true } }));
        return th;
      }),
    );
    const body = rows.map((job) => {
      const isSelected = selected.has(job.id);
      const swatch = h('span', { className: 'swatch' });
      if (isSelected) swatch.style.background = palette.run(job.id);
      // A plain checkbox, styled like VS Code's: a web component per row costs more than the row.
      const checkbox = h('input', { type: 'checkbox', className: 'run-check', checked: isSelected, tabIndex: -1, ariaLabel: `Select run ${job.id}` });
      const row = h(
        'tr',
        { className: isSelected ? 'selected' : '', dataset: { run: String(job.id) } },
        h('td', { className: 'select' }, h('span', { className: 'select-cell' }, checkbox, swatch)),
        ...columns.map((column) => h('td', { className: `${column.numeric ? 'num' : ''} ${column.id === 'state' ? `state state-${job.state}` : ''}`, dataset: { column: column.id } }, column.cell(job))),
      );
      row.setAttribute('aria-selected', String(isSelected));
      row.addEventListener('click', () => {
        const next = new Set(this.ui().selected);
        if (next.has(job.id)) next.delete(job.id);
        else next.add(job.id);
        this.changeUi({ selected: [...next] });
      });
      return row;
    });
    this.rowsShown = rows.length;
    this.table.replaceChildren(h('thead', {}, head), h('tbody', {}, ...body));
  }
}

function matches(job: JobView, word: string, columns: readonly Column[]): boolean {
  const equals = word.indexOf('=');
  if (equals > 0) {
    const name = word.slice(0, equals);
    const value = word.slice(equals + 1);
    const param = Object.keys(job.params).find((key) => key.toLowerCase() === name);
    if (param !== undefined) return paramText(job.params[param]).toLowerCase() === value;
  }
  return columns.some((column) => column.cell(job).toLowerCase().includes(word));
}

function compare(a: string | number | undefined, b: string | number | undefined): number {
  if (a === undefined || a === '') return b === undefined || b === '' ? 0 : 1;
  if (b === undefined || b === '') return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}
