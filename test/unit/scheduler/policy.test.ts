import assert from 'node:assert/strict';
import type { RunPlan } from '../../../common/spec';
import type { HostCapacity } from '../../../runner/src/scheduler/placement';
import { schedule, type QueuedJob, type RunningJob, type SchedulingInput } from '../../../runner/src/scheduler/policy';
import { recentGpuHours, usageShares } from '../../../runner/src/scheduler/fair-share';

const GiB = 2 ** 30;
const HOUR = 3_600_000;
const NOW = 100 * HOUR;

function host(name: string, gpus: number, extra: Partial<HostCapacity> & { model?: string; gpuMemory?: number } = {}): HostCapacity {
  const { model = 'NVIDIA A100-SXM4-80GB', gpuMemory = 80 * GiB, ...rest } = extra;
  return {
    name, usable: true, cpus: 64, memoryBytes: 512 * GiB,
    gpus: Array.from({ length: gpus }, (_, index) => ({ index, name: model, memoryTotalBytes: gpuMemory, foreign: false })),
    ...rest,
  };
}

interface JobShape {
  gpus?: RunPlan['resources']['gpus'];
  cpus?: number;
  memoryBytes?: number;
  timeout?: number;
  priority?: number;
  user?: string;
  submittedAt?: number;
}

function job(id: number, shape: JobShape = {}): QueuedJob {
  const { gpus = { count: 0 }, cpus, memoryBytes, timeout, priority = 0, user, submittedAt = NOW } = shape;
  return {
    id, group: `g${id}`, needs: [], notBefore: null, submittedAt,
    ...(user !== undefined && { user }),
    plan: {
      key: `job${id}`, job: `job${id}`, params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority, needs: [],
      resources: { gpus, ...(cpus !== undefined && { cpus }), ...(memoryBytes !== undefined && { memoryBytes }) },
      ...(timeout !== undefined && { timeoutSeconds: timeout / 1000 }),
    },
  };
}

function run(id: number, hostName: string, gpus: number[], extra: Partial<RunningJob> = {}): RunningJob {
  return { jobId: id, host: hostName, cpus: 1, memoryBytes: 0, gpus, group: `r${id}`, startedAt: NOW, timeLimitMs: HOUR, ...extra };
}

function decide(queued: QueuedJob[], extra: Partial<SchedulingInput> = {}) {
  return schedule({ now: NOW, queued, running: [], hosts: [host('a', 8)], states: new Map(), ...extra });
}

const started = (decisions: ReturnType<typeof decide>) => decisions.start.map((start) => [start.jobId, start.host, start.gpus] as const);

describe('scheduling policy: placement', () => {
  it('places all of a job\u2019s GPUs on one host, never split over two', () => {
    const hosts = [host('a', 8), host('b', 8)];
    const running = [run(90, 'a', [0, 1, 2, 3, 4, 5]), run(91, 'b', [0, 1, 2, 3, 4, 5])];
    const decisions = decide([job(1, { gpus: { count: 4 } })], { hosts, running });
    assert.deepEqual(decisions.start, []);
    assert.equal(decisions.waiting.get(1), 'waiting for 4 GPUs; 2 free on a; waiting for 4 GPUs; 2 free on b');
    assert.deepEqual(started(decide([job(1, { gpus: { count: 4 } })], { hosts, running: [running[0]!] })), [[1, 'b', [0, 1, 2, 3]]]);
  });

  it('fits small jobs into partly used hosts, keeping a whole host free for a big one', () => {
    const hosts = [host('a', 8), host('b', 8)];
    const decisions = decide([job(1, { gpus: { count: 1 } }), job(2, { gpus: { count: 1 } }), job(3, { gpus: { count: 8 } })], { hosts, running: [run(90, 'b', [0, 1, 2, 3, 4, 5])] });
    // First fit would put job 1 on a and leave no host for job 3.
    assert.deepEqual(started(decisions), [[1, 'b', [6]], [2, 'b', [7]], [3, 'a', [0, 1, 2, 3, 4, 5, 6, 7]]]);
  });

  it('keeps CPU-only jobs off GPU hosts while a CPU host has room', () => {
    const hosts = [host('gpu', 8), host('cpu', 0)];
    assert.deepEqual(started(decide([job(1, { cpus: 4 })], { hosts })), [[1, 'cpu', []]]);
  });

  it('matches GPU type and memory, taking the smallest GPUs that do', () => {
    const mixed = host('mixed', 0, {
      gpus: [
        { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryTotalBytes: 80 * GiB, foreign: false },
        { index: 1, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40 * GiB, foreign: false },
        { index: 2, name: 'NVIDIA A100-SXM4-80GB', memoryTotalBytes: 80 * GiB, foreign: false },
      ],
    });
    const decisions = decide([job(1, { gpus: { count: 1, type: 'A100', memoryBytes: 60 * GiB } }), job(2, { gpus: { count: 1 } }), job(3, { gpus: { count: 1, type: 'A100' } })], { hosts: [mixed] });
    assert.deepEqual(started(decisions), [[1, 'mixed', [2]], [2, 'mixed', [1]]]);
    assert.equal(decisions.waiting.get(3), 'waiting for 1 GPU of type A100; 0 free on mixed');
  });

  it('counts CPUs and memory, and says which ran out', () => {
    const decisions = decide([job(1, { gpus: { count: 1 }, memoryBytes: 500 * GiB }), job(2, { gpus: { count: 1 }, cpus: 64 })], { running: [run(90, 'a', [0], { memoryBytes: 100 * GiB, cpus: 8 })] });
    assert.deepEqual(decisions.start, []);
    assert.equal(decisions.waiting.get(1), 'waiting for 500 GiB of memory; 412 GiB free on a');
    assert.equal(decisions.waiting.get(2), 'waiting for 64 CPUs; 56 free on a');
  });

  it('lets a job no host can ever run wait without holding up the others', () => {
    const hosts = [host('a', 8), host('down', 8, { usable: false, unusable: 'is unreachable: connection refused' })];
    const decisions = decide([job(1, { gpus: { count: 16 } }), job(2, { gpus: { count: 8 }, timeout: 100 * HOUR })], { hosts });
    assert.equal(decisions.waiting.get(1), 'a has 8 GPUs, the job needs 16; down is unreachable: connection refused');
    assert.deepEqual(started(decisions), [[2, 'a', [0, 1, 2, 3, 4, 5, 6, 7]]]);
    assert.equal(decisions.reservation, undefined);
  });
});

describe('scheduling policy: order', () => {
  it('goes by priority, then first come first served by submission time', () => {
    const decisions = decide(
      [job(1, { gpus: { count: 4 }, submittedAt: NOW - 60_000 }), job(2, { gpus: { count: 4 }, priority: 1 }), job(3, { gpus: { count: 4 }, submittedAt: NOW - 120_000 })],
    );
    assert.deepEqual(started(decisions).map(([id]) => id), [2, 3]);
  });

  it('ages waiting jobs: one level per hour waited (the default), so none waits forever behind higher priorities', () => {
    const fresh = job(1, { gpus: { count: 8 }, priority: 2 });
    assert.deepEqual(started(decide([fresh, job(2, { gpus: { count: 8 }, submittedAt: NOW - 1.5 * HOUR })])).map(([id]) => id), [1]);
    assert.deepEqual(started(decide([fresh, job(2, { gpus: { count: 8 }, submittedAt: NOW - 2.5 * HOUR })])).map(([id]) => id), [2]);
    assert.deepEqual(started(decide([fresh, job(2, { gpus: { count: 8 }, submittedAt: NOW - 1.5 * HOUR })], { options: { agingMs: HOUR / 2 } })).map(([id]) => id), [2]);
  });

  it('puts the user with less recent GPU use first (fair share), within the bound of fairShareLevels', () => {
    const recent = new Map([['alice', 90], ['bob', 10]]);
    const queued = [job(1, { gpus: { count: 8 }, user: 'alice', submittedAt: NOW - 0.5 * HOUR }), job(2, { gpus: { count: 8 }, user: 'bob' })];
    assert.deepEqual(started(decide(queued, { recentGpuHours: recent })).map(([id]) => id), [2]);
    // Alice's share (0.9) costs her 0.9 levels, bob's 0.1: half an hour of waiting does not make up the 0.8 between them.
    assert.deepEqual(started(decide(queued)).map(([id]) => id), [1], 'without usage, first come first served');
    const older = [job(1, { gpus: { count: 8 }, user: 'alice', submittedAt: NOW - HOUR }), queued[1]!];
    assert.deepEqual(started(decide(older, { recentGpuHours: recent })).map(([id]) => id), [1], 'an hour of waiting does');
  });

  it('holds a user to a GPU quota, and lets others run meanwhile', () => {
    const running = [run(90, 'a', [0, 1], { user: 'alice' })];
    const queued = [job(1, { gpus: { count: 2 }, user: 'alice' }), job(2, { gpus: { count: 1 }, user: 'bob' }), job(3, { gpus: { count: 1 }, user: 'carol' })];
    const decisions = decide(queued, { running, options: { gpuQuotas: { alice: 3, '*': 1 } } });
    assert.equal(decisions.waiting.get(1), 'quota: alice holds 2 of 3 GPUs allowed, this run needs 2');
    assert.deepEqual(started(decisions).map(([id]) => id), [2, 3]);
    assert.equal(decide([job(4, { gpus: { count: 1 }, user: 'bob' })], { running: [run(91, 'a', [0], { user: 'bob' })], options: { gpuQuotas: { '*': 1 } } }).waiting.get(4), 'quota: bob holds 1 of 1 GPU allowed, this run needs 1');
  });
});

describe('scheduling policy: backfill', () => {
  // Six of a's eight GPUs are busy for another 30 minutes; job 1, first in line, needs all eight.
  const running = [run(90, 'a', [0, 1, 2, 3, 4, 5], { timeLimitMs: HOUR / 2 })];
  const head = job(1, { gpus: { count: 8 } });

  it('reserves where and when the first job in line can start', () => {
    const decisions = decide([head], { running });
    assert.deepEqual(decisions.reservation, { jobId: 1, host: 'a', at: NOW + HOUR / 2, gpus: [0, 1, 2, 3, 4, 5, 6, 7] });
    assert.equal(decisions.waiting.get(1), 'waiting for 8 GPUs; 2 free on a');
  });

  it('starts later jobs that end, by their timeout, before that time', () => {
    const decisions = decide([head, job(2, { gpus: { count: 2 }, timeout: HOUR / 4 })], { running });
    assert.deepEqual(started(decisions), [[2, 'a', [6, 7]]]);
  });

  it('holds later jobs that could delay it, saying which rule put the other first', () => {
    const decisions = decide([head, job(2, { gpus: { count: 2 }, timeout: 2 * HOUR, submittedAt: NOW + 1 }), job(3, { gpus: { count: 1 }, submittedAt: NOW + 2 })], { running });
    assert.deepEqual(decisions.start, []);
    assert.equal(decisions.waiting.get(2), 'queue order: it was queued earlier (run 1 is first in line, expected to start on a in 30m00s); this run, with its 2h00m timeout, could delay it');
    assert.equal(decisions.waiting.get(3), 'queue order: it was queued earlier (run 1 is first in line, expected to start on a in 30m00s); this run has no timeout, so it could delay it');
    const ranked = decide([job(1, { gpus: { count: 8 }, priority: 3 }), job(2, { gpus: { count: 2 }, timeout: 2 * HOUR })], { running });
    assert.match(ranked.waiting.get(2)!, /^priority: it has a higher priority \(run 1 is first in line/);
    const fair = decide([job(1, { gpus: { count: 8 }, user: 'bob' }), job(2, { gpus: { count: 2 }, timeout: 2 * HOUR, user: 'alice' })], { running, recentGpuHours: new Map([['alice', 5]]) });
    assert.match(fair.waiting.get(2)!, /^fair share: bob used fewer GPU-hours lately than alice \(run 1 is first in line/);
  });

  it('starts a long job on what the reserved job will not need, on its host or another', () => {
    const shared = [run(90, 'a', [0, 1, 2, 3], { timeLimitMs: HOUR / 2 })];
    const six = job(1, { gpus: { count: 6 } });
    // At the reserved time a's GPUs 0-5 go to job 1; 6 and 7 are to spare.
    const decisions = decide([six, job(2, { gpus: { count: 1 }, timeout: 10 * HOUR }), job(3, { gpus: { count: 2 }, timeout: 10 * HOUR })], { running: shared });
    assert.deepEqual(decisions.reservation?.gpus, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(started(decisions), [[2, 'a', [6]]]);
    assert.match(decisions.waiting.get(3)!, /^queue order/);
    const twoHosts = decide([six, job(2, { gpus: { count: 2 }, timeout: 10 * HOUR })], { running: shared, hosts: [host('a', 8), host('b', 2)] });
    assert.deepEqual(started(twoHosts), [[2, 'b', [0, 1]]]);
  });

  it('spares CPUs and memory at the reserved time too', () => {
    const busy = [run(90, 'a', [0, 1, 2, 3, 4, 5], { timeLimitMs: HOUR / 2, cpus: 8 })];
    const decisions = decide([job(1, { gpus: { count: 4 }, cpus: 60 }), job(2, { cpus: 4, timeout: 10 * HOUR }), job(3, { cpus: 1, timeout: 10 * HOUR })], { running: busy });
    // a has 64 CPUs: job 1 takes 60 of them at the reserved time, so 4 are to spare, then none.
    assert.deepEqual(started(decisions).map(([id]) => id), [2]);
    assert.match(decisions.waiting.get(3)!, /could delay it$/);
  });

  it('takes a job without a timeout to run an hour (defaultTimeLimitMs), and a running one past that to end any moment', () => {
    const soon = [run(90, 'a', [0, 1, 2, 3, 4, 5], { timeLimitMs: 2 * HOUR })];
    assert.deepEqual(started(decide([head, job(2, { gpus: { count: 2 } })], { running: soon })).map(([id]) => id), [2]);
    const overdue = [run(90, 'a', [0, 1, 2, 3, 4, 5], { timeLimitMs: undefined, startedAt: NOW - 3 * HOUR })];
    const decisions = decide([head, job(2, { gpus: { count: 2 }, timeout: 60_000 })], { running: overdue });
    assert.equal(decisions.reservation?.at, NOW);
    assert.deepEqual(decisions.start, []);
  });
});

describe('fair share usage', () => {
  it('decays GPU-hours by half each half-life', () => {
    const week = 7 * 24 * HOUR;
    const hours = recentGpuHours(
      [
        { user: 'alice', gpus: 2, startedAt: NOW - HOUR, endedAt: null },
        { user: 'bob', gpus: 1, startedAt: NOW - week - HOUR, endedAt: NOW - week },
        { user: 'carol', gpus: 0, startedAt: NOW - HOUR, endedAt: NOW },
      ],
      NOW,
      week,
    );
    assert.ok(Math.abs(hours.get('alice')! - 2) < 0.01, String(hours.get('alice')));
    assert.ok(Math.abs(hours.get('bob')! - 0.5) < 0.01, String(hours.get('bob')));
    assert.equal(hours.has('carol'), false);
    const shares = usageShares(hours);
    assert.ok(Math.abs(shares.get('alice')! - 0.8) < 0.01);
  });
});
