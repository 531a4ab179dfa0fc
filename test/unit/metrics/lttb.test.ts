import assert from 'node:assert/strict';
import fc from 'fast-check';
import { downsampleSeries, lttbIndices } from '../../../runner/src/metrics/lttb';
import type { MetricSeries } from '../../../common/protocol';

function argMin(values: number[]): number {
  return values.reduce((best, value, index) => (value < values[best]! ? index : best), 0);
}

function argMax(values: number[]): number {
  return values.reduce((best, value, index) => (value > values[best]! ? index : best), 0);
}

describe('LTTB downsampling', () => {
  it('keeps the first and last points, the lowest and highest, in order and within the count', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 3, maxLength: 2000 }), fc.integer({ min: 4, max: 300 }), (values, threshold) => {
        const x = values.map((_, index) => index);
        const kept = lttbIndices(x, values, threshold);
        assert.ok(kept.length <= threshold || kept.length === values.length, `${kept.length} points kept for ${threshold}`);
        assert.equal(kept[0], 0);
        assert.equal(kept.at(-1), values.length - 1);
        for (let index = 1; index < kept.length; index++) assert.ok(kept[index]! > kept[index - 1]!, 'ascending, no repeats');
        const keptValues = kept.map((index) => values[index]!);
        assert.equal(Math.min(...keptValues), values[argMin(values)]);
        assert.equal(Math.max(...keptValues), values[argMax(values)]);
      }),
    );
  });

  it('keeps a lone spike in a million flat points', () => {
    const length = 1_000_000;
    const x = new Float64Array(length).map((_, index) => index);
    const y = new Float64Array(length).fill(1);
    y[654_321] = 50;
    y[123_456] = -3;
    const kept = lttbIndices(x, y, 1000);
    assert.ok(kept.length <= 1000);
    assert.ok(kept.includes(654_321) && kept.includes(123_456));
  });

  it('returns every point when there are no more than asked for', () => {
    assert.deepEqual(lttbIndices([1, 2, 3, 4], [4, 3, 2, 1], 10), [0, 1, 2, 3]);
  });

  it('cuts a series to a range on either axis before thinning it, and counts what was in range', () => {
    const series: MetricSeries = { name: 'loss', points: Array.from({ length: 10_000 }, (_, step) => ({ step, value: Math.sin(step / 100), at: 1000 + step * 10 })), total: 10_000 };
    const bySteps = downsampleSeries(series, { axis: 'step', min: 2000, max: 2999 }, 100);
    assert.equal(bySteps.total, 1000);
    assert.ok(bySteps.points.length <= 100);
    assert.equal(bySteps.points[0]!.step, 2000);
    assert.equal(bySteps.points.at(-1)!.step, 2999);
    const byTime = downsampleSeries(series, { axis: 'time', min: 1000, max: 1090 }, undefined);
    assert.deepEqual(byTime.points.map((point) => point.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
