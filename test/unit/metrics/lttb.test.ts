import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downsampleSeries, lttbIndices, readMetrics } from '../../../runner/src/metrics/lttb';
import { Store } from '../../../runner/src/store/store';
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

  describe('from the state file', () => {
    let dir: string;
    let store: Store;
    const T = 1_700_000_000_000;

    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-lttb-'));
      store = Store.open(path.join(dir, 'state.db'));
    });

    afterEach(() => {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('thins a long stored series: ends, lowest and highest kept, in order, counted', () => {
      const points = Array.from({ length: 50_000 }, (_, step) => ({ jobId: 1, attempt: 1, name: 'loss', step, value: Math.cos(step / 500), at: T + step }));
      points[31_337]!.value = 9;
      points[4_242]!.value = -7;
      store.transaction(() => store.addMetrics([...points, { jobId: 1, attempt: 1, name: 'acc', step: 0, value: 0.5, at: T }]));
      const [loss, acc] = readMetrics(store, 1, { maxPoints: 500 });
      assert.equal(loss!.name, 'loss');
      assert.equal(loss!.total, 50_000);
      assert.ok(loss!.points.length <= 500 && loss!.points.length > 400, `${loss!.points.length} points`);
      const steps = loss!.points.map((point) => point.step!);
      assert.deepEqual(steps, [...steps].sort((a, b) => a - b), 'in step order');
      assert.equal(steps[0], 0);
      assert.equal(steps.at(-1), 49_999);
      assert.ok(steps.includes(31_337) && steps.includes(4_242), 'the spike and the dip are kept');
      assert.deepEqual(acc, { name: 'acc', points: [{ step: 0, value: 0.5, at: T }], total: 1 });
      // A range on the time axis: only its points, counted.
      const [window] = readMetrics(store, 1, { names: ['loss'], range: { axis: 'time', min: T + 30_000, max: T + 39_999 }, maxPoints: 100 });
      assert.equal(window!.total, 10_000);
      assert.ok(window!.points.every((point) => point.at >= T + 30_000 && point.at <= T + 39_999));
      assert.ok(window!.points.some((point) => point.value === 9));
    });

    it('reads a series whose steps are missing in full before thinning it (its x is its position)', () => {
      store.transaction(() => store.addMetrics(Array.from({ length: 5_000 }, (_, index) => ({ jobId: 2, attempt: 1, name: 'reward', step: null, value: index === 2_500 ? 100 : index % 7, at: T + index }))));
      const [reward] = readMetrics(store, 2, { maxPoints: 50 });
      assert.equal(reward!.total, 5_000);
      assert.ok(reward!.points.length <= 50);
      assert.ok(reward!.points.some((point) => point.value === 100));
    });
  });
});
