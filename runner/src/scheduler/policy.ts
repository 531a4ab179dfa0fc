import type { JobState } from '../../../common/protocol';
import { formatElapsed, type RunPlan } from '../../../common/spec';
import { usageShares } from './fair-share';
import {
  candidateHosts,
  chooseGpus,
  everFits,
  fitOn,
  FreePool,
  placeNow,
  refusal,
  tighter,
  requestOf,
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
 * Starvation bound. Once every job that ranks ahead of a job has started (none queued after it
 * does once it has aged as above), it is first in line; so it starts by the time the first host
 * that could hold it would be empty, counting each run there as lasting its time limit.
 * checkStarvationBound (simulator.ts) checks this on replays.
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
  waiting: ReadonlyMap<number, string>;
  /** Jobs that can never run because something they need did not succeed. */
  skip: { jobId: number; reason: string }[];
  reservation?: Reservation;
}

/**
 * Why each waiting job waits, by job id, in the order decided: a read-only map kept as two
 * lists. Its usual reader goes through it once (the daemon); a hash table of every waiting job
 * would cost a long queue more than the rest of the pass. `get` makes one on first use.
 */
class WaitingReasons implements ReadonlyMap<number, string> {
  private readonly ids: number[] = [];
  private readonly reasons: string[] = [];
  private byId: Map<number, string> | undefined;

  /** Adds a job, which the pass decides once. */
  add(jobId: number, reason: string): void {
    this.ids.push(jobId);
    this.reasons.push(reason);
    this.byId?.set(jobId, reason);
  }

  get size(): number {
    return this.ids.length;
  }

  get(jobId: number): string | undefined {
    return this.index().get(jobId);
  }

  has(jobId: number): boolean {
    return this.index().has(jobId);
  }

  forEach(callback: (reason: string, jobId: number, map: ReadonlyMap<number, string>) => void, thisArg?: unknown): void {
    for (let i = 0; i < this.ids.length; i++) callback.call(thisArg, this.reasons[i]!, this.ids[i]!, this);
  }

  entries(): MapIterator<[number, string]> {
    return this.ids.map((jobId, i): [number, string] => [jobId, this.reasons[i]!]).values();
  }

  keys(): MapIterator<number> {
    return this.ids.values();
  }

  values(): MapIterator<string> {
    return this.reasons.values();
  }

  [Symbol.iterator](): MapIterator<[number, string]> {
    return this.entries();
  }

  private index(): Map<number, string> {
    return (this.byId ??= new Map(this.ids.map((jobId, i) => [jobId, this.reasons[i]!])));
  }
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
  const waiting = new WaitingReasons();
  const decisions: Decisions = { start: [], waiting, skip: [] };
  const byName = new Map(input.hosts.map((host) => [host.name, host]));
  const pool = new FreePool(input.hosts, input.running);
  const { free } = pool;
  const { queued } = input;
  const { order, ids, shapes, plain, limited, rankOf } = readQueue(input, options);
  /** Runs by sweep group, kept only when a queued job has a sweep limit. */
  const groupRunning = new Map<string, number>();
  const userGpus = new Map<string, number>();
  /** What runs on each host, and when it is expected to end (time limits). */
  const expected = new Map<string, Expected[]>(input.hosts.map((host) => [host.name, []]));
  for (const running of input.running) {
    if (limited) groupRunning.set(running.group, (groupRunning.get(running.group) ?? 0) + 1);
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
  const placements: Placements = { fits: new Map(), live: [], spares: new Map() };
  const infeasible = new Set<number>();
  let reservation: HeldReservation | undefined;
  const heldReasons = new Map<string, string>();
  const quotas = new Map(Object.entries(options.gpuQuotas));

  for (let i = 0; i < order.length; i++) {
    const position = order[i]!;
    // Most jobs wait for resources alone; their objects are not read (reading 10,000 objects in
    // rank order, scattered in memory, costs more than the rest of their handling).
    const job = queued[position]!;
    if (!plain[position]) {
      const blocked = dependencyBlock(job, input.states);
      if (blocked?.skip) {
        decisions.skip.push({ jobId: job.id, reason: blocked.reason });
        continue;
      }
      if (blocked) {
        waiting.add(job.id, blocked.reason);
        continue;
      }
      if (job.notBefore !== null && job.notBefore > now) {
        waiting.add(job.id, `retrying in ${Math.ceil((job.notBefore - now) / 1000)} s`);
        continue;
      }
      const limit = job.plan.maxParallel;
      const running = groupRunning.get(job.group) ?? 0;
      if (limit !== undefined && running >= limit) {
        waiting.add(job.id, `sweep limit: ${running} of max_parallel ${limit} runs running`);
        continue;
      }
    }
    const shape = shapes[position]!;
    let entry = placements.fits.get(shape);
    if (quotas.size > 0) {
      const request = entry?.request ?? shapeRequests[shape]!;
      const user = job.user ?? '';
      const quota = quotas.get(user) ?? quotas.get('*');
      const held = userGpus.get(user) ?? 0;
      if (quota !== undefined && request.gpus.count > 0 && held + request.gpus.count > quota) {
        waiting.add(job.id, `quota: ${user || 'this user'} holds ${held} of ${quota} GPU${quota === 1 ? '' : 's'} allowed, this run needs ${request.gpus.count}`);
        continue;
      }
    }
    if (!entry) {
      const request = shapeRequests[shape]!;
      const candidates = candidateHosts(request, input.hosts, byName);
      let placed: Fit | string;
      if (typeof candidates === 'string') placed = candidates;
      else if (request.hosts) placed = placeNow(job.id, request, candidates, freeOf);
      else placed = pool.bestFit(job.id, request) ?? refusal(request, candidates, freeOf);
      remember(placements, (entry = { shape, request, placed }));
    }
    const { request } = entry;
    let { placed } = entry;
    if (typeof placed === 'string') {
      waiting.add(ids[position]!, placed);
      if (!reservation && !infeasible.has(shape)) {
        reservation = reserve(rankOf(position), request, input.hosts, byName, free, expected, now);
        if (!reservation) infeasible.add(shape);
      }
      continue;
    }
    const runLimit = timeLimitOf(job.plan, options);
    const endsInTime = reservation !== undefined && now + runLimit <= reservation.at;
    if (reservation && !endsInTime && conflicts(placed.allocation, reservation)) {
      // Try again with only what the reserved job will not need.
      let spare = placements.spares.get(shape)?.placed;
      if (spare === undefined) {
        const candidates = candidateHosts(request, input.hosts, byName) as HostCapacity[];
        const holder = reservation;
        spare = placeNow(job.id, request, candidates, (name) => (name === holder.host ? spareCapacity(free.get(name)!, holder) : free.get(name)!));
        placements.spares.set(shape, { shape, request, placed: spare });
      }
      if (typeof spare === 'string') {
        waiting.add(job.id, heldReason(rankOf(position), reservation, runLimit, job.plan.timeoutSeconds !== undefined, now, heldReasons));
        continue;
      }
      placed = spare;
    }
    const allocation = { ...placed.allocation, jobId: job.id };
    decisions.start.push(allocation);
    pool.take(allocation);
    afterStart(placements, byName.get(allocation.host)!, free.get(allocation.host)!);
    if (limited) groupRunning.set(job.group, (groupRunning.get(job.group) ?? 0) + 1);
    const user = job.user ?? '';
    userGpus.set(user, (userGpus.get(user) ?? 0) + allocation.gpus.length);
    // Only a reservation still to be made reads what is expected to end.
    if (!reservation) expected.get(allocation.host)!.push({ end: now + runLimit, cpus: allocation.cpus, memoryBytes: allocation.memoryBytes, gpus: allocation.gpus });
    if (reservation && !endsInTime && allocation.host === reservation.host) {
      reservation.spareCpus -= allocation.cpus;
      reservation.spareMemoryBytes -= allocation.memoryBytes;
    }
  }
  if (reservation) decisions.reservation = { jobId: reservation.jobId, host: reservation.host, at: reservation.at, gpus: reservation.gpus };
  return decisions;
}

interface Placed {
  shape: number;
  request: Request;
  placed: Fit | string;
}

/** Placements remembered by shape (see shapeOf) during one pass: on the free capacity, and on what a reservation leaves spare. */
interface Placements {
  fits: Map<number, Placed>;
  /** The entries of `fits` that are fits (not refusals): those a start can change. */
  live: Placed[];
  spares: Map<number, Placed>;
}

function remember(placements: Placements, entry: Placed): void {
  placements.fits.set(entry.shape, entry);
  if (typeof entry.placed !== 'string') placements.live.push(entry);
}

/** Keeps the remembered placements true once a job took capacity on `host`. */
function afterStart(placements: Placements, host: HostCapacity, left: FreeCapacity): void {
  // What fits within the reservation's spare is rare: simply worked out again.
  for (const [shape, { placed }] of placements.spares) if (typeof placed !== 'string') placements.spares.delete(shape);
  const { live } = placements;
  let kept = 0;
  for (let i = 0; i < live.length; i++) {
    const entry = live[i]!;
    const { request } = entry;
    const placed = entry.placed as Fit;
    if (placed.allocation.host === host.name) {
      placements.fits.delete(entry.shape);
      continue;
    }
    live[kept++] = entry;
    // Hosts named by the job are tried in their order, and this one came too late, or was full.
    if (request.hosts) continue;
    const gpusLeft = left.gpus.size - request.gpus.count;
    if (gpusLeft > placed.gpusLeft || (gpusLeft === placed.gpusLeft && left.cpus - request.cpus >= placed.cpusLeft)) continue;
    const there = fitOn(placed.allocation.jobId, request, host, left);
    if (there && tighter(there, placed)) entry.placed = there;
  }
  live.length = kept;
}

/** The queue as one pass reads it, by position in `input.queued`. */
interface QueueView {
  /** Positions in the order jobs are considered: rank, then first come, first served. */
  order: ArrayLike<number>;
  ids: Float64Array;
  /** Each job's shape (see shapeOf). */
  shapes: Int32Array;
  /** 1 where the job waits on nothing but resources and its quota: no dependency, retry backoff or sweep limit. */
  plain: Uint8Array;
  /** Whether a job has a sweep limit. */
  limited: boolean;
  /** A job's rank in full, made only for the few that need it. */
  rankOf: (position: number) => RankedJob;
}

/** Reads the queue in one pass in its own order (its objects lie in memory that way), and ranks it. */
function readQueue(input: SchedulingInput, options: PolicyOptions): QueueView {
  const { queued, now } = input;
  const shares = input.recentGpuHours ? usageShares(input.recentGpuHours) : new Map<string, number>();
  const rankOf = (position: number): RankedJob => {
    const job = queued[position]!;
    const priority = job.priority ?? job.plan.priority;
    const submittedAt = job.submittedAt ?? now;
    const fairShare = -options.fairShareLevels * (shares.get(job.user ?? '') ?? 0);
    return { job, priority, submittedAt, fairShare, rank: priority + (now - submittedAt) / options.agingMs + fairShare };
  };
  const count = queued.length;
  const { ids, shapes, plain, rankMs, keys, order, next } = scratch(count);
  let limited = false;
  let highest = -Infinity;
  let lowest = Infinity;
  for (let i = 0; i < count; i++) {
    const job = queued[i]!;
    // The rank as rankOf, in whole ms of waiting, without making an object per job.
    const rank = (job.priority ?? job.plan.priority) + (now - (job.submittedAt ?? now)) / options.agingMs + -options.fairShareLevels * (shares.get(job.user ?? '') ?? 0);
    const rounded = Math.round(rank * options.agingMs);
    rankMs[i] = rounded;
    if (rounded > highest) highest = rounded;
    if (rounded < lowest) lowest = rounded;
    ids[i] = job.id;
    shapes[i] = shapeOf(job.plan);
    if (job.plan.maxParallel !== undefined) limited = true;
    plain[i] = job.needs.length === 0 && (job.notBefore === null || job.notBefore <= now) && job.plan.maxParallel === undefined ? 1 : 0;
  }
  const inExactOrder = (positions: ArrayLike<number>): number[] =>
    Array.from(positions, (position) => ({ position, ranked: rankOf(position) }))
      .sort((a, b) => b.ranked.rank - a.ranked.rank || a.ranked.submittedAt - b.ranked.submittedAt || a.ranked.job.id - b.ranked.job.id)
      .map(({ position }) => position);
  const view = { ids, shapes, plain, limited, rankOf };
  if (count <= 64 || !(highest - lowest < 2 ** 32)) return { order: inExactOrder(Array.from(queued.keys())), ...view };
  // A long queue is sorted by that rank, highest first, as a 32-bit key: a radix sort of that
  // is several times faster than sorting by a comparison. Jobs of equal keys keep the queue's
  // order; they are then put in exact order (they nearly always are already).
  for (let i = 0; i < count; i++) keys[i] = highest - rankMs[i]!;
  const sorted = radixOrder(keys, order, next);
  for (let start = 0; start < count; ) {
    let end = start + 1;
    while (end < count && keys[sorted[end]!] === keys[sorted[start]!]) end++;
    if (end - start > 1) sorted.set(inExactOrder(sorted.subarray(start, end)), start);
    start = end;
  }
  return { order: sorted, ...view };
}

/**
 * Positions 0…n−1 ordered by key, equal keys in position order: a least-significant-digit radix
 * sort, 11 bits a pass, in the two arrays given (the result is one of them).
 */
function radixOrder(keys: Uint32Array, order: Int32Array, next: Int32Array): Int32Array {
  const count = keys.length;
  for (let i = 0; i < count; i++) order[i] = i;
  const starts = new Int32Array(2048);
  for (let shift = 0; shift < 32; shift += 11) {
    starts.fill(0);
    for (let i = 0; i < count; i++) starts[(keys[i]! >>> shift) & 2047]++;
    // A digit all keys share orders nothing.
    if (starts.includes(count)) continue;
    for (let digit = 0, sum = 0; digit < 2048; digit++) {
      const here = starts[digit]!;
      starts[digit] = sum;
      sum += here;
    }
    for (let i = 0; i < count; i++) {
      const position = order[i]!;
      next[starts[(keys[position]! >>> shift) & 2047]!++] = position;
    }
    [order, next] = [next, order];
  }
  return order;
}

/**
 * Working arrays for one pass over a queue, kept between passes: a pass over 10,000 jobs would
 * otherwise allocate (and the collector free) a third of a megabyte. A pass runs start to end
 * without yielding, so no two passes share them.
 */
let buffers = makeBuffers(0);

function makeBuffers(capacity: number) {
  return {
    capacity,
    ids: new Float64Array(capacity),
    shapes: new Int32Array(capacity),
    plain: new Uint8Array(capacity),
    rankMs: new Float64Array(capacity),
    keys: new Uint32Array(capacity),
    order: new Int32Array(capacity),
    next: new Int32Array(capacity),
  };
}

function scratch(count: number) {
  if (buffers.capacity < count) buffers = makeBuffers(Math.max(count, 2 * buffers.capacity));
  const { ids, shapes, plain, rankMs, keys, order, next } = buffers;
  return {
    ids: ids.subarray(0, count), shapes: shapes.subarray(0, count), plain: plain.subarray(0, count), rankMs: rankMs.subarray(0, count),
    keys: keys.subarray(0, count), order: order.subarray(0, count), next: next.subarray(0, count),
  };
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

/** Why a run is skipped: a run it needs ended without succeeding ('it needs wf/train, which failed'). */
export function neededEndedReason(key: string, state: JobState): string {
  return `it needs ${key}, which ${state === 'skipped' || state === 'cancelled' ? `was ${state}` : state}`;
}

function dependencyBlock(job: QueuedJob, states: SchedulingInput['states']): { reason: string; skip?: true } | undefined {
  if (job.needs.length === 0) return undefined;
  const waitingFor: string[] = [];
  for (const id of job.needs) {
    const needed = states.get(id);
    if (!needed) continue;
    if (needed.state === 'succeeded') continue;
    if (needed.state === 'failed' || needed.state === 'cancelled' || needed.state === 'skipped') {
      return { reason: neededEndedReason(needed.key, needed.state), skip: true };
    }
    waitingFor.push(needed.key);
  }
  if (waitingFor.length === 0) return undefined;
  const listed = waitingFor.length > 3 ? `${waitingFor.slice(0, 3).join(', ')} and ${waitingFor.length - 3} more` : waitingFor.join(', ');
  return { reason: `waiting for ${listed} to succeed` };
}

// A plan never changes once made, so its shape is kept with it.
const shapeOfPlan = new WeakMap<RunPlan, number>();
/**
 * Shapes by what they ask, numbered: a number is compared at once, a long string letter by letter.
 * Kept for the process's life: there are as many as distinct resource requests, a few hundred.
 */
const shapeIds = new Map<string, number>();
/** What each shape asks (requestOf any plan of that shape), by number. */
const shapeRequests: Request[] = [];

/** The plan's shape: jobs of one shape fit (or fail) alike. */
function shapeOf(plan: RunPlan): number {
  let shape = shapeOfPlan.get(plan);
  if (shape === undefined) {
    const described = JSON.stringify([plan.resources, plan.hosts]);
    shape = shapeIds.get(described);
    if (shape === undefined) {
      shapeIds.set(described, (shape = shapeRequests.length));
      shapeRequests.push(requestOf(plan));
    }
    shapeOfPlan.set(plan, shape);
  }
  return shape;
}
