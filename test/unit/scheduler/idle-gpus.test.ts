import assert from 'node:assert/strict';
import { IdleGpuWatch } from '../../../runner/src/daemon/idle-gpus';

describe('idle GPU watch', () => {
  it('flags a run once all its GPUs have stayed at ~0% for the set time, and clears it when they work', () => {
    const watch = new IdleGpuWatch(10_000);
    assert.equal(watch.observe(1, [0, 1], 1_000, 1_000), false, 'idle, not for long enough yet');
    assert.equal(watch.flaggedSince(1, 10_999), undefined);
    assert.equal(watch.observe(1, [0, 0], 11_000, 11_000), true, 'idle since the first idle probe, 10 s ago');
    assert.equal(watch.flaggedSince(1, 11_000), 1_000);
    assert.equal(watch.observe(1, [0, 35], 12_000, 12_000), true, 'one GPU at work: not idle');
    assert.equal(watch.flaggedSince(1, 30_000), undefined);
  });

  it('never calls a GPU idle whose utilization the driver does not report', () => {
    const watch = new IdleGpuWatch(0);
    assert.equal(watch.observe(1, [null], 0, 5_000), false);
    assert.equal(watch.observe(2, [0, undefined], 0, 5_000), false);
    assert.equal(watch.observe(3, [], 0, 5_000), false);
    assert.equal(watch.flaggedSince(1, 5_000), undefined);
  });

  it('forgets a run that ended', () => {
    const watch = new IdleGpuWatch(0);
    watch.observe(1, [0], 0, 0);
    assert.equal(watch.flaggedSince(1, 0), 0);
    watch.forget(1);
    assert.equal(watch.flaggedSince(1, 0), undefined);
  });
});
