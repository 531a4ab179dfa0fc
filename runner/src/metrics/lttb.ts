import type { MetricAxis, MetricPointView, MetricSeries, MetricsParams } from '../../../common/protocol';
import { xOf, type SeriesPoint } from '../store/metric-tiers';
import type { Store } from '../store/store';

/**
 * A run's metrics as `drover/metrics` answers them: as stored, or cut to a range and thinned to
 * `maxPoints` per series. With `maxPoints`, a series is read through the store's tiers: a long
 * one as a sample that holds every part's extremes (see MetricTiers), thinned from there.
 */
export function readMetrics(store: Store, jobId: number, options: Omit<MetricsParams, 'id'>): MetricSeries[] {
  const { range, maxPoints } = options;
  if (maxPoints === undefined) {
    const series = store.metrics(jobId, options.names);
    return range ? series.map((entry) => downsampleSeries(entry, range, undefined)) : series;
  }
  return store.metricNames(jobId, options.names).map((name) => {
    const window = store.metricWindow(jobId, name, range, maxPoints);
    return { name, points: thin(window.points, range?.axis ?? 'step', maxPoints, window.every), total: window.total };
  });
}

/** `threshold` of 4 or more: room for the first, last, lowest and highest points. */
export function lttbIndices(x: ArrayLike<number>, y: ArrayLike<number>, threshold: number): number[] {
  const length = x.length;
  if (threshold >= length || length <= 2) return Array.from({ length }, (_, index) => index);
  // Room for the extremes, put back at the end if the buckets dropped them.
  const buckets = Math.max(2, Math.floor(threshold) - 2);
  const kept: number[] = [0];
  const every = (length - 2) / (buckets - 2);
  let previous = 0;
  for (let bucket = 0; bucket < buckets - 2; bucket++) {
    // The next bucket's average is the third corner of the triangle.
    const nextStart = Math.floor((bucket + 1) * every) + 1;
    const nextEnd = Math.min(Math.floor((bucket + 2) * every) + 1, length);
    let averageX = 0;
    let averageY = 0;
    for (let index = nextStart; index < nextEnd; index++) {
      averageX += x[index]!;
      averageY += y[index]!;
    }
    const count = Math.max(1, nextEnd - nextStart);
    averageX /= count;
    averageY /= count;
    const start = Math.floor(bucket * every) + 1;
    const end = Math.floor((bucket + 1) * every) + 1;
    const previousX = x[previous]!;
    const previousY = y[previous]!;
    let bestArea = -1;
    let best = start;
    for (let index = start; index < end; index++) {
      const area = Math.abs((previousX - averageX) * (y[index]! - previousY) - (previousX - x[index]!) * (averageY - previousY));
      if (area > bestArea) {
        bestArea = area;
        best = index;
      }
    }
    kept.push(best);
    previous = best;
  }
  kept.push(length - 1);
  let low = 0;
  let high = 0;
  for (let index = 1; index < length; index++) {
    if (y[index]! < y[low]!) low = index;
    if (y[index]! > y[high]!) high = index;
  }
  const set = new Set(kept);
  if (!set.has(low)) kept.push(low);
  if (!set.has(high) && high !== low) kept.push(high);
  return kept.length === set.size ? kept : kept.sort((a, b) => a - b);
}

/**
 * A series cut to the points whose x lies in `range` and thinned to `maxPoints` by LTTB. On the
 * step axis, a point that gave no step sits at its position in the series.
 */
export function downsampleSeries(series: MetricSeries, range: MetricsParams['range'], maxPoints: number | undefined): MetricSeries {
  const axis = range?.axis ?? 'step';
  const points = series.points.map((point, seq): SeriesPoint => ({ ...point, seq }));
  const inRange = range ? points.filter((point) => xOf(point, axis) >= range.min && xOf(point, axis) <= range.max) : points;
  return { name: series.name, points: thin(inRange, axis, maxPoints ?? inRange.length, true), total: inRange.length };
}

/**
 * Points (in the order reported) thinned to `maxPoints` by LTTB on `axis`, in x order. When they
 * are `every` point of the range and no more than `maxPoints`, all of them as they are.
 */
function thin(points: readonly SeriesPoint[], axis: MetricAxis, maxPoints: number, every: boolean): MetricPointView[] {
  const view = ({ step, value, at }: SeriesPoint): MetricPointView => ({ step, value, at });
  if (every && points.length <= maxPoints) return points.map(view);
  let ordered = points;
  let x = Float64Array.from(points, (point) => xOf(point, axis));
  // Reported steps can go back (a resumed run): LTTB needs x in order.
  if (x.some((value, index) => index > 0 && value < x[index - 1]!)) {
    const order = Array.from(x.keys()).sort((a, b) => x[a]! - x[b]!);
    ordered = order.map((index) => points[index]!);
    x = Float64Array.from(order, (index) => x[index]!);
  }
  const y = Float64Array.from(ordered, (point) => point.value);
  return lttbIndices(x, y, maxPoints).map((index) => view(ordered[index]!));
}
