import type { MetricPointView, MetricSeries, MetricsParams } from '../../../common/protocol';

/**
 * Largest-Triangle-Three-Buckets (Steinarsson, 2013): picks `threshold` of a series' points that
 * keep its visual shape, so a chart of a million points gets the few thousand it can show. The
 * first and last points are always kept, and so are the series' lowest and highest values (plain
 * LTTB usually keeps them; a chart of a loss must, so they are put back when a bucket lost them).
 *
 * `x` must not decrease. Returns the kept indices, ascending.
 */
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
  const xOf = (point: MetricPointView, index: number) => (axis === 'time' ? point.at : (point.step ?? index));
  const inRange = range ? series.points.filter((point, index) => xOf(point, index) >= range.min && xOf(point, index) <= range.max) : series.points;
  if (maxPoints === undefined || inRange.length <= maxPoints) return { name: series.name, points: inRange, total: inRange.length };
  // Reported steps can go back (a resumed run): LTTB needs x in order.
  const ordered = inRange.map((point, index) => ({ point, x: xOf(point, index) })).sort((a, b) => a.x - b.x);
  const kept = lttbIndices(
    ordered.map((entry) => entry.x),
    ordered.map((entry) => entry.point.value),
    maxPoints,
  );
  return { name: series.name, points: kept.map((index) => ordered[index]!.point), total: inRange.length };
}
