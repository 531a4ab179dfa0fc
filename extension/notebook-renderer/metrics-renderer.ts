/**
 * The notebook output renderer for a cell's metrics (CELL_METRICS_MIME): one small SVG sparkline
 * per metric, with its last value, and a link to the run's dashboard. It runs in the notebook's
 * webview, so it imports only the protocol's types and draws with plain DOM calls.
 */
import type { CellMetricsOutput, OpenDashboardMessage } from '../../common/protocol';
// The formatter alone, not the spec model: the bundle stays a few kilobytes.
import { formatMetricValue } from '../../common/spec/units';

/** The parts of VS Code's renderer API this renderer uses (the `vscode-notebook-renderer` types, by hand). */
interface RendererContext {
  postMessage?(message: unknown): void;
}
interface OutputItem {
  json(): unknown;
}

const WIDTH = 160;
const HEIGHT = 28;
const SVG = 'http://www.w3.org/2000/svg';

export function activate(context: RendererContext) {
  return {
    renderOutputItem(item: OutputItem, element: HTMLElement): void {
      render(item.json() as CellMetricsOutput, element, context);
    },
  };
}

function render(metrics: CellMetricsOutput, element: HTMLElement, context: RendererContext): void {
  element.replaceChildren();
  const box = document.createElement('div');
  box.className = 'drover-cell-metrics';
  box.style.cssText = 'display:flex;flex-wrap:wrap;gap:4px 16px;align-items:center;font-family:var(--vscode-editor-font-family);font-size:12px';
  for (const [name, points] of Object.entries(metrics.series)) {
    const row = document.createElement('span');
    row.style.cssText = 'display:inline-flex;gap:6px;align-items:center';
    row.dataset['metric'] = name;
    const label = document.createElement('span');
    label.textContent = name;
    const last = document.createElement('span');
    last.textContent = points.length ? formatMetricValue(points[points.length - 1]!.value) : '';
    last.style.opacity = '0.8';
    row.append(label, sparkline(points.map((point) => point.value)), last);
    box.append(row);
  }
  if (context.postMessage) {
    const link = document.createElement('a');
    link.href = '#';
    link.textContent = `Open dashboard (run ${metrics.jobId})`;
    link.title = `The full dashboard of ${metrics.runLabel}`;
    link.addEventListener('click', (event) => {
      event.preventDefault();
      const message: OpenDashboardMessage = { type: 'openDashboard', jobId: metrics.jobId };
      context.postMessage!(message);
    });
    box.append(link);
  }
  element.append(box);
}

/** A polyline through the values, scaled to the box; a single value is a dot. */
function sparkline(values: number[]): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('width', String(WIDTH));
  svg.setAttribute('height', String(HEIGHT));
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  const min = Math.min(...values);
  const span = Math.max(...values) - min || 1;
  const x = (index: number) => (values.length === 1 ? WIDTH / 2 : 2 + (index * (WIDTH - 4)) / (values.length - 1));
  const y = (value: number) => HEIGHT - 2 - ((value - min) * (HEIGHT - 4)) / span;
  if (values.length === 1) {
    const dot = document.createElementNS(SVG, 'circle');
    dot.setAttribute('cx', String(x(0)));
    dot.setAttribute('cy', String(HEIGHT / 2));
    dot.setAttribute('r', '2');
    dot.setAttribute('fill', 'currentColor');
    svg.append(dot);
    return svg;
  }
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', values.map((value, index) => `${x(index).toFixed(1)},${y(value).toFixed(1)}`).join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', 'currentColor');
  line.setAttribute('stroke-width', '1.5');
  svg.append(line);
  return svg;
}
