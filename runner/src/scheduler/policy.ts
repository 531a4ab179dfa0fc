import type { JobState } from '../../../common/protocol';
import { formatElapsed, type RunPlan } from '../../../common/spec';
import { usageShares } from './fair-share';
import {
  candidateHosts,
  chooseGpus,
  everFits,
  fitOn,
  freeCapacity,
  placeNow,
  tighter,
  requestOf,
  take,
  type Allocation,
  type Fit,
  type FreeCapacity,
  type HostCapacity,
  type Request,
} from './placement';

/**
 * Drover's scheduling policy, as a pure function of the state it is given: no I/O and no clock
 * of its own (`now` is an input), so the daemon, the tests and the trace simulator
 * (simulator.ts) run the same code.
 *
 * Order. Jobs are ranked by `priority + waited / agingMs − fairShareLevels × share`, where
 * `share` (0–1) is the user's part of the pool's recent GPU use; first come, first served
 * among equals. Aging is what prevents starvation: a job of priority p passes every job queued
 * after it with priority ≤ q once it has waited (q − p + fairShareLevels) × agingMs.
 *
 * Backfill (EASY). The first job in that order that waits only for resources holds a
 * reservation: the host and the GPUs where it can start soonest, given the running jobs' time
 * limits. A later job starts before it only where that cannot delay it: it ends by the reserved
 * time (by its own time limit), or it uses only what the reserved job will not need. So, while
 * runs keep to their time limits, the job holding the reservation starts by its reserved time,
 * which is at most the longest time limit of the runs it waits for. A job without a timeout
 * is assumed to run `defaultTimeLimitMs`; one running past that may end at any moment.
 *
 * Placement (placement.ts): gang (all of a job's GPUs on one host), GPU type and memory, CPU and
 * memory; best fit, so whole hosts stay free for the jobs that need them.
 */

export interface QueuedJob {
  id: number;
  plan: RunPlan;
  /** Jobs sharing a sweep's `max_parallel`. */
  group: string;
  needs: number[];
  /** Earliest start (a retry's backoff), ms. */
  notBefore: number | null;
  /** Who submitted it, for fair share and quotas; all jobs without one count as one user. */
  user?: string;
  /** When it was queued, ms, for aging; `now` when absent. */
  submittedAt?: number;
  /** Its queue priority when it was changed after submission; the plan's otherwise. */
  priority?: number;
}

export interface RunningJob extends Allocation {
  group: string;
  user?: string;
  /** ms; when absent, it is taken to have just started (the latest it can end). */
  startedAt?: number;
  /** Its time limit, ms; `defaultTimeLimitMs` when absent. */
  timeLimitMs?: number;
}

export interface PolicyOptions {
  /** Waiting this long raises a job by one priority level. */
  agingMs: number;
  /** How many priority levels the heaviest recent GPU user's jobs lose (at most). */
  fairShareLevels: number;
  /** GPUs a user may hold at once, by user; `*` for everyone not named. */
  gpuQuotas: Readonly<Record<string, number>>;
  /** How long a job without a timeout is assumed to run, for reservations and backfill. */
  defaultTimeLimitMs: number;
}

export const DEFAULT_POLICY: PolicyOptions = {
  agingMs: 3_600_000,
  fairShareLevels: 1,
  gpuQuotas: {},
  defaultTimeLimitMs: 3_600_000,
};

export interface SchedulingInput {
  now: number;
  queued: QueuedJob[];
  running: RunningJob[];
  hosts: HostCapacity[];
  /** The state and name of every job a queued job needs. */
  states: Map<number, { state: JobState; key: string }>;
  /** Each user's recent GPU-hours (fair-share.ts); no fair share when absent. */
  recentGpuHours?: ReadonlyMap<string, number>;
  options?: Partial<PolicyOptions>;
}

/** Where and when the job first in line is expected to start. */
export interface Reservation {
  jobId: number;
  host: string;
  at: number;
  gpus: number[];
}

export interface Decisions {
  start: Allocation[];
  /** Why each job that stays queued waits, naming the rule that holds it. */
  waiting: Map<number, string>;
  /** Jobs that can never run because something they need did not succeed. */
  skip: { jobId: number; reason: string }[];
  reservation?: Reservation;
}

/** The reservation, with what its host has to spare at the reserved time. */
interface HeldReservation extends Reservation {
  job: RankedJob;
  reserved: Set<number>;
  spareCpus: number;
  spareMemoryBytes: number;
}

interface RankedJob {
  job: QueuedJob;
  rank: number;
  priority: number;
  submittedAt: number;
  fairShare: number;
}

interface Expected {
  end: number;
  cpus: number;
  memoryBytes: number;
  gpus: number[];
}

export function schedule(input: SchedulingInput): Decisions {
  const { now } = input;
  const options = { ...DEFAULT_POLICY, ...input.options };
  const decisions: Decisions = { start: [], waiting: new Map(), skip: [] };
  const byName = new Map(input.hosts.map((host) => [host.name, host]));
  const free = new Map<string, FreeCapacity>(input.hosts.map((host) => [host.name, freeCapacity(host, [])]));
  const groupRunning = new Map<string, number>();
  const userGpus = new Map<string, number>();
  /** What runs on each host, and when it is expected to end (time limits). */
  const expected = new Map<string, Expected[]>(input.hosts.map((host) => [host.name, []]));
  for (const running of input.running) {
    const left = free.get(running.host);
    if (left) take(left, running);
    groupRunning.set(running.group, (groupRunning.get(running.group) ?? 0) + 1);
    const user = running.user ?? '';
    userGpus.set(user, (userGpus.get(user) ?? 0) + running.gpus.length);
    const end = Math.max(now, (running.startedAt ?? now) + (running.timeLimitMs ?? options.defaultTimeLimitMs));
    expected.get(running.host)?.push({ end, cpus: running.cpus, memoryBytes: running.memoryBytes, gpus: running.gpus });
  }
  const freeOf = (name: string) => free.get(name)!;

  // Jobs of one shape fit (or fail) alike, so a long queue of alike jobs costs one placement,
  // not one per job. Starting a job only takes capacity away: a refusal stays a refusal (its
  // words are as of when it was made), and a fit stays valid unless it was on the host that
  // changed, which may also have become the tighter fit (see afterStart).
  const placements = new Map<string, { request: Request; placed: Fit | string }>();
  const infeasible = new Set<string>();
  let reservation: HeldReservation | undefined;
  const heldReasons = new Map<string, string>();
  const quotas = new Map(Object.entries(options.gpuQuotas));

  for (const ranked of rankQueue(input, options)) {
    const { job } = ranked;
    const blocked = dependencyBlock(job, input.states);
    if (blocked?.skip) {
      decisions.skip.push({ jobId: job.id, reason: blocked.reason });
      continue;
    }
    if (blocked) {
      decisions.waiting.set(job.id, blocked.reason);
      continue;
    }
    if (job.notBefore !== null && job.notBefore > now) {
      decisions.waiting.set(job.id, `retrying in ${Math.ceil((job.notBefore - now) / 1000)} s`);
      continue;
    }
    const limit = job.plan.maxParallel;
    const running = groupRunning.get(job.group) ?? 0;
    if (limit !== undefined && running >= limit) {
      decisions.waiting.set(job.id, `sweep limit: ${running} of max_parallel ${limit} runs running`);
      continue;
    }
    const { request, shape } = derive(job.plan);
    const user = job.user ?? '';
    const quota = quotas.get(user) ?? quotas.get('*');
    const held = userGpus.get(user) ?? 0;
    if (quota !== undefined && request.gpus.count > 0 && held + request.gpus.count > quota) {
      decisions.waiting.set(job.id, `quota: ${user || 'this user'} holds ${held} of ${quota} GPU${quota === 1 ? '' : 's'} allowed, this run needs ${request.gpus.count}`);
      continue;
    }
    let placed = placements.get(shape)?.placed;
    if (placed === undefined) {
      const candidates = candidateHosts(request, input.hosts, byName);
      placed = typeof candidates === 'string' ? candidates : placeNow(job.id, request, candidates, freeOf);
      placements.set(shape, { request, placed });
    }
    if (typeof placed === 'string') {
      decisions.waiting.set(job.id, placed);
      if (!reservation && !infeasible.has(shape)) {
        reservation = reserve(ranked, request, input.hosts, byName, free, expected, now);
        if (!reservation) infeasible.add(shape);
      }
      continue;
    }
    const runLimit = timeLimitOf(job.plan, options);
    const endsInTime = reservation !== undefined && now + runLimit <= reservation.at;
    if (reservation && !endsInTime && conflicts(placed.allocation, reservation)) {
      // Try again with only what the reserved job will not need.
      const spareShape = `${shape}\u0000spare`;
      let spare = placements.get(spareShape)?.placed;
      if (spare === undefined) {
        const candidates = candidateHosts(request, input.hosts, byName) as HostCapacity[];
        const holder = reservation;
        spare = placeNow(job.id, request, candidates, (name) => (name === holder.host ? spareCapacity(free.get(name)!, holder) : free.get(name)!));
        placements.set(spareShape, { request, placed: spare });
      }
      if (typeof spare === 'string') {
        decisions.waiting.set(job.id, heldReason(ranked, reservation, runLimit, job.plan.timeoutSeconds !== undefined, now, heldReasons));
        continue;
      }
      placed = spare;
    }
    const allocation = { ...placed.allocation, jobId: job.id };
    decisions.start.push(allocation);
    take(free.get(allocation.host)!, allocation);
    afterStart(placements, byName.get(allocation.host)!, free.get(allocation.host)!);
    groupRunning.set(job.group, running + 1);
    userGpus.set(user, held + allocation.gpus.length);
    expected.get(allocation.host)!.push({ end: now + runLimit, cpus: allocation.cpus, memoryBytes: allocation.memoryBytes, gpus: allocation.gpus });
    if (reservation && !endsInTime && allocation.host === reservation.host) {
      reservation.spareCpus -= allocation.cpus;
      reservation.spareMemoryBytes -= allocation.memoryBytes;
    }
  }
  if (reservation) decisions.reservation = { jobId: reservation.jobId, host: reservation.host, at: reservation.at, gpus: reservation.gpus };
  return decisions;
}

/** Keeps the remembered placements true once a job took capacity on `host`. */
function afterStart(placements: Map<string, { request: Request; placed: Fit | string }>, host: HostCapacity, left: FreeCapacity): void {
  for (const [shape, entry] of placements) {
    const { request, placed } = entry;
    if (typeof placed === 'string') continue;
    // What fits within the reservation's spare is rare: simply worked out again.
    if (placed.allocation.host === host.name || shape.endsWith('\u0000spare')) {
      placements.delete(shape);
      continue;
    }
    // Hosts named by the job are tried in their order, and this one came too late, or was full.
    if (request.hosts) continue;
    const gpusLeft = left.gpus.size - request.gpus.count;
    if (gpusLeft > placed.gpusLeft || (gpusLeft === placed.gpusLeft && left.cpus - request.cpus >= placed.cpusLeft)) continue;
    const there = fitOn(placed.allocation.jobId, request, host, left);
    if (there && tighter(there, placed)) entry.placed = there;
  }
}

/** The queue in the order jobs are considered: rank, then first come, first served. */
function rankQueue(input: SchedulingInput, options: PolicyOptions): RankedJob[] {
  const shares = input.recentGpuHours ? usageShares(input.recentGpuHours) : new Map<string, number>();
  const ranked = input.queued.map((job): RankedJob => {
    const priority = job.priority ?? job.plan.priority;
    const submittedAt = job.submittedAt ?? input.now;
    const fairShare = -options.fairShareLevels * (shares.get(job.user ?? '') ?? 0);
    return { job, priority, submittedAt, fairShare, rank: priority + (input.now - submittedAt) / options.agingMs + fairShare };
  });
  const byRank = (a: RankedJob, b: RankedJob) => b.rank - a.rank || a.submittedAt - b.submittedAt || a.job.id - b.job.id;
  // A long queue is sorted by a number that packs the rank (in ms of waiting) over the job's
  // position: the engine sorts plain numbers many times faster than it calls a comparison.
  // Equal packed ranks are then put in exact order, which they nearly always are already.
  const positionBits = 32 - Math.clz32(ranked.length);
  const keys = new Float64Array(ranked.length);
  let packable = ranked.length > 64;
  for (let i = 0; packable && i < ranked.length; i++) {
    const rankMs = Math.round(ranked[i]!.rank * options.agingMs);
    packable = Math.abs(rankMs) < 2 ** (52 - positionBits);
    keys[i] = -rankMs * 2 ** positionBits + i;
  }
  if (!packable) return ranked.sort(byRank);
  keys.sort();
  const mask = 2 ** positionBits;
  const ordered = Array.from(keys, (key) => ranked[((key % mask) + mask) % mask]!);
  for (let start = 0; start < ordered.length; ) {
    let end = start + 1;
    while (end < ordered.length && Math.floor(keys[end]! / mask) === Math.floor(keys[start]! / mask)) end++;
    if (end - start > 1) {
      const tied = ordered.slice(start, end).sort(byRank);
      for (let i = 0; i < tied.length; i++) ordered[start + i] = tied[i]!;
    }
    start = end;
  }
  return ordered;
}

function timeLimitOf(plan: RunPlan, options: PolicyOptions): number {
  return plan.timeoutSeconds !== undefined ? plan.timeoutSeconds * 1000 : options.defaultTimeLimitMs;
}

/**
 * Where and when a job that does not fit now can start soonest, as the running jobs end (by
 * their time limits): undefined when no usable host could ever hold it.
 */
function reserve(
  ranked: RankedJob,
  request: Request,
  hosts: readonly HostCapacity[],
  byName: ReadonlyMap<string, HostCapacity>,
  free: ReadonlyMap<string, FreeCapacity>,
  expected: ReadonlyMap<string, readonly Expected[]>,
  now: number,
): HeldReservation | undefined {
  const candidates = candidateHosts(request, hosts, byName);
  if (typeof candidates === 'string') return undefined;
  let best: HeldReservation | undefined;
  for (const host of candidates) {
    if (everFits(request, host) !== true) continue;
    const left = free.get(host.name)!;
    const state: FreeCapacity = { cpus: left.cpus, memoryBytes: left.memoryBytes, gpus: new Map(left.gpus) };
    const gpuByIndex = new Map(host.gpus.filter((gpu) => !gpu.foreign).map((gpu) => [gpu.index, gpu]));
    const ending = [...expected.get(host.name)!].sort((a, b) => a.end - b.end);
    let at = now;
    let gpus = fitsIn(state, request);
    for (let i = 0; !gpus && i < ending.length; i++) {
      const run = ending[i]!;
      state.cpus += run.cpus;
      state.memoryBytes += run.memoryBytes;
      for (const index of run.gpus) {
        const gpu = gpuByIndex.get(index);
        if (gpu) state.gpus.set(index, gpu);
      }
      at = run.end;
      gpus = fitsIn(state, request);
    }
    if (!gpus || (best && best.at <= at)) continue;
    best = {
      jobId: ranked.job.id, job: ranked, host: host.name, at, gpus, reserved: new Set(gpus),
      spareCpus: state.cpus - request.cpus, spareMemoryBytes: state.memoryBytes - request.memoryBytes,
    };
  }
  return best;
}

function fitsIn(free: FreeCapacity, request: Request): number[] | undefined {
  if (free.cpus < request.cpus || free.memoryBytes < request.memoryBytes) return undefined;
  return chooseGpus(free.gpus.values(), request.gpus);
}

/** Whether starting `allocation` now could take what the reserved job needs at its time. */
function conflicts(allocation: Allocation, reservation: HeldReservation): boolean {
  if (allocation.host !== reservation.host) return false;
  return allocation.cpus > reservation.spareCpus || allocation.memoryBytes > reservation.spareMemoryBytes || allocation.gpus.some((gpu) => reservation.reserved.has(gpu));
}

/** The reservation's host as a job that may outlast the reserved time sees it. */
function spareCapacity(free: FreeCapacity, reservation: HeldReservation): FreeCapacity {
  const gpus = new Map(free.gpus);
  for (const index of reservation.reserved) gpus.delete(index);
  return { cpus: Math.min(free.cpus, reservation.spareCpus), memoryBytes: Math.min(free.memoryBytes, reservation.spareMemoryBytes), gpus };
}

/** Why a job that fits now waits for the one first in line, naming what put that one first. */
function heldReason(ranked: RankedJob, reservation: HeldReservation, runLimit: number, hasTimeout: boolean, now: number, known: Map<string, string>): string {
  const first = reservation.job;
  let rule: string;
  if (first.priority > ranked.priority) rule = 'priority: it has a higher priority';
  else if (first.fairShare > ranked.fairShare) rule = `fair share: ${first.job.user || 'its user'} used fewer GPU-hours lately than ${ranked.job.user || 'this run\u2019s user'}`;
  else rule = 'queue order: it was queued earlier';
  // Many held jobs share their words: made once each.
  const key = `${rule}\u0000${hasTimeout ? runLimit : -1}`;
  let reason = known.get(key);
  if (reason === undefined) known.set(key, (reason = heldWords(rule, reservation, runLimit, hasTimeout, now)));
  return reason;
}

function heldWords(rule: string, reservation: HeldReservation, runLimit: number, hasTimeout: boolean, now: number): string {
  const first = reservation.job;
  const starts = reservation.at <= now ? 'now' : `in ${formatElapsed(reservation.at - now)}`;
  const delay = hasTimeout ? `this run, with its ${formatElapsed(runLimit)} timeout, could delay it` : `this run has no timeout, so it could delay it`;
  return `${rule} (run ${first.job.id} is first in line, expected to start on ${reservation.host} ${starts}); ${delay}`;
}

function dependencyBlock(job: QueuedJob, states: SchedulingInput['states']): { reason: string; skip?: true } | undefined {
  if (job.needs.length === 0) return undefined;
  const waitingFor: string[] = [];
  for (const id of job.needs) {
    const needed = states.get(id);
    if (!needed) continue;
    if (needed.state === 'succeeded') continue;
    if (needed.state === 'failed' || needed.state === 'cancelled' || needed.state === 'skipped') {
      return { reason: `skipped: it needs ${needed.key}, which ${needed.state === 'skipped' ? 'was skipped' : needed.state === 'failed' ? 'failed' : 'was cancelled'}`, skip: true };
    }
    waitingFor.push(needed.key);
  }
  if (waitingFor.length === 0) return undefined;
  const listed = waitingFor.length > 3 ? `${waitingFor.slice(0, 3).join(', ')} and ${waitingFor.length - 3} more` : waitingFor.join(', ');
  return { reason: `waiting for ${listed} to succeed` };
}

// A plan never changes once made, so what is derived from it is kept with it.
const derived = new WeakMap<RunPlan, { request: Request; shape: string }>();

/** What the plan asks, and its shape: jobs of one shape fit (or fail) alike. */
function derive(plan: RunPlan): { request: Request; shape: string } {
  let known = derived.get(plan);
  if (!known) derived.set(plan, (known = { request: requestOf(plan), shape: JSON.stringify([plan.resources, plan.hosts]) }));
  return known;
}
