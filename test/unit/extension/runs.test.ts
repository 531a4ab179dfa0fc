import assert from 'node:assert/strict';
import type { JobView, MetricSeries } from '../../../common/protocol';
import { expiredRuns } from '../../../extension/src/model/retention';
import { groupDescription, groupRuns, pickKeyMetric, runDescription, stateIcon } from '../../../extension/src/model/runs';
import { RunStore } from '../../../extension/src/store/run-store';

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

function job(id: number, fields: Partial<JobView> = {}): JobView {
  return { id, submissionId: 1, specName: 'train', key: 'train', state: 'succeeded', priority: 0, resources: { gpus: { count: 1 } }, params: {}, attempts: 1, createdAt: T0, ...fields };
}

function series(name: string, ...values: number[]): MetricSeries {
  return { name, points: values.map((value, step) => ({ step, value, at: T0 + step })), total: values.length };
}


describe('extension: runs history', () => {
  it('sums a run up by the last value of its first metric series', () => {
    assert.deepEqual(pickKeyMetric([series('loss', 0.9, 0.5, 0.25), series('acc', 0.5, 0.9)]), { name: 'loss', value: 0.25 });
    assert.deepEqual(pickKeyMetric([series('empty'), series('acc', 0.7)]), { name: 'acc', value: 0.7 });
    assert.equal(pickKeyMetric([]), undefined);
  });

  it('groups runs by spec, the most recently active group first and runs newest first', () => {
    const groups = groupRuns([job(1, { specName: 'a', endedAt: T0 + 10 }), job(2, { specName: 'b', endedAt: T0 + 50 }), job(3, { specName: 'a', state: 'running', startedAt: T0 + 20 }), job(4, { specName: 'a', state: 'failed', endedAt: T0 + 5 })]);
    assert.deepEqual(
      groups.map((group) => [group.name, group.runs.map((run) => run.id)]),
      [['b', [2]], ['a', [4, 3, 1]]],
    );
    assert.equal(groupDescription(groups[1]!), '3 runs · 1 running · 1 failed');
  });

  it('describes a run with its state, key metric and duration, and picks its icon', () => {
    assert.equal(runDescription(job(1, { startedAt: T0, endedAt: T0 + 65_000 }), { name: 'loss', value: 0.123456 }, T0), 'succeeded · loss 0.1235 · 1m05s');
    assert.equal(runDescription(job(2, { state: 'running', startedAt: T0 }), undefined, T0 + 3000), 'running · 3s');
    assert.equal(runDescription(job(3, { state: 'failed', exitCode: 1 }), undefined, T0), 'failed (exit 1)');
    assert.deepEqual(stateIcon('failed'), { id: 'error', color: 'testing.iconFailed' });
    assert.equal(stateIcon('running').id, 'sync~spin');
    // A sweep run stopped early is its own ending, not a failure.
    assert.equal(runDescription(job(4, { state: 'stopped', signal: 'SIGTERM', startedAt: T0, endedAt: T0 + 4000 }), { name: 'loss', value: 5 }, T0), 'stopped early · loss 5 · 4s');
    assert.deepEqual(stateIcon('stopped'), { id: 'stop-circle', color: 'charts.yellow' });
    assert.equal(groupDescription(groupRuns([job(5, { state: 'stopped' }), job(6)])[0]!), '2 runs · 1 stopped');
  });

  it('finds the finished runs older than the retention period, and none for 0 days', () => {
    const now = T0 + 30 * DAY;
    const jobs = [job(1, { endedAt: T0 }), job(2, { endedAt: now - DAY }), job(3, { state: 'running', createdAt: T0 }), job(4, { state: 'cancelled', createdAt: T0 })];
    assert.deepEqual(expiredRuns(jobs, 7, now), [1, 4]);
    assert.deepEqual(expiredRuns(jobs, 0, now), []);
  });
});

describe('extension: run store', () => {
  it('applies events in the order they come and tells listeners once per reload', () => {
    const store = new RunStore();
    const changes: string[] = [];
    store.onDidChange((change) => changes.push(change.reloaded ? 'reload' : `jobs ${change.jobs.map((entry) => entry.id).join(',')}`));
    store.beginReload();
    store.upsertJobs([job(1, { state: 'running' })]);
    store.upsertJobs([job(1, { state: 'succeeded' }), job(2, { state: 'queued' })]);
    store.endReload();
    store.upsertJobs([job(2, { state: 'running' })]);
    assert.deepEqual(changes, ['reload', 'jobs 2']);
    assert.equal(store.job(1)!.state, 'succeeded');
    assert.equal(store.job(2)!.state, 'running');
    store.removeJobs([1]);
    assert.equal(store.job(1), undefined);
  });

  it("does not let a submission's answer overwrite newer events about its runs", () => {
    const store = new RunStore();
    // The run started (an event) before the submit request's answer was handled.
    store.upsertJobs([job(3, { state: 'running' })]);
    store.addJobs([job(3, { state: 'queued' }), job(4, { state: 'queued' })]);
    assert.equal(store.job(3)!.state, 'running');
    assert.equal(store.job(4)!.state, 'queued');
  });

  it("keeps a run's key metric from its first series, fed by events and by reads", async () => {
    const store = new RunStore();
    store.applyMetric({ jobId: 5, attempt: 1, name: 'loss', point: { step: 1, value: 0.9, at: T0 } });
    store.applyMetric({ jobId: 5, attempt: 1, name: 'acc', point: { step: 1, value: 0.1, at: T0 } });
    store.applyMetric({ jobId: 5, attempt: 1, name: 'loss', point: { step: 2, value: 0.4, at: T0 } });
    assert.deepEqual(store.keyMetric(5), { name: 'loss', value: 0.4 });
    const reads: number[] = [];
    const updated = new Promise<number[]>((resolve) => store.onDidChange((change) => change.metrics.length && resolve(change.metrics)));
    store.ensureKeyMetrics([6, 7], async (id) => {
      reads.push(id);
      return id === 6 ? [series('acc', 0.5, 0.75)] : [];
    });
    assert.deepEqual(await updated, [6]);
    store.ensureKeyMetrics([6, 7], async (id) => {
      reads.push(id);
      return [];
    });
    assert.deepEqual(reads, [6, 7], 'each run is read once');
    assert.deepEqual(store.keyMetric(6), { name: 'acc', value: 0.75 });
  });
});
