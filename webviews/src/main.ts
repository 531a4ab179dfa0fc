/**
 * The dashboard webview: one bundle for every Drover panel (experiment, run, compare, GPU
 * timeline). It asks the extension for a snapshot when it is ready, applies the deltas that
 * follow, and draws on the next animation frame only what changed. Its UI choices (selection,
 * sort, filter, axes) live in the webview state, so a restored panel comes back as it was left.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import { FINAL_STATES, overlaidRuns, overlayPointBudget, type DashboardState, type DashboardUi, type FromWebviewMessage, type JobDetail, type JobView, type RunAction, type ToWebviewMessage } from '../../common/protocol';
import { MetricChart, type ChartLine } from './charts';
import { Palette } from './colors';
import { el, h } from './dom';
import { DashboardModel, DEFAULT_UI, paramText } from './model';
import { placement, runLabel, RunsTable } from './runs-table';
import { renderScatter, scatterControls } from './scatter';
import { renderTimeline } from './timeline';

interface VsCodeApi {
  postMessage(message: FromWebviewMessage): void;
  getState(): DashboardState | undefined;
  setState(state: DashboardState): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const model = new DashboardModel();
const saved = vscode.getState();
let ui: DashboardUi = { ...DEFAULT_UI, ...saved?.ui };
const charts = new Map<string, MetricChart>();
const root = document.getElementById('app')!;
const sections = {
  header: h('header', {}),
  toolbar: h('div', { className: 'toolbar' }),
  table: h('section', { className: 'runs-section' }),
  charts: h('div', { className: 'charts' }),
  scatter: h('section', { className: 'scatter-section' }),
  record: h('section', { className: 'record' }),
  log: h('pre', { className: 'log', tabIndex: 0 }),
  timeline: h('section', { className: 'timeline-section' }),
};
const table = new RunsTable(model, () => ui, (change) => changeUi(change));
let frame: number | undefined;
/** When the table was last drawn; live points redraw it at most once a second. */
let lastTableDraw = 0;
/** The table's redraw after live points it skipped (so the last of a burst shows). */
let tableTimer: ReturnType<typeof setTimeout> | undefined;
let tableDue = false;
/** Utilization points the timeline drew last. */
let timelineSamples = 0;
/** The user changed a choice: everything is drawn again, but the page (and the focused control) stays. */
let uiChanged = false;

function post(message: FromWebviewMessage): void {
  vscode.postMessage(message);
}

function changeUi(change: Partial<DashboardUi>): void {
  ui = { ...ui, ...change };
  if (model.target) vscode.setState({ target: model.target, ui });
  uiChanged = true;
  schedule();
}

function schedule(): void {
  frame ??= requestAnimationFrame(() => {
    frame = undefined;
    render();
  });
}

/** The runs the charts overlay: every run of the panel, or of an experiment the selected ones, else the newest few that pass the filter. */
function chartedRuns(): number[] {
  const ids = [...model.jobs.keys()].sort((a, b) => a - b);
  if (model.target!.kind !== 'experiment') return ids;
  return overlaidRuns(ids, ui.selected, table.visibleRuns().map((job) => job.id));
}

function render(): void {
  if (!model.loaded) return;
  const dirty = model.takeDirty();
  const kind = model.target!.kind;
  if (dirty.all) layout();
  dirty.jobs ||= dirty.all || uiChanged;
  uiChanged = false;
  const now = Date.now();
  // Read once for the whole render: reading a theme color after the page changed restyles it.
  const palette = new Palette();
  if (kind === 'experiment') drawTable(dirty.all || dirty.jobs, dirty.summaries, now, palette);
  if (kind !== 'gpus') drawCharts(dirty.all || dirty.jobs ? undefined : dirty.metrics, palette);
  if (kind === 'experiment' && (dirty.all || dirty.jobs)) drawScatter(palette);
  if ((kind === 'run' || kind === 'compare') && (dirty.all || dirty.jobs)) drawRecord();
  if (kind === 'run' && (dirty.all || dirty.log)) {
    const follow = sections.log.scrollTop + sections.log.clientHeight >= sections.log.scrollHeight - 4;
    sections.log.textContent = model.logTail || '(no output yet)';
    if (follow) sections.log.scrollTop = sections.log.scrollHeight;
  }
  if ((kind === 'experiment' || kind === 'gpus') && (dirty.all || dirty.jobs || dirty.samples)) {
    const timeline = renderTimeline(model.jobs.values(), now, palette, model.utilization);
    timelineSamples = timeline.samples;
    sections.timeline.replaceChildren(h('h2', {}, 'GPU timeline'), timeline.element);
  }
  if (dirty.all || dirty.jobs) drawHeader();
  post({
    type: 'rendered',
    target: model.target!,
    runs: model.jobs.size,
    rowsShown: kind === 'experiment' ? table.rowsShown : model.jobs.size,
    selected: ui.selected,
    charts: [...charts.keys()],
    points: [...charts.values()].reduce((sum, chart) => sum + chart.points, 0),
    samples: timelineSamples,
  });
}

/**
 * The runs table: at once when runs or choices changed; after live points at most once a second
 * (200 rows cost more than a chart's new points), and once more after the last of them.
 */
function drawTable(changed: boolean, summaries: boolean, now: number, palette: Palette): void {
  tableDue ||= summaries;
  if (!changed && !tableDue) return;
  const wait = lastTableDraw + 1000 - now;
  if (!changed && wait > 0) {
    tableTimer ??= setTimeout(() => {
      tableTimer = undefined;
      schedule();
    }, wait);
    return;
  }
  clearTimeout(tableTimer);
  tableTimer = undefined;
  tableDue = false;
  table.render(palette);
  lastTableDraw = now;
}

/** The page's sections for the panel's kind, built once per snapshot (or UI change). */
function layout(): void {
  const kind = model.target!.kind;
  document.title = model.title;
  sections.toolbar.replaceChildren(...toolbar(kind));
  const parts: HTMLElement[] = [sections.header];
  if (kind === 'experiment') parts.push(sections.toolbar, sections.table, chartsSection(), sections.scatter, sections.timeline);
  if (kind === 'run') parts.push(sections.toolbar, chartsSection(), h('section', {}, h('h2', {}, 'Output (tail)'), sections.log), sections.record);
  if (kind === 'compare') parts.push(sections.toolbar, sections.record, chartsSection());
  if (kind === 'gpus') parts.push(sections.timeline);
  sections.table.replaceChildren(h('h2', {}, 'Runs'), table.element);
  root.replaceChildren(...parts);
}

function chartsSection(): HTMLElement {
  return h('section', { className: 'charts-section' }, h('h2', {}, 'Metrics'), sections.charts);
}

function drawHeader(): void {
  const target = model.target!;
  const jobs = [...model.jobs.values()];
  const running = jobs.filter((job) => job.state === 'running').length;
  const summary = target.kind === 'run' ? describeRun(jobs[0]) : `${jobs.length} run${jobs.length === 1 ? '' : 's'}${running ? ` · ${running} running` : ''}`;
  const actions = target.kind === 'run' && jobs[0] ? runActions(model.details.get(jobs[0].id) ?? jobs[0]) : [];
  sections.header.replaceChildren(h('h1', {}, model.title), h('span', { className: 'summary' }, summary), h('span', { className: 'actions' }, ...actions));
}

function describeRun(job: JobView | undefined): string {
  if (!job) return '';
  return [job.state, placement(job), job.reason].filter(Boolean).join(' · ');
}

function actionButton(label: string, action: RunAction, jobIds: number[], secondary = true): HTMLElement {
  const button = el('vscode-button', { secondary, 'data-action': action }, label);
  button.addEventListener('click', () => post({ type: 'action', action, jobIds }));
  return button;
}

function runActions(job: JobView | JobDetail): HTMLElement[] {
  const buttons = [];
  if (!FINAL_STATES.includes(job.state)) buttons.push(actionButton('Cancel', 'cancel', [job.id]));
  buttons.push(actionButton('Rerun', 'rerun', [job.id], false), actionButton('Rerun with Params…', 'rerunWithParams', [job.id]), actionButton('Show Logs', 'showLogs', [job.id]));
  if ('record' in job && job.record.git) buttons.push(actionButton('Diff with Working Tree', 'openDiff', [job.id]));
  return buttons;
}

function toolbar(kind: string): HTMLElement[] {
  if (kind === 'gpus') return [];
  const items: HTMLElement[] = [];
  if (kind === 'experiment') {
    const filter = el('vscode-textfield', { placeholder: 'Filter runs (words, or param=value)', value: ui.filter, 'data-control': 'filter' }) as HTMLElement & { value: string };
    filter.addEventListener('input', () => changeUi({ filter: filter.value }));
    items.push(filter);
  }
  const xAxis = select('x', [['step', 'Step'], ['time', 'Wall time']], ui.xAxis, (value) => changeUi({ xAxis: value as DashboardUi['xAxis'] }));
  const smoothing = select('smoothing', ['0', '0.6', '0.8', '0.9', '0.95', '0.99'].map((value) => [value, value === '0' ? 'No smoothing' : `Smoothing ${value}`]), String(ui.smoothing), (value) => changeUi({ smoothing: Number(value) }));
  const log = el('vscode-checkbox', { checked: ui.logScale, 'data-control': 'log' }, 'Log scale') as HTMLElement & { checked: boolean };
  log.addEventListener('change', () => changeUi({ logScale: log.checked }));
  items.push(xAxis, smoothing, log);
  if (kind === 'experiment') {
    const compare = el('vscode-button', { secondary: true, 'data-action': 'compare' }, 'Compare Selected');
    compare.addEventListener('click', () => ui.selected.length && post({ type: 'action', action: 'compare', jobIds: ui.selected }));
    const clear = el('vscode-button', { secondary: true, 'data-action': 'clear' }, 'Clear Selection');
    clear.addEventListener('click', () => changeUi({ selected: [] }));
    items.push(compare, clear);
  }
  return items;
}

function select(control: string, options: string[][], value: string, onChange: (value: string) => void): HTMLElement {
  const element = el('vscode-single-select', { 'data-control': control, 'aria-label': control }) as HTMLElement & { value: string };
  for (const [optionValue, label] of options) element.append(el('vscode-option', { value: optionValue!, selected: optionValue === value }, label!));
  element.addEventListener('change', () => onChange(element.value));
  return element;
}

/** Draws the charts of the metrics in `only` (all when undefined), adding and removing charts as metrics come and go. */
function drawCharts(only: ReadonlySet<string> | undefined, palette: Palette): void {
  const runs = chartedRuns();
  const load = model.toLoad(runs);
  if (load) post({ type: 'load', ...load, maxPoints: overlayPointBudget(runs.length) });
  const names = model.metricNames(new Set(runs));
  for (const [name, chart] of charts) {
    if (!names.includes(name)) {
      chart.destroy();
      chart.element.remove();
      charts.delete(name);
    }
  }
  if (!names.length) sections.charts.replaceChildren(h('p', { className: 'empty' }, runs.length ? 'No metrics reported yet. A job reports one with a line like ::metric step=1 loss=0.5' : 'Select runs in the table to chart them.'));
  else sections.charts.querySelector(':scope > p.empty')?.remove();
  for (const name of names) {
    let chart = charts.get(name);
    if (!chart) {
      chart = new MetricChart(name, (metric, axis, range) => {
        // Zoomed back out: the series held (live points went on into them) are drawn again.
        if (!range) {
          model.unzoom(metric);
          schedule();
          return;
        }
        const overlaid = chartedRuns();
        post({ type: 'range', jobIds: overlaid, names: [metric], axis, range, maxPoints: Math.min(model.maxPoints, overlayPointBudget(overlaid.length)) });
      });
      charts.set(name, chart);
      sections.charts.append(chart.element);
    } else if (only && !only.has(name)) continue;
    const lines: ChartLine[] = [];
    for (const jobId of runs) {
      const series = model.chartSeries(jobId, name);
      const job = model.jobs.get(jobId);
      if (series && job) lines.push({ jobId, label: runLabel(job), series });
    }
    chart.update(lines, ui, palette);
  }
}

function drawScatter(palette: Palette): void {
  const params = model.paramNames();
  const metrics = model.metricNames();
  if (!params.length || !metrics.length) {
    sections.scatter.replaceChildren(h('h2', {}, 'Parameters against a metric'), h('p', { className: 'empty' }, 'Shown once the runs have parameters and metrics.'));
    return;
  }
  const param = params.includes(ui.scatterParam) ? ui.scatterParam : params[0]!;
  const metric = metrics.includes(ui.scatterMetric) ? ui.scatterMetric : metrics[0]!;
  const runs = table.visibleRuns().map((job) => job.id);
  sections.scatter.replaceChildren(
    h('h2', {}, 'Parameters against a metric'),
    scatterControls(params, metrics, param, metric, (scatterParam, scatterMetric) => changeUi({ scatterParam, scatterMetric })),
    renderScatter(model, param, metric, runs, new Set(ui.selected), palette),
  );
}

/** The run's record (run view), or the runs' parameters and records side by side with differences marked (compare). */
function drawRecord(): void {
  const details = [...model.jobs.keys()].sort((a, b) => a - b).map((id) => model.details.get(id)).filter((detail): detail is JobDetail => detail !== undefined);
  if (!details.length) {
    sections.record.replaceChildren(h('p', { className: 'empty' }, 'Reading the record…'));
    return;
  }
  const rows: [string, (detail: JobDetail) => string][] = [
    ...model.paramNames().map((name): [string, (detail: JobDetail) => string] => [`param ${name}`, (detail) => paramText(detail.params[name])]),
    ['status', (detail) => [detail.state, detail.exitCode === undefined ? '' : `exit ${detail.exitCode}`].filter(Boolean).join(', ')],
    ['command', (detail) => detail.command ?? detail.notebook ?? ''],
    ['host / GPU', placement],
    ['GPU model', (detail) => detail.record.host?.gpuModels.join(', ') ?? ''],
    ['driver', (detail) => detail.record.host?.driverVersion ?? ''],
    ['git commit', (detail) => (detail.record.git ? `${detail.record.git.commit.slice(0, 12)}${detail.record.git.dirty ? ' (uncommitted changes)' : ''}${detail.record.git.branch ? ` on ${detail.record.git.branch}` : ''}` : 'not a git checkout')],
    ['spec', (detail) => detail.record.specPath ?? '(unsaved)'],
    ['workdir', (detail) => detail.record.workdir],
    ['started', (detail) => (detail.startedAt ? new Date(detail.startedAt).toLocaleString() : '')],
    ['ended', (detail) => (detail.endedAt ? new Date(detail.endedAt).toLocaleString() : '')],
    ['attempts', (detail) => String(detail.attempts)],
    ...[...new Set(details.flatMap((detail) => Object.keys(detail.record.env)))].sort().map((name): [string, (detail: JobDetail) => string] => [`env ${name}`, (detail) => detail.record.env[name] ?? '']),
  ];
  const compare = details.length > 1;
  const head = h('tr', {}, h('th', {}, compare ? 'Differs' : ''), ...details.map((detail) => h('th', {}, runLabel(detail))));
  const body = rows.map(([label, value]) => {
    const values = details.map(value);
    const differs = compare && new Set(values).size > 1;
    return h('tr', { className: differs ? 'differs' : '' }, h('th', { scope: 'row' }, label), ...values.map((text) => h('td', {}, text)));
  });
  const differing = body.filter((row) => row.classList.contains('differs')).length;
  sections.record.replaceChildren(
    h('h2', {}, compare ? `Parameters and records (${differing} of ${rows.length} differ)` : 'Reproduction record'),
    h('div', { className: 'table-scroll' }, h('table', { className: `record-table ${compare ? 'compare' : ''}` }, h('thead', {}, head), h('tbody', {}, ...body))),
  );
}

window.addEventListener('message', (event: MessageEvent<ToWebviewMessage>) => {
  const message = event.data;
  if (!message || typeof message !== 'object' || typeof message.type !== 'string') return;
  if (message.type === 'snapshot') {
    vscode.setState({ target: message.target, ui });
    for (const chart of charts.values()) chart.destroy();
    charts.clear();
    sections.charts.replaceChildren();
  }
  model.apply(message);
  schedule();
});

// Redraw in the new colors when the theme changes (VS Code swaps the body's classes and variables).
new MutationObserver(() => {
  model.dirty.all = true;
  for (const chart of charts.values()) chart.destroy();
  charts.clear();
  sections.charts.replaceChildren();
  schedule();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

new ResizeObserver(() => {
  for (const chart of charts.values()) chart.resize(chart.element.clientWidth - 16);
}).observe(sections.charts);

post({ type: 'ready', selected: ui.selected });
