import { gpuSatisfies, type RunPlan } from '../../../common/spec';
import { recentGpuHours, type GpuUse } from './fair-share';
import { requestOf, type HostCapacity } from './placement';
import type { Decisions, PolicyOptions, QueuedJob, Reservation, RunningJob, SchedulingInput } from './policy';

/**
 * A discrete-event simulation of a pool: jobs arrive, a policy decides, started jobs end after
 * their true durations. Time jumps from event to event (nothing sleeps), so hours of a trace
 * replay in seconds. Every decision is checked against the pool: a GPU given twice, a host
 * over its CPUs or memory, or a gang split is an error, not a number.
 */

export interface SimulatedJob {
  id: number;
  /** ms */
  arrival: number;
  /** How long it really runs once started, ms (the policy never sees this). */
  duration: number;
  plan: RunPlan;
  user?: string;
}

export type Policy = (input: SchedulingInput) => Decisions;

export interface SimulatedRun {
  id: number;
  arrival: number;
  start: number;
  end: number;
  host: string;
  gpus: number[];
}

export interface SimulationResult {
  runs: SimulatedRun[];
  /** Jobs that never started (no host could ever run them). */
  neverStarted: number[];
  decisions: number;
}

export class SimulationError extends Error {}

export interface SimulationOptions {
  options?: Partial<PolicyOptions>;
  /** Count recent GPU use per user for fair share (costs a pass over all runs per decision). */
  fairShare?: boolean;
  /** Sees every decision, e.g. to check a property of the policy. */
  observe?: (now: number, decisions: Decisions, reservation: Reservation | undefined) => void;
}

export function simulate(jobs: readonly SimulatedJob[], hosts: readonly HostCapacity[], policy: Policy, settings: SimulationOptions = {}): SimulationResult {
  const arrivals = [...jobs].sort((a, b) => a.arrival - b.arrival || a.id - b.id);
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const hostByName = new Map(hosts.map((host) => [host.name, host]));
  const queue = new Map<number, QueuedJob>();
  const running = new Map<number, RunningJob>();
  const ends = new MinHeap<{ at: number; id: number }>((a, b) => a.at - b.at || a.id - b.id);
  const used = new Map<string, { cpus: number; memoryBytes: number; gpus: Set<number> }>(hosts.map((host) => [host.name, { cpus: 0, memoryBytes: 0, gpus: new Set() }]));
  const runs: SimulatedRun[] = [];
  const uses: GpuUse[] = [];
  let next = 0;
  let decisions = 0;

  while (next < arrivals.length || ends.size > 0) {
    const now = Math.min(arrivals[next]?.arrival ?? Infinity, ends.peek()?.at ?? Infinity);
    while (ends.size > 0 && ends.peek()!.at === now) {
      const { id } = ends.pop()!;
      const run = running.get(id)!;
      running.delete(id);
      const load = used.get(run.host)!;
      load.cpus -= run.cpus;
      load.memoryBytes -= run.memoryBytes;
      for (const gpu of run.gpus) load.gpus.delete(gpu);
    }
    while (next < arrivals.length && arrivals[next]!.arrival === now) {
      const job = arrivals[next++]!;
      queue.set(job.id, { id: job.id, plan: job.plan, group: String(job.id), needs: [], notBefore: null, submittedAt: job.arrival, ...(job.user !== undefined && { user: job.user }) });
    }
    if (queue.size === 0) continue;
    const input: SchedulingInput = {
      now,
      queued: [...queue.values()],
      running: [...running.values()],
      hosts: hosts as HostCapacity[],
      states: new Map(),
      ...(settings.fairShare && { recentGpuHours: recentGpuHours(uses, now) }),
      ...(settings.options && { options: settings.options }),
    };
    const decided = policy(input);
    decisions++;
    for (const allocation of decided.start) {
      const job = byId.get(allocation.jobId);
      if (!job || !queue.has(job.id)) throw new SimulationError(`t=${now}: started job ${allocation.jobId}, which is not queued`);
      const host = hostByName.get(allocation.host);
      if (!host?.usable) throw new SimulationError(`t=${now}: job ${job.id} placed on ${allocation.host}, not a usable host`);
      const request = requestOf(job.plan);
      if (request.hosts && !request.hosts.includes(host.name)) throw new SimulationError(`t=${now}: job ${job.id} placed on ${host.name}, outside its hosts`);
      if (allocation.gpus.length !== request.gpus.count || new Set(allocation.gpus).size !== allocation.gpus.length) throw new SimulationError(`t=${now}: job ${job.id} got GPUs ${allocation.gpus} for ${request.gpus.count}`);
      const load = used.get(host.name)!;
      for (const index of allocation.gpus) {
        const gpu = host.gpus.find((candidate) => candidate.index === index);
        if (!gpu || gpu.foreign) throw new SimulationError(`t=${now}: job ${job.id} got GPU ${index} of ${host.name}, which it cannot use`);
        if (load.gpus.has(index)) throw new SimulationError(`t=${now}: GPU ${index} of ${host.name} given twice (job ${job.id})`);
        if (!gpuSatisfies(gpu, request.gpus)) throw new SimulationError(`t=${now}: job ${job.id} got GPU ${index} of ${host.name}, not the kind it asked for`);
        load.gpus.add(index);
      }
      load.cpus += allocation.cpus;
      load.memoryBytes += allocation.memoryBytes;
      if (allocation.cpus < request.cpus || allocation.memoryBytes < request.memoryBytes) throw new SimulationError(`t=${now}: job ${job.id} got less than it asked for`);
      if (load.cpus > host.cpus + 1e-9 || load.memoryBytes > host.memoryBytes) throw new SimulationError(`t=${now}: ${host.name} over capacity after job ${job.id}`);
      queue.delete(job.id);
      running.set(job.id, {
        ...allocation, group: String(job.id), startedAt: now,
        ...(job.user !== undefined && { user: job.user }),
        ...(job.plan.timeoutSeconds !== undefined && { timeLimitMs: job.plan.timeoutSeconds * 1000 }),
      });
      ends.push({ at: now + job.duration, id: job.id });
      runs.push({ id: job.id, arrival: job.arrival, start: now, end: now + job.duration, host: host.name, gpus: allocation.gpus });
      if (allocation.gpus.length > 0) uses.push({ user: job.user ?? '', gpus: allocation.gpus.length, startedAt: now, endedAt: now + job.duration });
    }
    settings.observe?.(now, decided, decided.reservation);
  }
  return { runs, neverStarted: [...queue.keys()], decisions };
}

export interface StarvationCheck {
  met: boolean;
  /** Jobs checked: those that started. */
  jobs: number;
  /** The longest a job waited once the jobs ahead of it had started, and its bound there, hours. */
  worstH: number;
  worstBoundH: number;
  /** The loosest the bound was for any job, hours. */
  loosestH: number;
}

/**
 * The policy's starvation bound (policy.ts), checked on a replay whose jobs share one priority
 * and one user, and whose runs keep to their time limits: once every job queued before it that
 * ever started has started, a job starts by the time the first host that could hold it empties,
 * counting each run there as lasting its time limit. Worked out from the replay's runs alone,
 * not from what the policy reported.
 */
export function checkStarvationBound(result: SimulationResult, jobs: readonly SimulatedJob[], hosts: readonly HostCapacity[], options: Pick<PolicyOptions, 'defaultTimeLimitMs'>): StarvationCheck {
  const limitOf = (job: SimulatedJob) => (job.plan.timeoutSeconds !== undefined ? job.plan.timeoutSeconds * 1000 : options.defaultTimeLimitMs);
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const runs = [...result.runs].sort((a, b) => a.start - b.start);
  const startOf = new Map(runs.map((run) => [run.id, run.start]));
  /** When each host that could hold the job is empty, by its runs at `at` and their time limits: the earliest. */
  const firstEmpty = (job: SimulatedJob, at: number): number => {
    const usable = new Map(hosts.filter((host) => holdsAlone(job, host)).map((host) => [host.name, at]));
    for (const run of runs) {
      if (run.start > at) break;
      const empty = usable.get(run.host);
      if (empty !== undefined && run.end > at) usable.set(run.host, Math.max(empty, run.start + limitOf(byId.get(run.id)!)));
    }
    return Math.min(...usable.values());
  };
  const check: StarvationCheck = { met: true, jobs: 0, worstH: 0, worstBoundH: 0, loosestH: 0 };
  let aheadStarted = -Infinity;
  for (const job of [...jobs].sort((a, b) => a.arrival - b.arrival || a.id - b.id)) {
    const start = startOf.get(job.id);
    // A job that never starts (no host could ever hold it) never holds a reservation either.
    if (start === undefined) continue;
    const from = Math.max(job.arrival, aheadStarted);
    const bound = firstEmpty(job, from);
    check.jobs++;
    if (start > bound) check.met = false;
    if ((start - from) / HOUR > check.worstH) {
      check.worstH = (start - from) / HOUR;
      check.worstBoundH = (bound - from) / HOUR;
    }
    check.loosestH = Math.max(check.loosestH, (bound - from) / HOUR);
    aheadStarted = Math.max(aheadStarted, start);
  }
  return check;
}

const HOUR = 3_600_000;

/** Whether the host could run the job with nothing else running (GPUs held by others stay held). */
function holdsAlone(job: SimulatedJob, host: HostCapacity): boolean {
  const request = requestOf(job.plan);
  return (
    host.usable && (!request.hosts || request.hosts.includes(host.name)) && host.cpus >= request.cpus && host.memoryBytes >= request.memoryBytes &&
    host.gpus.filter((gpu) => !gpu.foreign && gpuSatisfies(gpu, request.gpus)).length >= request.gpus.count
  );
}

/** A binary min-heap. */
export class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.before(items[i]!, items[parent]!) >= 0) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < items.length && this.before(items[left]!, items[smallest]!) < 0) smallest = left;
        if (right < items.length && this.before(items[right]!, items[smallest]!) < 0) smallest = right;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}
