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
  for (const gpu of gpus) if (servesRequest(gpu, request)) matching++;
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
 * whole hosts stay free for jobs that need a whole host.
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
  // Refused: only now are the reasons put in words.
  const reasons: string[] = [];
  if (request.hosts) for (const name of request.hosts) if (!candidates.some((host) => host.name === name)) reasons.push(`${name} is not in the pool (drover hosts add ${name})`);
  for (const host of candidates) {
    const never = everFits(request, host);
    reasons.push(never === true ? shortOf(request, host, freeOf(host.name))! : never);
  }
  if (reasons.length <= LISTED_HOSTS) return reasons.join('; ');
  return `${reasons.slice(0, LISTED_HOSTS - 1).join('; ')}; and ${reasons.length - LISTED_HOSTS + 1} more hosts`;
}

export function describeGpuRequest(request: GpuRequest): string {
  const parts: string[] = [];
  if (request.type) parts.push(`of type ${request.type}`);
  if (request.memoryBytes !== undefined) parts.push(`with ${formatSize(request.memoryBytes)}`);
  return parts.join(' ');
}
