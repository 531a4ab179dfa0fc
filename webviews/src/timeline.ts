import type { GpuSampleSeries, JobView } from '../../common/protocol';
import { formatElapsed, formatGib } from '../../common/spec';
import type { Palette } from './colors';
import { h, svg } from './dom';
import { laneKey, type Utilization } from './model';
import { runLabel } from './runs-table';

/** The utilization strip's x units (stretched to the lane's width) and y units (percent). */
const STRIP_WIDTH = 1000;

/**
 * Which run held which GPU when: a lane per host GPU, a bar per run that was placed on it
 * (running ones reach the present). Runs without a GPU are not shown. With `utilization` (the
 * GPU timeline), each lane also shows its GPU's sampled utilization under the bars, every GPU
 * that was sampled gets a lane, and a lane without samples says so. Returns the element and the
 * utilization points drawn.
 */
export function renderTimeline(jobs: Iterable<JobView>, now: number, palette: Palette, utilization?: Utilization): { element: HTMLElement; samples: number } {
  const lanes = new Map<string, JobView[]>();
  let start = Infinity;
  let end = -Infinity;
  for (const job of jobs) {
    if (!job.host || !job.gpus?.length || job.startedAt === undefined) continue;
    for (const gpu of job.gpus) {
      const lane = laneKey(job.host, gpu);
      lanes.set(lane, [...(lanes.get(lane) ?? []), job]);
    }
    start = Math.min(start, job.startedAt);
    end = Math.max(end, job.endedAt ?? now);
  }
  for (const [lane, series] of utilization?.series ?? []) {
    if (!series.at.length) continue;
    if (!lanes.has(lane)) lanes.set(lane, []);
    start = Math.min(start, series.at[0]!);
    end = Math.max(end, series.at.at(-1)!);
  }
  if (!lanes.size) return { element: h('p', { className: 'empty' }, utilization ? 'No run held a GPU yet, and no GPU utilization was sampled.' : 'No run of these held a GPU yet.'), samples: 0 };
  const span = Math.max(1, end - start);
  const tip = h('div', { className: 'util-tip', hidden: true, role: 'status' });
  const cursor = h('span', { className: 'util-cursor', hidden: true });
  let drawn = 0;
  let thinned = false;
  const rows = [...lanes.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([lane, held]) => {
      const track = h(
        'div',
        { className: `lane-track${utilization ? ' with-utilization' : ''}` },
        ...held.map((job) => {
          const bar = h('span', { className: `bar state-${job.state}`, title: `${runLabel(job)}: ${job.state}, ${formatElapsed((job.endedAt ?? now) - job.startedAt!)}`, dataset: { run: String(job.id) } }, `#${job.id}`);
          bar.style.left = `${(((job.startedAt! - start) / span) * 100).toFixed(3)}%`;
          bar.style.width = `${Math.max(0.5, (((job.endedAt ?? now) - job.startedAt!) / span) * 100).toFixed(3)}%`;
          bar.style.background = palette.run(job.id);
          return bar;
        }),
      );
      if (utilization) {
        const series = utilization.series.get(lane);
        const strip = series && utilizationStrip(lane, series, start, span, utilization.intervalMs);
        if (strip) {
          drawn += strip.points;
          thinned ||= series.samples.some((count) => count > 1);
          track.append(strip.element);
          track.addEventListener('mousemove', (event) => showSample({ tip, cursor }, track, lane, series, start, span, strip.gapMs, event));
          track.addEventListener('mouseleave', () => (tip.hidden = cursor.hidden = true));
        } else track.append(h('span', { className: 'util-none' }, 'utilization not sampled'));
      }
      return h('div', { className: 'lane', dataset: { lane } }, h('span', { className: 'lane-name' }, lane), track);
    });
  const legend = utilization && h('p', { className: 'util-legend' }, ...utilizationLegend(utilization.intervalMs, drawn > 0, thinned));
  const element = h(
    'div',
    { className: 'timeline' },
    ...rows,
    h('div', { className: 'lane axis' }, h('span', { className: 'lane-name' }), h('div', { className: 'lane-track' }, h('span', { className: 'from' }, new Date(start).toLocaleString()), h('span', { className: 'to' }, new Date(end).toLocaleString()))),
    legend,
    tip,
  );
  return { element, samples: drawn };
}

function utilizationLegend(intervalMs: number, sampled: boolean, thinned: boolean): (Node | string)[] {
  if (!sampled) return ['Utilization not sampled: no host probe reported these GPUs in this window.'];
  return [
    h('span', { className: 'util-swatch' }),
    `GPU utilization (0–100%, under each lane), sampled every ${formatElapsed(intervalMs)}`,
    thinned ? '; where a lane has more samples than room, each step is the mean of the samples in its span.' : '.',
  ];
}

/**
 * The GPU's utilization as steps: each point holds its value over its share of the time, and a
 * gap (the host not probed, or the GPU reporting no value) is left empty. Undefined when nothing
 * in the window reported a value.
 */
function utilizationStrip(lane: string, series: GpuSampleSeries, start: number, span: number, intervalMs: number): { element: SVGSVGElement; points: number; gapMs: number } | undefined {
  const step = typicalStep(series.at, intervalMs);
  const gapMs = 3 * step;
  const x = (at: number) => Math.min(STRIP_WIDTH, Math.max(0, ((at - start) / span) * STRIP_WIDTH)).toFixed(2);
  const y = (value: number) => (100 - Math.min(100, Math.max(0, value))).toFixed(1);
  let area = '';
  let line = '';
  let points = 0;
  let sum = 0;
  let peak = 0;
  let open: { right: number; value: number } | undefined;
  const close = () => {
    if (!open) return;
    line += ` L${x(open.right)},${y(open.value)}`;
    area += ` L${x(open.right)},${y(open.value)} L${x(open.right)},100 Z`;
    open = undefined;
  };
  series.at.forEach((at, index) => {
    const value = series.utilization[index];
    if (value === null || value === undefined) return close();
    const previous = series.at[index - 1];
    const left = open && previous !== undefined && at - previous <= gapMs ? (previous + at) / 2 : undefined;
    if (left === undefined) {
      close();
      const from = at - step / 2;
      area += ` M${x(from)},100 L${x(from)},${y(value)}`;
      line += ` M${x(from)},${y(value)}`;
    } else {
      area += ` L${x(left)},${y(open!.value)} L${x(left)},${y(value)}`;
      line += ` L${x(left)},${y(open!.value)} L${x(left)},${y(value)}`;
    }
    open = { right: at + step / 2, value };
    points++;
    sum += value;
    peak = Math.max(peak, value);
  });
  close();
  if (!points) return undefined;
  const element = svg('svg', { class: 'util', viewBox: `0 0 ${STRIP_WIDTH} 100`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${lane} utilization: mean ${Math.round(sum / points)}%, peak ${Math.round(peak)}%` });
  element.append(svg('path', { class: 'util-area', d: area.trim() }), svg('path', { class: 'util-line', d: line.trim() }));
  return { element, points, gapMs };
}

/** The usual time between points: the probe interval, or the spans of a thinned series. */
function typicalStep(at: readonly number[], intervalMs: number): number {
  const steps = at.slice(1).map((value, index) => value - at[index]!).sort((a, b) => a - b);
  return Math.max(intervalMs, steps[Math.floor(steps.length / 2)] ?? 0);
}

/** The sample nearest the pointer: in words in the tip above the lane, and marked on it. */
function showSample({ tip, cursor }: { tip: HTMLElement; cursor: HTMLElement }, track: HTMLElement, lane: string, series: GpuSampleSeries, start: number, span: number, gapMs: number, event: MouseEvent): void {
  const box = track.getBoundingClientRect();
  const time = start + ((event.clientX - box.left) / box.width) * span;
  const index = nearest(series.at, time);
  const value = series.utilization[index];
  if (value === null || value === undefined || Math.abs(series.at[index]! - time) > gapMs / 2) {
    tip.hidden = cursor.hidden = true;
    return;
  }
  if (cursor.parentElement !== track) track.append(cursor);
  cursor.style.left = `${(((series.at[index]! - start) / span) * 100).toFixed(3)}%`;
  cursor.hidden = false;
  const samples = series.samples[index]!;
  tip.textContent = `${lane} · ${new Date(series.at[index]!).toLocaleTimeString()}: ${Math.round(value)}% utilization, ${formatGib(series.memoryUsedBytes[index]!)} GiB used${samples > 1 ? ` (mean of ${samples} samples)` : ''}`;
  tip.hidden = false;
  const parent = tip.parentElement!.getBoundingClientRect();
  tip.style.left = `${Math.max(0, Math.min(event.clientX - parent.left + 12, parent.width - tip.offsetWidth))}px`;
  tip.style.top = `${box.top - parent.top - tip.offsetHeight - 2}px`;
}

/** The index of the value in sorted `values` nearest `target`. */
function nearest(values: readonly number[], target: number): number {
  let low = 0;
  let high = values.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (values[middle]! < target) low = middle + 1;
    else high = middle;
  }
  return low > 0 && target - values[low - 1]! < values[low]! - target ? low - 1 : low;
}
