import { formatMetricValue } from '../../common/spec';
import type { Palette } from './colors';
import { h, svg } from './dom';
import { paramText, type DashboardModel } from './model';
import { runLabel } from './runs-table';

const WIDTH = 520;
const HEIGHT = 260;
const PAD = { left: 64, right: 28, top: 12, bottom: 36 };

/**
 * A sweep at a glance: one dot per run, a parameter across, a metric's best value up. Numeric
 * parameters get a linear axis; others one slot per distinct value. Selected runs are drawn in
 * their chart color, the rest dimmed.
 */
export function renderScatter(model: DashboardModel, param: string, metric: string, runs: readonly number[], selected: ReadonlySet<number>, palette: Palette): SVGSVGElement {
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'scatter', role: 'img', 'aria-label': `${metric} against ${param}` });
  const dots = runs
    .map((id) => ({ job: model.jobs.get(id)!, value: model.summary(id, metric)?.best }))
    .filter((dot): dot is { job: NonNullable<typeof dot.job>; value: number } => dot.job !== undefined && dot.value !== undefined && dot.job.params[param] !== undefined);
  if (!dots.length) {
    root.append(svg('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'empty' }, `No run has both ${param || 'a parameter'} and ${metric || 'a metric'} yet.`));
    return root;
  }
  const numeric = dots.every((dot) => typeof dot.job.params[param] === 'number');
  const categories = [...new Set(dots.map((dot) => paramText(dot.job.params[param])))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const raw = dots.map((dot) => (numeric ? (dot.job.params[param] as number) : categories.indexOf(paramText(dot.job.params[param]))));
  // Learning rates and the like are swept over decades: spread them on a log axis.
  const logX = numeric && Math.min(...raw) > 0 && Math.max(...raw) / Math.min(...raw) >= 20;
  const xs = logX ? raw.map(Math.log10) : raw;
  const ys = dots.map((dot) => dot.value);
  const [xMin, xMax] = padded(Math.min(...xs), Math.max(...xs));
  const [yMin, yMax] = padded(Math.min(...ys), Math.max(...ys));
  const px = (x: number) => PAD.left + ((x - xMin) / (xMax - xMin)) * (WIDTH - PAD.left - PAD.right);
  const py = (y: number) => HEIGHT - PAD.bottom - ((y - yMin) / (yMax - yMin)) * (HEIGHT - PAD.top - PAD.bottom);
  root.append(svg('line', { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, class: 'axis' }));
  root.append(svg('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, class: 'axis' }));
  // Ticks at the swept values themselves (a sweep has few), else at the ends and the middle.
  const distinct = [...new Set(xs)];
  const xTicks = !numeric ? categories.map((_, index) => index) : distinct.length <= 8 ? distinct : [xMin, (xMin + xMax) / 2, xMax];
  const tickText = (tick: number) => (!numeric ? categories[tick]! : formatMetricValue(logX ? 10 ** tick : tick));
  for (const tick of xTicks) root.append(svg('text', { x: px(tick), y: HEIGHT - PAD.bottom + 14, 'text-anchor': 'middle', class: 'tick' }, tickText(tick)));
  for (const tick of [yMin, (yMin + yMax) / 2, yMax]) root.append(svg('text', { x: PAD.left - 6, y: py(tick) + 4, 'text-anchor': 'end', class: 'tick' }, formatMetricValue(tick)));
  root.append(svg('text', { x: (WIDTH + PAD.left) / 2, y: HEIGHT - 4, 'text-anchor': 'middle', class: 'label' }, param));
  root.append(svg('text', { x: 12, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'label', transform: `rotate(-90 12 ${HEIGHT / 2})` }, `${metric} (best)`));
  if (logX) root.append(svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 4, 'text-anchor': 'end', class: 'tick' }, 'log scale'));
  dots.forEach((dot, index) => {
    const isSelected = selected.has(dot.job.id);
    const circle = svg('circle', { cx: px(xs[index]!), cy: py(ys[index]!), r: isSelected ? 6 : 4.5, class: isSelected ? 'dot selected' : 'dot', 'data-run': dot.job.id });
    // As a style, not an attribute: the style sheet's fill would win over an attribute.
    if (isSelected) circle.style.fill = palette.run(dot.job.id);
    circle.append(svg('title', {}, `${runLabel(dot.job)}: ${param} = ${paramText(dot.job.params[param])}, ${metric} = ${formatMetricValue(dot.value)}`));
    root.append(circle);
  });
  return root;
}

function padded(min: number, max: number): [number, number] {
  if (min === max) return [min - 1, max + 1];
  const margin = (max - min) * 0.08;
  return [min - margin, max + margin];
}

export function scatterControls(params: string[], metrics: string[], param: string, metric: string, change: (param: string, metric: string) => void): HTMLElement {
  const select = (label: string, options: string[], value: string, onChange: (value: string) => void) => {
    const element = document.createElement('vscode-single-select') as HTMLElement & { value: string };
    element.setAttribute('aria-label', label);
    element.dataset['control'] = label;
    for (const option of options) {
      const item = document.createElement('vscode-option');
      item.setAttribute('value', option);
      if (option === value) item.setAttribute('selected', '');
      item.textContent = option;
      element.append(item);
    }
    element.addEventListener('change', () => onChange(element.value));
    return h('label', { className: 'control' }, `${label} `, element);
  };
  return h('div', { className: 'toolbar' }, select('Parameter', params, param, (value) => change(value, metric)), select('Metric', metrics, metric, (value) => change(param, value)));
}
