import { formatSize, gpuSatisfies, type GpuRequest, type RunPlan } from '../../../common/spec';

/**
 * Where a job fits: the capacity model of the pool and the choice of host and GPUs. Pure, like
 * the policy that uses it (policy.ts).
 */

export interface HostCapacity {
  name: string;
  usable: boolean;
  /** Why it is not usable, e.g. "is unreachable: connection refused". */
  unusable?: string;
  cpus: number;
  memoryBytes: number;
  gpus: Gpu[];
}

export interface Gpu {
  index: number;
  name: string;
  memoryTotalBytes: number;
  /** Held by a process Drover did not start. */
  foreign: boolean;
}

export interface Allocation {
  jobId: number;
  host: string;
  cpus: number;
  memoryBytes: number;
  gpus: number[];
}

/** CPUs a job counts for when it does not say: one, so an idle machine runs one job per core. */
export const DEFAULT_CPUS = 1;

/** What a job asks of one host, with the defaults applied. */
export interface Request {
  gpus: GpuRequest;
  cpus: number;
  memoryBytes: number;
  /** The hosts it may run on, in order of preference; any host when absent. */
  hosts?: readonly string[];
}

export function requestOf(plan: RunPlan): Request {
  const { gpus, cpus = DEFAULT_CPUS, memoryBytes = 0 } = plan.resources;
  return { gpus, cpus, memoryBytes, ...(plan.hosts && { hosts: plan.hosts }) };
}

/** What is free on a host. */
export interface FreeCapacity {
  cpus: number;
  memoryBytes: number;
  /** Free GPUs by index (never a foreign-held one). */
  gpus: Map<number, Gpu>;
}

export function freeCapacity(host: HostCapacity, running: readonly Allocation[]): FreeCapacity {
  const free: FreeCapacity = { cpus: host.cpus, memoryBytes: host.memoryBytes, gpus: new Map(host.gpus.filter((gpu) => !gpu.foreign).map((gpu) => [gpu.index, gpu])) };
  for (const allocation of running) {
    if (allocation.host !== host.name) continue;
    take(free, allocation);
  }
  return free;
}

export function take(free: FreeCapacity, allocation: Omit<Allocation, 'jobId' | 'host'>): void {
  free.cpus -= allocation.cpus;
  free.memoryBytes -= allocation.memoryBytes;
  for (const index of allocation.gpus) free.gpus.delete(index);
}

/** The job's hosts in its order of preference, else every host; or why there are none. */
export function candidateHosts(request: Request, hosts: readonly HostCapacity[], byName: ReadonlyMap<string, HostCapacity>): HostCapacity[] | string {
  if (!request.hosts) return hosts as HostCapacity[];
  const candidates = request.hosts.flatMap((name) => byName.get(name) ?? []);
  if (candidates.length === 0) return `no configured host among ${request.hosts.join(', ')} (known: ${hosts.map((host) => host.name).join(', ') || 'none'})`;
  return candidates;
}

/** Whether a host could ever run the request (when nothing else runs there), or why not. */
export function everFits(request: Request, host: HostCapacity): true | string {
  if (!host.usable) return `${host.name} ${host.unusable ?? 'is not usable'}`;
  const { gpus } = request;
  const matching = matchingCount(host.gpus, gpus, host.gpus.length);
  if (matching < gpus.count) {
    const described = describeGpuRequest(gpus);
    return `${host.name} has ${matching} GPU${matching === 1 ? '' : 's'}${described ? ` ${described}` : ''}, the job needs ${gpus.count}`;
  }
  if (request.cpus > host.cpus || request.memoryBytes > host.memoryBytes) {
    return `${host.name} has ${host.cpus} CPUs and ${formatSize(host.memoryBytes)}, the job needs ${request.cpus} CPUs and ${formatSize(request.memoryBytes)}`;
  }
  return true;
}

/**
 * Whether a GPU can serve a request, as `gpuSatisfies`, with the type test (a string
 * comparison) remembered per model name: a pool has a handful of models, a queue many jobs.
 */
export function servesRequest(gpu: Gpu, request: GpuRequest): boolean {
  if (request.memoryBytes !== undefined && !(gpu.memoryTotalBytes >= request.memoryBytes)) return false;
  if (request.type === undefined) return true;
  let byType = typeMatches.get(gpu.name);
  if (!byType) typeMatches.set(gpu.name, (byType = new Map()));
  let matches = byType.get(request.type);
  if (matches === undefined) byType.set(request.type, (matches = gpuSatisfies({ name: gpu.name }, { count: 1, type: request.type })));
  return matches;
}

const typeMatches = new Map<string, Map<string, boolean>>();

function matchingCount(gpus: Iterable<Gpu>, request: GpuRequest, size: number): number {
  if (request.type === undefined && request.memoryBytes === undefined) return size;
  let matching = 0;
  // A host's GPUs are mostly of one model: the answer for the last one usually holds.
  let last: Gpu | undefined;
  let serves = false;
  for (const gpu of gpus) {
    if (!last || gpu.name !== last.name || gpu.memoryTotalBytes !== last.memoryTotalBytes) serves = servesRequest((last = gpu), request);
    if (serves) matching++;
  }
  return matching;
}

/**
 * The GPUs a request takes from those free, or undefined when too few match. Of the matching
 * ones it takes those with the least memory first (then the lowest index), so big GPUs stay
 * free for the jobs that need them.
 */
export function chooseGpus(free: Iterable<Gpu>, request: GpuRequest): number[] | undefined {
  if (request.count === 0) return [];
  const matching: Gpu[] = [];
  for (const gpu of free) if (servesRequest(gpu, request)) matching.push(gpu);
  if (matching.length < request.count) return undefined;
  matching.sort((a, b) => a.memoryTotalBytes - b.memoryTotalBytes || a.index - b.index);
  return matching.slice(0, request.count).map((gpu) => gpu.index);
}

/** Why a request does not fit a host's free capacity now, or undefined when it does. */
function shortOf(request: Request, host: HostCapacity, free: FreeCapacity): string | undefined {
  const { gpus } = request;
  if (gpus.count > 0) {
    const matching = matchingCount(free.gpus.values(), gpus, free.gpus.size);
    if (matching < gpus.count) {
      const described = describeGpuRequest(gpus);
      return `waiting for ${gpus.count} GPU${gpus.count === 1 ? '' : 's'}${described ? ` ${described}` : ''}; ${matching} free on ${host.name}`;
    }
  }
  if (request.cpus > free.cpus) return `waiting for ${request.cpus} CPU${request.cpus === 1 ? '' : 's'}; ${Math.max(0, free.cpus)} free on ${host.name}`;
  if (request.memoryBytes > free.memoryBytes) return `waiting for ${formatSize(request.memoryBytes)} of memory; ${formatSize(Math.max(0, free.memoryBytes))} free on ${host.name}`;
  return undefined;
}

/** How tightly an allocation fits its host: lower is tighter (best fit picks the lowest). */
export interface Fit {
  allocation: Allocation;
  gpusLeft: number;
  cpusLeft: number;
}

export function tighter(a: Fit, b: Fit | undefined): boolean {
  return !b || a.gpusLeft < b.gpusLeft || (a.gpusLeft === b.gpusLeft && a.cpusLeft < b.cpusLeft);
}

/** Whether the request fits on one host now, in numbers only (no GPUs chosen yet). */
function fitsNow(request: Request, host: HostCapacity, free: FreeCapacity): boolean {
  if (!host.usable || free.gpus.size < request.gpus.count || free.cpus < request.cpus || free.memoryBytes < request.memoryBytes) return false;
  return matchingCount(free.gpus.values(), request.gpus, free.gpus.size) >= request.gpus.count;
}

/** The request on one host now, or undefined when it does not fit there. */
export function fitOn(jobId: number, request: Request, host: HostCapacity, free: FreeCapacity): Fit | undefined {
  if (!fitsNow(request, host, free)) return undefined;
  const gpus = chooseGpus(free.gpus.values(), request.gpus)!;
  return { allocation: { jobId, host: host.name, cpus: request.cpus, memoryBytes: request.memoryBytes, gpus }, gpusLeft: free.gpus.size - gpus.length, cpusLeft: free.cpus - request.cpus };
}

/** Per-host reasons beyond these many are counted, not listed. */
const LISTED_HOSTS = 4;

/**
 * An allocation for the request now, or why there is none. A job that names its hosts gets the
 * first of them that fits (its order of preference). Otherwise the best fit: the host left with
 * the fewest free GPUs, then the fewest free CPUs, so that small jobs fill partly used hosts and
 * whole hosts stay free for jobs that need a whole host. (FreePool.bestFit finds the same host
 * through an index.)
 */
export function placeNow(jobId: number, request: Request, candidates: readonly HostCapacity[], freeOf: (host: string) => FreeCapacity): Fit | string {
  // Scored in numbers; GPUs are chosen on the winner alone.
  let best: { host: HostCapacity; free: FreeCapacity; gpusLeft: number; cpusLeft: number } | undefined;
  for (const host of candidates) {
    const free = freeOf(host.name);
    if (!fitsNow(request, host, free)) continue;
    if (request.hosts) return fitOn(jobId, request, host, free)!;
    const gpusLeft = free.gpus.size - request.gpus.count;
    const cpusLeft = free.cpus - request.cpus;
    if (!best || gpusLeft < best.gpusLeft || (gpusLeft === best.gpusLeft && cpusLeft < best.cpusLeft)) best = { host, free, gpusLeft, cpusLeft };
    // Nothing fits tighter than a host left full.
    if (gpusLeft === 0 && cpusLeft === 0) break;
  }
  if (best) return fitOn(jobId, request, best.host, best.free)!;
  return refusal(request, candidates, freeOf);
}

/** Why the request fits none of its candidate hosts now, in words: the first hosts' reasons, then a count. */
export function refusal(request: Request, candidates: readonly HostCapacity[], freeOf: (host: string) => FreeCapacity): string {
  const missing = request.hosts ? request.hosts.filter((name) => !candidates.some((host) => host.name === name)) : [];
  const total = missing.length + candidates.length;
  // Only the reasons shown are put in words.
  const shown = total <= LISTED_HOSTS ? total : LISTED_HOSTS - 1;
  const reasons = missing.slice(0, shown).map((name) => `${name} is not in the pool (drover hosts add ${name})`);
  for (const host of candidates) {
    if (reasons.length === shown) break;
    const never = everFits(request, host);
    reasons.push(never === true ? shortOf(request, host, freeOf(host.name))! : never);
  }
  if (total <= LISTED_HOSTS) return reasons.join('; ');
  return `${reasons.join('; ')}; and ${total - LISTED_HOSTS + 1} more hosts`;
}

interface Slot {
  host: HostCapacity;
  free: FreeCapacity;
  /** The host's place in the pool: ties go to the earlier host. */
  position: number;
}

/**
 * The pool's free capacity, with its usable hosts indexed the way best fit prefers them: by
 * number of free GPUs, then free CPUs, then place in the pool. Best fit then looks at the
 * hosts in that order and stops at the first that fits, instead of scoring every host.
 */
export class FreePool {
  /** What is free on each host, by name (every host, usable or not). */
  readonly free = new Map<string, FreeCapacity>();
  private readonly slots = new Map<string, Slot>();
  /** Usable hosts by number of free GPUs; each list by free CPUs, then position. */
  private readonly byFreeGpus: Slot[][] = [];

  constructor(hosts: readonly HostCapacity[], running: Iterable<Allocation>) {
    hosts.forEach((host, position) => {
      const free = freeCapacity(host, []);
      this.free.set(host.name, free);
      if (host.usable) this.slots.set(host.name, { host, free, position });
    });
    for (const allocation of running) {
      const left = this.free.get(allocation.host);
      if (left) take(left, allocation);
    }
    for (const slot of this.slots.values()) this.index(slot);
  }

  /** Takes an allocation's capacity from its host. */
  take(allocation: Allocation): void {
    const slot = this.slots.get(allocation.host);
    if (!slot) {
      const left = this.free.get(allocation.host);
      if (left) take(left, allocation);
      return;
    }
    const bucket = this.byFreeGpus[slot.free.gpus.size]!;
    bucket.splice(placeOf(bucket, slot), 1);
    take(slot.free, allocation);
    this.index(slot);
  }

  /** The same choice as placeNow over every host, for a request that names no hosts; undefined when none fits. */
  bestFit(jobId: number, request: Request): Fit | undefined {
    for (let gpus = request.gpus.count; gpus < this.byFreeGpus.length; gpus++) {
      const bucket = this.byFreeGpus[gpus]!;
      // Hosts with too few CPUs free come first: skipped at once.
      let first = 0;
      for (let high = bucket.length; first < high; ) {
        const middle = (first + high) >> 1;
        if (bucket[middle]!.free.cpus < request.cpus) first = middle + 1;
        else high = middle;
      }
      let best: { slot: Slot; cpusLeft: number } | undefined;
      for (let i = first; i < bucket.length; i++) {
        const slot = bucket[i]!;
        const cpusLeft = slot.free.cpus - request.cpus;
        // The hosts after it leave at least as many CPUs free.
        if (best && cpusLeft > best.cpusLeft) break;
        if (!fitsNow(request, slot.host, slot.free)) continue;
        if (!best || cpusLeft < best.cpusLeft || slot.position < best.slot.position) best = { slot, cpusLeft };
      }
      if (best) return fitOn(jobId, request, best.slot.host, best.slot.free);
    }
    return undefined;
  }

  private index(slot: Slot): void {
    const size = slot.free.gpus.size;
    while (this.byFreeGpus.length <= size) this.byFreeGpus.push([]);
    const bucket = this.byFreeGpus[size]!;
    bucket.splice(placeOf(bucket, slot), 0, slot);
  }
}

/** Where a host is, or goes, in its list: by free CPUs, then position (a binary search). */
function placeOf(bucket: readonly Slot[], slot: Slot): number {
  let low = 0;
  let high = bucket.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    const other = bucket[middle]!;
    if (other.free.cpus < slot.free.cpus || (other.free.cpus === slot.free.cpus && other.position < slot.position)) low = middle + 1;
    else high = middle;
  }
  return low;
}

export function describeGpuRequest(request: GpuRequest): string {
  const parts: string[] = [];
  if (request.type) parts.push(`of type ${request.type}`);
  if (request.memoryBytes !== undefined) parts.push(`with ${formatSize(request.memoryBytes)}`);
  return parts.join(' ');
}
