import assert from 'node:assert/strict';
import type { JobState } from '../../../common/protocol';
import type { RunPlan } from '../../../common/spec';
import type { HostCapacity } from '../../../runner/src/scheduler/placement';
import { schedule, type QueuedJob, type SchedulingInput } from '../../../runner/src/scheduler/policy';

const GiB = 2 ** 30;

function plan(overrides: Partial<RunPlan> & { gpus?: RunPlan['resources']['gpus']; cpus?: number; memoryBytes?: number } = {}): RunPlan {
  const { gpus = { count: 0 }, cpus, memoryBytes, ...rest } = overrides;
  return {
    key: 'job', job: 'job', params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority: 0, needs: [],
    resources: { gpus, ...(cpus !== undefined && { cpus }), ...(memoryBytes !== undefined && { memoryBytes }) },
    ...rest,
  };
}

function queued(id: number, overrides: Parameters<typeof plan>[0] = {}, extra: Partial<QueuedJob> = {}): QueuedJob {
  return { id, plan: plan(overrides), group: `g${id}`, needs: [], notBefore: null, ...extra };
}

const box: HostCapacity = {
  name: 'local',
  usable: true,
  cpus: 8,
  memoryBytes: 64 * GiB,
  gpus: [
    { index: 0, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40 * GiB, foreign: false },
    { index: 1, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40 * GiB, foreign: false },
    { index: 2, name: 'NVIDIA GeForce RTX 4090', memoryTotalBytes: 24 * GiB, foreign: false },
    { index: 3, name: 'NVIDIA GeForce RTX 4090', memoryTotalBytes: 24 * GiB, foreign: true },
  ],
};

function input(jobs: QueuedJob[], extra: Partial<SchedulingInput> = {}): SchedulingInput {
  return { now: 1_000, queued: jobs, running: [], hosts: [box], states: new Map(), ...extra };
}

describe('scheduling policy', () => {
  it('places whole GPUs by type and memory, never a foreign-held one', () => {
    const decisions = schedule(input([queued(1, { gpus: { count: 1, type: '4090' } }), queued(2, { gpus: { count: 2, memoryBytes: 32 * GiB } }), queued(3, { gpus: { count: 1 } })]));
    assert.deepEqual(decisions.start.map((start) => [start.jobId, start.gpus]), [[1, [2]], [2, [0, 1]]]);
    assert.equal(decisions.waiting.get(3), 'waiting for 1 GPU; 0 free on local');
  });

  it('starts in priority order, first come first served within a priority', () => {
    const jobs = [queued(1, { priority: 0, cpus: 4 }), queued(2, { priority: 5, cpus: 4 }), queued(3, { priority: 5, cpus: 4 })];
    // The caller passes the queue in order: priority, then id.
    const ordered = [...jobs].sort((a, b) => b.plan.priority - a.plan.priority || a.id - b.id);
    const decisions = schedule(input(ordered));
    assert.deepEqual(decisions.start.map((start) => start.jobId), [2, 3]);
    assert.equal(decisions.waiting.get(1), 'waiting for 4 CPUs; 0 free on local');
  });

  it('never overcommits what is already running', () => {
    const decisions = schedule(input([queued(1, { gpus: { count: 1 }, memoryBytes: 40 * GiB })], { running: [{ jobId: 9, host: 'local', cpus: 1, memoryBytes: 30 * GiB, gpus: [0, 1, 2], group: 'x' }] }));
    assert.equal(decisions.start.length, 0);
    assert.equal(decisions.waiting.get(1), 'waiting for 1 GPU; 0 free on local');
  });

  it('says when no host could ever run a job', () => {
    const decisions = schedule(input([queued(1, { gpus: { count: 8 } }), queued(2, { gpus: { count: 1, type: 'H100' } }), queued(3, { hosts: ['gpu-box-1'] })]));
    assert.equal(decisions.waiting.get(1), 'local has 4 GPUs, the job needs 8');
    assert.equal(decisions.waiting.get(2), 'local has 0 GPUs of type H100, the job needs 1');
    assert.equal(decisions.waiting.get(3), 'no configured host among gpu-box-1 (known: local)');
  });

  it('holds a sweep to max_parallel', () => {
    const sweep = (id: number) => queued(id, { maxParallel: 2, cpus: 1 }, { group: 'sweep' });
    const decisions = schedule(input([sweep(1), sweep(2), sweep(3)], { running: [{ jobId: 0, host: 'local', cpus: 1, memoryBytes: 0, gpus: [], group: 'sweep' }] }));
    assert.deepEqual(decisions.start.map((start) => start.jobId), [1]);
    assert.equal(decisions.waiting.get(2), 'sweep limit: 2 of max_parallel 2 runs running');
  });

  it('waits for what a job needs, and skips it when that failed', () => {
    const states = new Map<number, { state: JobState; key: string }>([
      [10, { state: 'running', key: 'wf/prepare' }],
      [11, { state: 'failed', key: 'wf/train' }],
      [12, { state: 'succeeded', key: 'wf/lint' }],
    ]);
    const decisions = schedule(input([queued(1, {}, { needs: [10, 12] }), queued(2, {}, { needs: [12, 11] }), queued(3, {}, { needs: [12] })], { states }));
    assert.equal(decisions.waiting.get(1), 'waiting for wf/prepare to succeed');
    assert.deepEqual(decisions.skip, [{ jobId: 2, reason: 'it needs wf/train, which failed' }]);
    assert.deepEqual(decisions.start.map((start) => start.jobId), [3]);
  });

  it('keeps a retry back until its backoff has passed', () => {
    const decisions = schedule(input([queued(1, {}, { notBefore: 3_500 })]));
    assert.equal(decisions.waiting.get(1), 'retrying in 3 s');
    assert.deepEqual(schedule(input([queued(1, {}, { notBefore: 3_500 })], { now: 3_500 })).start.map((start) => start.jobId), [1]);
  });

  it('gives every alike job in a long queue the same reason, and still starts a different one that fits', () => {
    const jobs = [queued(1, { cpus: 8 }), ...Array.from({ length: 500 }, (_, i) => queued(i + 2, { cpus: 8 })), queued(600, { cpus: 0.5 })];
    const decisions = schedule(input(jobs, { running: [{ jobId: 0, host: 'local', cpus: 7, memoryBytes: 0, gpus: [], group: 'x' }] }));
    assert.deepEqual(decisions.start.map((start) => start.jobId), [600]);
    assert.equal(decisions.waiting.size, 501);
    assert.ok([...decisions.waiting.values()].every((reason) => reason === 'waiting for 8 CPUs; 1 free on local'));
  });
});
