import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runner/src/store/store';

const MINUTE = 60_000;
const GIB = 2 ** 30;

/** A probe's GPUs: GPU i at `utilization + i`, with i GiB used. */
function gpus(count: number, utilization: number | null) {
  return Array.from({ length: count }, (_, index) => ({ index, utilizationPercent: utilization === null ? null : utilization + index, memoryUsedBytes: index * GIB }));
}

describe('store: GPU utilization samples', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-samples-'));
    store = Store.open(join(dir, 'drover.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records each probe once per GPU, and reads them back oldest first, per host and GPU', () => {
    store.transaction(() => {
      for (let minute = 0; minute < 5; minute++) store.gpuSamples.record('box', minute * MINUTE, gpus(2, minute * 10), -Infinity);
      // The same probe saved again (the host's state changed) is not a second sample.
      store.gpuSamples.record('box', 4 * MINUTE, gpus(2, 99), -Infinity);
      store.gpuSamples.record('other', 0, gpus(1, null), -Infinity);
    });
    const series = store.gpuSamples.read();
    assert.deepEqual(series.map((entry) => [entry.host, entry.gpu, entry.total]), [['box', 0, 5], ['box', 1, 5], ['other', 0, 1]]);
    assert.deepEqual(series[1]!.utilization, [1, 11, 21, 31, 41]);
    assert.deepEqual(series[1]!.at, [0, 1, 2, 3, 4].map((minute) => minute * MINUTE));
    assert.deepEqual(series[1]!.memoryUsedBytes, [GIB, GIB, GIB, GIB, GIB]);
    assert.deepEqual(series[2]!.utilization, [null], 'a GPU that reports no utilization ([N/A]) keeps a null');
    assert.deepEqual(store.gpuSamples.read({ hosts: ['other'] }).map((entry) => entry.host), ['other']);
    assert.deepEqual(store.gpuSamples.read({ from: 2 * MINUTE, to: 3 * MINUTE })[0]!.utilization, [20, 30]);
  });

  it('keeps a bounded window: a GPU sampled again drops what is older than the retention, prune drops everyone', () => {
    const retention = 10 * MINUTE;
    store.transaction(() => {
      for (let minute = 0; minute <= 60; minute++) store.gpuSamples.record('box', minute * MINUTE, gpus(1, 50), minute * MINUTE - retention);
      // A GPU that stopped being probed an hour ago.
      store.gpuSamples.record('gone', 0, gpus(1, 50), -retention);
    });
    const [box, gone] = store.gpuSamples.read();
    assert.equal(box!.total, 11, 'the last ten minutes and the sample at their start');
    assert.equal(box!.at[0], 50 * MINUTE);
    assert.equal(gone!.total, 1);
    assert.equal(store.transaction(() => store.gpuSamples.prune(60 * MINUTE - retention)), 1);
    assert.deepEqual(store.gpuSamples.read().map((entry) => entry.host), ['box']);
  });

  it('thins a long range to the mean of each span, and says how many samples each point stands for', () => {
    store.transaction(() => {
      // 100 probes a second apart: utilization alternates 0 and 100 (a busy/idle duty cycle).
      for (let second = 0; second < 100; second++) store.gpuSamples.record('box', second * 1000, [{ index: 0, utilizationPercent: second % 2 ? 100 : 0, memoryUsedBytes: second * GIB }], -Infinity);
    });
    const [thin] = store.gpuSamples.read({ from: 0, to: 99_999, maxPoints: 10 });
    assert.equal(thin!.total, 100);
    assert.equal(thin!.at.length, 10);
    assert.deepEqual(thin!.samples, Array(10).fill(10));
    // The mean, not the peak: a GPU busy half the time reads 50%.
    assert.deepEqual(thin!.utilization, Array(10).fill(50));
    assert.equal(thin!.at[0], 4500, 'at the mean of its span');
    assert.equal(thin!.memoryUsedBytes[0], 4.5 * GIB);
    // Few enough samples: as they are.
    assert.deepEqual(store.gpuSamples.read({ from: 0, to: 4999, maxPoints: 10 })[0]!.samples, [1, 1, 1, 1, 1]);
  });

  it('forgets a host’s samples with the host, and keeps the rest across a reopen', () => {
    store.transaction(() => {
      store.saveHost({ name: 'box', kind: 'ssh', state: 'up', os: 'Linux', cpus: 8, memoryBytes: 64 * GIB, updatedAt: 0, gpus: [] });
      store.gpuSamples.record('box', 0, gpus(1, 10), -Infinity);
      store.gpuSamples.record('local', 0, gpus(1, 20), -Infinity);
    });
    store.transaction(() => store.removeHost('box'));
    store.close();
    store = Store.open(join(dir, 'drover.db'));
    assert.deepEqual(store.gpuSamples.read().map((entry) => [entry.host, entry.utilization]), [['local', [20]]]);
  });
});
