import uPlot from 'uplot';
import type { DashboardUi, SeriesColumns, XAxis } from '../../common/protocol';
import type { Palette } from './colors';
import { h } from './dom';

export interface ChartLine {
  jobId: number;
  label: string;
  series: SeriesColumns;
}

export type ZoomListener = (metric: string, axis: XAxis, range: { min: number; max: number } | null) => void;

/**
 * One metric's chart: a uPlot line per run, each with its own x values (uPlot's faceted mode,
 * so runs that logged at different steps or times overlay without aligning them first).
 * Dragging across it zooms the x range (the extension then asks the daemon for that range at
 * full detail); a double click zooms back out.
 */
export class MetricChart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly legend: HTMLElement;
  private plot: uPlot | undefined;
  private shape = '';
  private extent: { min: number; max: number } | null = null;
  private settingData = false;
  /** Whether the user zoomed in (a zoom back out is then reported once). */
  private zoomedIn = false;
  /** A rebuild dropped the zoom: the next data fits the scales to the whole series again. */
  private fitNext = false;
  points = 0;

  constructor(
    readonly metric: string,
    private readonly onZoom: ZoomListener,
  ) {
    this.plotHost = h('div', { className: 'plot' });
    this.legend = h('div', { className: 'legend' });
    this.element = h('section', { className: 'chart', dataset: { metric } }, h('h3', {}, metric), this.plotHost, this.legend);
  }

  /** Draws the lines; the plot is rebuilt only when what it is made of changed (runs, axis, scale, theme). */
  update(lines: readonly ChartLine[], ui: Pick<DashboardUi, 'xAxis' | 'smoothing' | 'logScale'>, palette: Palette): void {
    if (!lines.length) {
      // The overlaid runs' series are still being read (uPlot draws no chart without a line).
      this.destroy();
      this.shape = '';
      this.points = 0;
      this.extent = null;
      this.legend.replaceChildren('Reading…');
      return;
    }
    const shape = JSON.stringify([lines.map((line) => line.jobId), ui.xAxis, ui.logScale, palette.theme]);
    const data: uPlot.AlignedData = [null as unknown as number[], ...lines.map((line) => toXY(line.series, ui))] as unknown as uPlot.AlignedData;
    this.points = lines.reduce((sum, line) => sum + line.series.value.length, 0);
    this.extent = xExtent(data);
    if (shape !== this.shape || !this.plot) {
      this.shape = shape;
      this.plot?.destroy();
      // A zoom is into the plot it was made on: a new plot (other runs, axis, scale) ends it.
      if (this.zoomedIn) {
        this.fitNext = true;
        this.onZoom(this.metric, ui.xAxis, null);
      }
      this.zoomedIn = false;
      this.plot = new uPlot(this.options(lines, ui, palette), data, this.plotHost);
      this.legend.replaceChildren(
        ...lines.map((line) => {
          const swatch = h('span', { className: 'swatch' });
          swatch.style.background = palette.run(line.jobId);
          return h('span', { className: 'legend-item', title: `run ${line.jobId}` }, swatch, line.label);
        }),
      );
    } else {
      // Keep the user's zoom while new points come in.
      this.settingData = true;
      this.plot.setData(data, this.fitNext);
      this.fitNext = false;
      this.plot.redraw(false, true);
      this.settingData = false;
    }
  }

  resize(width: number): void {
    this.plot?.setSize({ width: Math.max(200, width), height: chartHeight() });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = undefined;
  }

  private options(lines: readonly ChartLine[], ui: Pick<DashboardUi, 'xAxis' | 'logScale'>, palette: Palette): uPlot.Options {
    const foreground = palette.color('--vscode-foreground', '#cccccc');
    const grid = palette.color('--vscode-editorWidget-border', 'rgba(128,128,128,0.25)');
    const font = `11px ${palette.color('--vscode-font-family', 'sans-serif')}`;
    const axis = (): uPlot.Axis => ({ stroke: foreground, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } });
    return {
      mode: 2,
      width: Math.max(200, this.plotHost.clientWidth || 400),
      height: chartHeight(),
      legend: { show: false },
      scales: { x: { time: ui.xAxis === 'time' }, y: { distr: ui.logScale ? 3 : 1 } },
      axes: [axis(), { ...axis(), size: 56 }],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false } },
      series: [
        {},
        ...lines.map(
          (line): uPlot.Series => ({
            label: line.label,
            stroke: palette.run(line.jobId),
            width: 1.5,
            paths: uPlot.paths.linear!(),
            points: { show: false },
            facets: [
              { scale: 'x', auto: true },
              { scale: 'y', auto: true },
            ],
          }),
        ),
      ],
      hooks: {
        setScale: [
          (plot, key) => {
            if (key !== 'x' || this.settingData) return;
            const { min, max } = plot.scales['x']!;
            if (min === undefined || max === undefined || min === null || max === null) return;
            const whole = this.extent === null || (min <= this.extent.min && max >= this.extent.max);
            // A new plot sets its scale too: only a zoom out of a zoom is one.
            if (whole && !this.zoomedIn) return;
            this.zoomedIn = !whole;
            // The time axis is in seconds for uPlot; the daemon counts milliseconds.
            const scale = ui.xAxis === 'time' ? 1000 : 1;
            this.onZoom(this.metric, ui.xAxis, whole ? null : { min: min * scale, max: max * scale });
          },
        ],
      },
    };
  }
}

function chartHeight(): number {
  return 200;
}

/** A series as x/y columns: x the step (or its position when it gave none) or the time in seconds; y smoothed. */
function toXY(series: SeriesColumns, ui: Pick<DashboardUi, 'xAxis' | 'smoothing' | 'logScale'>): [number[], (number | null)[]] {
  const x = ui.xAxis === 'time' ? series.at.map((at) => at / 1000) : series.step.map((step, index) => step ?? index);
  const y: (number | null)[] = smooth(series.value, ui.smoothing);
  if (ui.logScale) for (let index = 0; index < y.length; index++) if (!(y[index]! > 0)) y[index] = null;
  return [x, y];
}

/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the start of the line is
 * not pulled towards zero. `weight` 0 leaves the values as they are.
 */
export function smooth(values: readonly number[], weight: number): number[] {
  if (weight <= 0) return values.slice();
  const out = new Array<number>(values.length);
  let average = 0;
  let debias = 0;
  for (let index = 0; index < values.length; index++) {
    average = average * weight + (1 - weight) * values[index]!;
    debias = debias * weight + (1 - weight);
    out[index] = average / debias;
  }
  return out;
}

function xExtent(data: uPlot.AlignedData): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (let index = 1; index < data.length; index++) {
    const xs = (data[index] as unknown as [number[]])[0];
    if (!xs.length) continue;
    min = Math.min(min, xs[0]!);
    max = Math.max(max, xs.at(-1)!);
  }
  return min <= max ? { min, max } : null;
}
