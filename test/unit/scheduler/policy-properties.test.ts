import assert from 'node:assert/strict';
import fc from 'fast-check';
import { gpuSatisfies, type RunPlan } from '../../../common/spec';
import { FreePool, placeNow, requestOf, type HostCapacity, type Request } from '../../../runner/src/scheduler/placement';
import { DEFAULT_POLICY, schedule, type PolicyOptions } from '../../../runner/src/scheduler/policy';
import { checkStarvationBound, simulate, type SimulatedJob } from '../../../runner/src/scheduler/simulator';

/**
 * Properties of the policy on random pools and job streams, driven through the discrete-event
 * simulator (which throws on a GPU given twice, a host over capacity or a split gang). Seeded,
 * so a failure replays; fast-check shrinks it to a small case.
 */

const GiB = 2 ** 30;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const RUNS = 300;
const MODELS = [
  { name: 'NVIDIA A100-SXM4-80GB', memory: 80 * GiB },
  { name: 'Tesla T4', memory: 16 * GiB },
];

const hostArbitrary = (index: number) =>
  fc.record({ gpus: fc.integer({ min: 0, max: 8 }), model: fc.integer({ min: 0, max: 1 }), cpus: fc.integer({ min: 4, max: 64 }), memoryGiB: fc.integer({ min: 16, max: 256 }), foreign: fc.boolean() }).map(
    ({ gpus, model, cpus, memoryGiB, foreign }): HostCapacity => ({
      name: `h${index}`, usable: true, cpus, memoryBytes: memoryGiB * GiB,
      // Now and then another user holds a GPU for good.
      gpus: Array.from({ length: gpus }, (_, gpu) => ({ index: gpu, name: MODELS[model]!.name, memoryTotalBytes: MODELS[model]!.memory, foreign: foreign && gpu === 0 })),
    }),
  );

const poolArbitrary = fc.integer({ min: 1, max: 4 }).chain((count) => fc.tuple(...Array.from({ length: count }, (_, index) => hostArbitrary(index))));

interface StreamSettings {
  priorities: boolean;
  users: boolean;
  /** Every run keeps to its time limit (its timeout, or the default for one without). */
  keepsLimits: boolean;
  /** Arrivals fall in [0, arrivalSpan) ms: the shorter, the longer the queue. */
  arrivalSpan: number;
}

const jobArbitrary = (settings: StreamSettings) =>
  fc.record({
    arrival: fc.integer({ min: 0, max: settings.arrivalSpan - 1 }),
    duration: fc.integer({ min: MINUTE, max: 3 * HOUR }),
    gpus: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 8 })),
    type: fc.constantFrom(undefined, 'A100', 'T4'),
    gpuMemory: fc.constantFrom(undefined, 32 * GiB),
    cpus: fc.integer({ min: 1, max: 16 }),
    memoryGiB: fc.integer({ min: 0, max: 64 }),
    priority: settings.priorities ? fc.integer({ min: 0, max: 3 }) : fc.constant(0),
    user: settings.users ? fc.constantFrom('ann', 'bo', 'cy') : fc.constant(undefined),
    // How far the timeout over-estimates the true duration; none: no timeout.
    overEstimate: fc.constantFrom(undefined, 1, 1.5, 3),
  });

function streamArbitrary(settings: StreamSettings) {
  return fc.array(jobArbitrary(settings), { minLength: 1, maxLength: 50 }).map((drawn) =>
    drawn.map((draw, index): SimulatedJob => {
      // A run without a timeout keeps to the assumed default only if it is that short.
      const duration = settings.keepsLimits && draw.overEstimate === undefined ? Math.min(draw.duration, DEFAULT_POLICY.defaultTimeLimitMs) : draw.duration;
      const gpus: RunPlan['resources']['gpus'] = { count: draw.gpus, ...(draw.gpus > 0 && draw.type && { type: draw.type }), ...(draw.gpus > 0 && draw.gpuMemory && { memoryBytes: draw.gpuMemory }) };
      const plan: RunPlan = {
        key: `j${index}`, job: `j${index}`, params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority: draw.priority, needs: [],
        resources: { gpus, cpus: draw.cpus, memoryBytes: draw.memoryGiB * GiB },
        ...(draw.overEstimate !== undefined && { timeoutSeconds: Math.ceil((duration * draw.overEstimate) / 1000) }),
      };
      return { id: index + 1, arrival: draw.arrival, duration, plan, ...(draw.user !== undefined && { user: draw.user }) };
    }),
  );
}

/** Whether some host could hold the job with nothing else running (foreign GPUs stay held), within its quota. */
function feasible(job: SimulatedJob, hosts: readonly HostCapacity[], options: Partial<PolicyOptions>): boolean {
  const request = requestOf(job.plan);
  const quota = options.gpuQuotas?.[job.user ?? ''] ?? options.gpuQuotas?.['*'];
  if (quota !== undefined && request.gpus.count > quota) return false;
  return hosts.some(
    (host) =>
      host.cpus >= request.cpus &&
      host.memoryBytes >= request.memoryBytes &&
      host.gpus.filter((gpu) => !gpu.foreign && gpuSatisfies(gpu, request.gpus)).length >= request.gpus.count,
  );
}

describe('scheduling policy: properties on random pools and job streams', function () {
  this.timeout(120_000);

  it('never gives a GPU twice or a host more than it has, and starts every job that can ever run', () => {
    const settings = { priorities: true, users: true, keepsLimits: false, arrivalSpan: 8 * HOUR };
    const quotasArbitrary = fc.constantFrom<Record<string, number>>({}, { ann: 4 }, { ann: 2, '*': 6 });
    fc.assert(
      fc.property(poolArbitrary, streamArbitrary(settings), quotasArbitrary, (hosts, jobs, gpuQuotas) => {
        const options = { gpuQuotas };
        const result = simulate(jobs, hosts, schedule, { fairShare: true, options });
        const never = new Set(result.neverStarted);
        for (const job of jobs) assert.equal(never.has(job.id), !feasible(job, hosts, options), `job ${job.id}: ${never.has(job.id) ? 'never started' : 'started'}`);
      }),
      { seed: 1010, numRuns: RUNS },
    );
  });

  it('starts the job first in line by the time reserved for it, while runs keep to their time limits', () => {
    let promisesKept = 0;
    fc.assert(
      fc.property(poolArbitrary, streamArbitrary({ priorities: false, users: false, keepsLimits: true, arrivalSpan: HOUR }), (hosts, jobs) => {
        let promise: { jobId: number; at: number } | undefined;
        simulate(jobs, hosts, schedule, {
          observe: (now, decisions) => {
            for (const start of decisions.start) {
              if (start.jobId !== promise?.jobId) continue;
              assert.ok(now <= promise.at, `job ${start.jobId} was reserved for t=${promise.at} and started at t=${now}`);
              promisesKept++;
            }
            const reservation = decisions.reservation;
            if (!reservation) promise = undefined;
            else if (reservation.jobId !== promise?.jobId) promise = { jobId: reservation.jobId, at: reservation.at };
          },
        });
      }),
      { seed: 2020, numRuns: RUNS },
    );
    assert.ok(promisesKept > 100, `only ${promisesKept} reservations were exercised`);
  });

  it('starts a job, once the jobs queued before it have started, by the time the first host that could hold it empties', () => {
    let checked = 0;
    fc.assert(
      fc.property(poolArbitrary, streamArbitrary({ priorities: false, users: false, keepsLimits: true, arrivalSpan: HOUR }), (hosts, jobs) => {
        const check = checkStarvationBound(simulate(jobs, hosts, schedule), jobs, hosts, DEFAULT_POLICY);
        assert.ok(check.met, `a job waited ${check.worstH} h after the jobs ahead of it started`);
        checked += check.jobs;
      }),
      { seed: 5050, numRuns: RUNS },
    );
    assert.ok(checked > 500, `only ${checked} jobs were checked`);
  });

  it('keeps every wait within the stated bound: (Pmax − p + F) × aging, plus one longest time limit per job that can be ahead', () => {
    const { agingMs, fairShareLevels } = DEFAULT_POLICY;
    fc.assert(
      fc.property(poolArbitrary, streamArbitrary({ priorities: true, users: false, keepsLimits: true, arrivalSpan: 4 * HOUR }), (hosts, jobs) => {
        const result = simulate(jobs, hosts, schedule);
        const maxPriority = Math.max(...jobs.map((job) => job.plan.priority));
        const longest = Math.max(...jobs.map((job) => (job.plan.timeoutSeconds !== undefined ? job.plan.timeoutSeconds * 1000 : DEFAULT_POLICY.defaultTimeLimitMs)));
        for (const run of result.runs) {
          const job = jobs.find((candidate) => candidate.id === run.id)!;
          const overtakeWindow = (maxPriority - job.plan.priority + fairShareLevels) * agingMs;
          const canBeAhead = jobs.filter((other) => other !== job && other.arrival < job.arrival + overtakeWindow).length;
          const bound = overtakeWindow + (canBeAhead + 1) * longest;
          assert.ok(run.start - run.arrival <= bound, `job ${job.id} waited ${run.start - run.arrival} ms, over the bound ${bound} ms`);
        }
      }),
      { seed: 3030, numRuns: RUNS },
    );
  });
});

describe('best fit through the free-capacity index', () => {
  const requestArbitrary = fc
    .record({
      gpus: fc.integer({ min: 0, max: 8 }),
      type: fc.constantFrom(undefined, 'A100', 'T4'),
      gpuMemory: fc.constantFrom(undefined, 32 * GiB),
      // Fractional CPUs, as a trace's millicores give.
      cpus: fc.constantFrom(0.5, 1, 2.2, 4, 8, 16.1, 32),
      memoryGiB: fc.integer({ min: 0, max: 64 }),
    })
    .map(({ gpus, type, gpuMemory, cpus, memoryGiB }): Request => ({
      gpus: { count: gpus, ...(gpus > 0 && type && { type }), ...(gpus > 0 && gpuMemory && { memoryBytes: gpuMemory }) },
      cpus, memoryBytes: memoryGiB * GiB,
    }));
  const largePool = fc.integer({ min: 1, max: 12 }).chain((count) => fc.tuple(...Array.from({ length: count }, (_, index) => hostArbitrary(index))));

  it('chooses the host and GPUs that scoring every host chooses, as jobs take capacity', () => {
    fc.assert(
      fc.property(largePool, fc.array(requestArbitrary, { minLength: 1, maxLength: 60 }), fc.array(fc.boolean(), { minLength: 4 }), (hosts, requests, usable) => {
        hosts.forEach((host, index) => (host.usable = usable[index % usable.length]!));
        const pool = new FreePool(hosts, []);
        for (const [index, request] of requests.entries()) {
          const fast = pool.bestFit(index, request);
          const scored = placeNow(index, request, hosts, (name) => pool.free.get(name)!);
          assert.deepEqual(fast, typeof scored === 'string' ? undefined : scored);
          if (fast) pool.take(fast.allocation);
        }
      }),
      { seed: 4040, numRuns: RUNS },
    );
  });
});
