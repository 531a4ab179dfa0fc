import type { JobState } from '../../../common/protocol';
import { formatSize, gpuSatisfies, type RunPlan } from '../../../common/spec';

/**
 * The first scheduling policy, as a pure function of the state it is given: no I/O and no
 * clock of its own, so the daemon and tests (and later a simulator) run the same code.
 */

export interface HostCapacity {
  name: string;
  usable: boolean;
  /** Why it is not usable, e.g. "is unreachable: connection refused". */
  unusable?: string;
  cpus: number;
  memoryBytes: number;
  gpus: { index: number; name: string; memoryTotalBytes: number; /** held by a process Drover did not start */ foreign: boolean }[];
}

export interface Allocation {
  jobId: number;
  host: string;
  cpus: number;
  memoryBytes: number;
  gpus: number[];
}

export interface QueuedJob {
  id: number;
  plan: RunPlan;
  /** Jobs sharing a sweep's `max_parallel`. */
  group: string;
  needs: number[];
  /** Earliest start (a retry's backoff), ms. */
  notBefore: number | null;
}

export interface SchedulingInput {
  now: number;
  /** In scheduling order: higher priority first, then first come, first served. */
  queued: QueuedJob[];
  running: (Allocation & { group: string })[];
  hosts: HostCapacity[];
  /** The state and name of every job a queued job needs. */
  states: Map<number, { state: JobState; key: string }>;
}

export interface Decisions {
  start: Allocation[];
  /** Why each job that stays queued waits. */
  waiting: Map<number, string>;
  /** Jobs that can never run because something they need did not succeed. */
  skip: { jobId: number; reason: string }[];
}

/** CPUs a job counts for when it does not say: one, so an idle machine runs one job per core. */
export const DEFAULT_CPUS = 1;

export function schedule(input: SchedulingInput): Decisions {
  const decisions: Decisions = { start: [], waiting: new Map(), skip: [] };
  const free = new Map(input.hosts.map((host) => [host.name, freeCapacity(host, input.running)]));
  const groupRunning = new Map<string, number>();
  for (const allocation of input.running) groupRunning.set(allocation.group, (groupRunning.get(allocation.group) ?? 0) + 1);
  const refusals = new Map<string, string>();

  for (const job of input.queued) {
    const blocked = dependencyBlock(job, input.states);
    if (blocked?.skip) {
      decisions.skip.push({ jobId: job.id, reason: blocked.reason });
      continue;
    }
    if (blocked) {
      decisions.waiting.set(job.id, blocked.reason);
      continue;
    }
    if (job.notBefore !== null && job.notBefore > input.now) {
      decisions.waiting.set(job.id, `retrying in ${Math.ceil((job.notBefore - input.now) / 1000)} s`);
      continue;
    }
    const limit = job.plan.maxParallel;
    const running = groupRunning.get(job.group) ?? 0;
    if (limit !== undefined && running >= limit) {
      decisions.waiting.set(job.id, `sweep limit: ${running} of max_parallel ${limit} runs running`);
      continue;
    }
    // Until something starts, free capacity is unchanged, so a request seen before fails the same
    // way: a long queue of alike jobs costs one placement, not one per job.
    const request = JSON.stringify([job.plan.resources, job.plan.hosts]);
    const known = refusals.get(request);
    if (known !== undefined) {
      decisions.waiting.set(job.id, known);
      continue;
    }
    const placed = place(job, input.hosts, free);
    if (typeof placed === 'string') {
      refusals.set(request, placed);
      decisions.waiting.set(job.id, placed);
      continue;
    }
    refusals.clear();
    decisions.start.push(placed);
    groupRunning.set(job.group, running + 1);
    const left = free.get(placed.host)!;
    left.cpus -= placed.cpus;
    left.memoryBytes -= placed.memoryBytes;
    for (const index of placed.gpus) left.gpus.delete(index);
  }
  return decisions;
}

interface FreeCapacity {
  cpus: number;
  memoryBytes: number;
  /** Free GPUs by index. */
  gpus: Map<number, HostCapacity['gpus'][number]>;
}

function freeCapacity(host: HostCapacity, running: readonly Allocation[]): FreeCapacity {
  const free: FreeCapacity = { cpus: host.cpus, memoryBytes: host.memoryBytes, gpus: new Map(host.gpus.filter((gpu) => !gpu.foreign).map((gpu) => [gpu.index, gpu])) };
  for (const allocation of running) {
    if (allocation.host !== host.name) continue;
    free.cpus -= allocation.cpus;
    free.memoryBytes -= allocation.memoryBytes;
    for (const index of allocation.gpus) free.gpus.delete(index);
  }
  return free;
}

function dependencyBlock(job: QueuedJob, states: SchedulingInput['states']): { reason: string; skip?: true } | undefined {
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

/** An allocation on the first host that fits, or why none does. */
function place(job: QueuedJob, hosts: readonly HostCapacity[], free: Map<string, FreeCapacity>): Allocation | string {
  const { gpus, cpus = DEFAULT_CPUS, memoryBytes = 0 } = job.plan.resources;
  const allowed = job.plan.hosts;
  // The job's hosts in its order of preference, else every host.
  const candidates = allowed ? allowed.flatMap((name) => hosts.filter((host) => host.name === name)) : hosts;
  if (candidates.length === 0) {
    return `no configured host among ${allowed!.join(', ')} (known: ${hosts.map((host) => host.name).join(', ') || 'none'})`;
  }
  const reasons: string[] = [];
  for (const name of allowed ?? []) if (!hosts.some((host) => host.name === name)) reasons.push(`${name} is not in the pool (drover hosts add ${name})`);
  for (const host of candidates) {
    if (!host.usable) {
      reasons.push(`${host.name} ${host.unusable ?? 'is not usable'}`);
      continue;
    }
    const left = free.get(host.name)!;
    const matching = [...left.gpus.values()].filter((gpu) => gpuSatisfies(gpu, gpus));
    const everMatching = host.gpus.filter((gpu) => gpuSatisfies(gpu, gpus));
    if (everMatching.length < gpus.count) {
      reasons.push(`${host.name} has ${everMatching.length} GPU${everMatching.length === 1 ? '' : 's'}${describeGpuRequest(gpus) ? ` ${describeGpuRequest(gpus)}` : ''}, the job needs ${gpus.count}`);
      continue;
    }
    if (cpus > host.cpus || memoryBytes > host.memoryBytes) {
      reasons.push(`${host.name} has ${host.cpus} CPUs and ${formatSize(host.memoryBytes)}, the job needs ${cpus} CPUs and ${formatSize(memoryBytes)}`);
      continue;
    }
    if (matching.length < gpus.count) {
      reasons.push(`waiting for ${gpus.count} GPU${gpus.count === 1 ? '' : 's'}${describeGpuRequest(gpus) ? ` ${describeGpuRequest(gpus)}` : ''}; ${matching.length} free on ${host.name}`);
      continue;
    }
    if (cpus > left.cpus) {
      reasons.push(`waiting for ${cpus} CPU${cpus === 1 ? '' : 's'}; ${Math.max(0, left.cpus)} free on ${host.name}`);
      continue;
    }
    if (memoryBytes > left.memoryBytes) {
      reasons.push(`waiting for ${formatSize(memoryBytes)} of memory; ${formatSize(Math.max(0, left.memoryBytes))} free on ${host.name}`);
      continue;
    }
    return { jobId: job.id, host: host.name, cpus, memoryBytes, gpus: matching.slice(0, gpus.count).map((gpu) => gpu.index) };
  }
  return reasons.join('; ');
}

function describeGpuRequest(request: RunPlan['resources']['gpus']): string {
  const parts: string[] = [];
  if (request.type) parts.push(`of type ${request.type}`);
  if (request.memoryBytes !== undefined) parts.push(`with ${formatSize(request.memoryBytes)}`);
  return parts.join(' ');
}
