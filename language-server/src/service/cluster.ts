import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import type { GpuView, HostView } from '../../../common/protocol/daemon';
import { formatSize, gpuSatisfies, gpuTypeMatches, isMapNode, mapEntry, mapValue, type GpuRequest, type JobSpec, type SourceRange } from '../../../common/spec';
import { closestMatch, didYouMean } from '../../../common/spec/suggest';
import { gpuModelToken } from './completion';
import { jobMapOf } from './navigation';
import type { SpecDocument } from './spec-document';

/** What the cluster checks report; quick fixes and tests key on it. */
export type ClusterDiagnosticCode = 'gpu-capacity' | 'gpu-type' | 'unknown-host' | 'cpu-capacity' | 'memory-capacity';

/**
 * Checks a spec against the hosts the daemon reports: a job that asks for more GPUs (of its type,
 * with its memory), CPUs or memory than any single host it may run on has, a GPU type no host
 * has, and a `placement.hosts` entry that is not in the pool. Warnings, since the cluster can
 * change; nothing at all without hosts (the daemon is not reachable, so no opinion).
 *
 * A host that is degraded or unreachable is still in the pool (placement may name it), but its
 * GPUs count only as far as it reports them, and its CPUs and memory only when it reports them.
 */
export function clusterDiagnostics(document: SpecDocument, hosts: readonly HostView[]): Diagnostic[] {
  const model = document.analysis.model;
  if (hosts.length === 0 || !model) return [];
  const found: Diagnostic[] = [];
  const report = (code: ClusterDiagnosticCode, message: string, range: SourceRange, suggestion?: string) => {
    found.push({
      severity: DiagnosticSeverity.Warning,
      code,
      source: 'drover',
      message,
      range: document.rangeOf(range),
      ...(suggestion !== undefined && { data: { suggestion } }),
    });
  };
  const names = new Set(hosts.map((host) => host.name));
  for (const job of model.jobs) {
    for (const entry of job.hosts ?? []) {
      if (names.has(entry.value)) continue;
      const suggestion = likelyTypo(entry.value, names);
      const add = `add it with drover hosts add ${entry.value}`;
      const message = `${entry.value} is not in the pool (hosts: ${listed([...names])})${suggestion !== undefined ? `${didYouMean(suggestion)} Otherwise ${add}` : `; ${add}`}`;
      report('unknown-host', message, entry.range, suggestion);
    }
    const candidates = job.hosts ? hosts.filter((host) => job.hosts!.some((entry) => entry.value === host.name)) : hosts;
    // Placement that names no known host: the entries are reported above; capacity has nothing to be judged on.
    if (candidates.length === 0) continue;
    const subject = job.hosts ? 'no host in placement.hosts' : 'no host';
    const places = resourcePlaces(document, job);
    const gpu = gpuProblem(job.resources.gpus, candidates, hosts, subject);
    if (gpu) report(gpu.code, gpu.message, places.gpus);
    const { cpus, memoryBytes } = job.resources;
    if (cpus !== undefined) {
      const largest = largestBy(candidates, (host) => host.cpus);
      if (largest && cpus > largest.cpus) report('cpu-capacity', `${subject} has ${plural(cpus, 'CPU')}; the largest, ${largest.name}, has ${largest.cpus}`, places.cpus);
    }
    if (memoryBytes !== undefined) {
      const largest = largestBy(candidates, (host) => host.memoryBytes);
      if (largest && memoryBytes > largest.memoryBytes) {
        report('memory-capacity', `${subject} has ${formatSize(memoryBytes)} of memory; the largest, ${largest.name}, has ${sizeLike(largest.memoryBytes, memoryBytes)}`, places.memory);
      }
    }
  }
  return found;
}

interface GpuProblem {
  code: 'gpu-capacity' | 'gpu-type';
  message: string;
}

/** Whether some single host among `candidates` holds the GPUs asked for, and if not, why not in words. */
function gpuProblem(request: GpuRequest, candidates: readonly HostView[], pool: readonly HostView[], subject: string): GpuProblem | undefined {
  if (request.count <= 0) return undefined;
  const notCounted = uncounted(candidates);
  const { type, memoryBytes } = request;
  if (type !== undefined) {
    const ofType = (host: HostView) => host.gpus.filter((gpu) => gpuTypeMatches(gpu.name, type));
    if (!candidates.some((host) => ofType(host).length > 0)) {
      const elsewhere = largestBy(pool, (host) => ofType(host).length);
      if (elsewhere && ofType(elsewhere).length > 0) {
        const theyHave = gpuModels(candidates.flatMap((host) => host.gpus));
        return {
          code: 'gpu-type',
          message: `${subject} has a GPU of type ${type} (${theyHave ? `they have: ${theyHave}` : 'they have no GPUs'}); ${elsewhere.name} has ${ofType(elsewhere).length} ${type}${notCounted}`,
        };
      }
      const clusterHas = gpuModels(pool.flatMap((host) => host.gpus));
      return { code: 'gpu-type', message: `no host has a GPU of type ${type} (${clusterHas ? `the cluster has: ${clusterHas}` : 'the cluster has no GPUs'})${uncounted(pool)}` };
    }
  }
  const ofKind = (host: HostView) => host.gpus.filter((gpu) => gpuSatisfies(gpu, request));
  const best = largestBy(candidates, (host) => ofKind(host).length);
  const have = best ? ofKind(best).length : 0;
  if (have >= request.count) return undefined;
  const typeWords = type !== undefined ? ` of type ${type}` : '';
  if (memoryBytes !== undefined && have === 0) {
    // GPUs of the kind exist (or any, without a type) but none has the memory: say what the most is.
    let most: { gpu: GpuView; host: HostView } | undefined;
    for (const host of candidates) {
      for (const gpu of host.gpus) {
        if (type !== undefined && !gpuTypeMatches(gpu.name, type)) continue;
        if (!most || gpu.memoryTotalBytes > most.gpu.memoryTotalBytes) most = { gpu, host };
      }
    }
    if (most) {
      return {
        code: 'gpu-capacity',
        message: `${subject} has a GPU${typeWords} with ${formatSize(memoryBytes)}; the most is ${sizeLike(most.gpu.memoryTotalBytes, memoryBytes)} on ${most.host.name}${notCounted}`,
      };
    }
  }
  if (!candidates.some((host) => host.gpus.length > 0)) {
    return { code: 'gpu-capacity', message: `${subject} has a GPU; the job asks for ${request.count}${notCounted}` };
  }
  const asked = `${plural(request.count, 'GPU')}${typeWords}${memoryBytes !== undefined ? ` with ${formatSize(memoryBytes)}` : ''}`;
  const largest = type === undefined && memoryBytes === undefined
    ? `the largest, ${best!.name}, has ${have}`
    : `${best!.name} has ${type !== undefined ? `${have} ${type}` : plural(have, 'GPU')}${memoryBytes !== undefined ? ` with ${formatSize(memoryBytes)}` : ''}`;
  return { code: 'gpu-capacity', message: `${subject} has ${asked}; ${largest}${notCounted}` };
}

/** `; not counted: box-3 (unreachable)`: hosts that report no GPUs because they are not up. */
function uncounted(hosts: readonly HostView[]): string {
  const down = hosts.filter((host) => host.state !== 'up' && host.gpus.length === 0);
  return down.length > 0 ? `; not counted: ${down.map((host) => `${host.name} (${host.state})`).join(', ')}` : '';
}

/**
 * The pool's host that a name is likely a typo of. Names that differ only in their numbers
 * (`box-7`, `box-1`) are taken for different machines, not for a typo.
 */
function likelyTypo(name: string, names: Iterable<string>): string | undefined {
  const shape = (text: string) => text.replace(/\d+/g, '#');
  const match = closestMatch(name, names);
  return match !== undefined && shape(match) !== shape(name) ? match : undefined;
}

/** The host with the most of something (the first of equals, in the daemon's order); hosts that report none of it are left out. */
function largestBy(hosts: readonly HostView[], measure: (host: HostView) => number): HostView | undefined {
  let best: HostView | undefined;
  let bestValue = 0;
  for (const host of hosts) {
    const value = measure(host);
    if (value > bestValue) {
      best = host;
      bestValue = value;
    }
  }
  return best;
}

const VENDOR_WORDS = /^(nvidia|tesla|geforce|quadro|amd|radeon|instinct|intel)$/i;

/** Distinct GPU models, short: `A100, RTX 4090` (the model token, else the name without vendor words). */
function gpuModels(gpus: readonly GpuView[]): string {
  const models = new Set<string>();
  for (const gpu of gpus) {
    const short = gpu.name.trim().split(/\s+/).filter((word) => !VENDOR_WORDS.test(word)).join(' ');
    models.add(gpuModelToken(gpu.name) ?? (short || gpu.name.trim()));
  }
  return listed([...models]);
}

/** `a, b, c`, or the first few and how many more. */
function listed(items: readonly string[], shown = 6): string {
  return items.length > shown ? `${items.slice(0, shown).join(', ')} and ${items.length - shown} more` : items.join(', ');
}

/**
 * A host's size next to a requested one: as `formatSize` writes it, with the request's unit in
 * parentheses when the two differ in kind (`62.63 GiB` read against `64 GB` needs no arithmetic).
 */
function sizeLike(bytes: number, requested: number): string {
  const text = formatSize(bytes);
  const unit = formatSize(requested).split(' ')[1]!;
  if (text.split(' ')[1]!.includes('i') === unit.includes('i')) return text;
  const factor = sizeFactor(unit);
  return factor === undefined ? text : `${text} (${+(bytes / factor).toFixed(2)} ${unit})`;
}

function sizeFactor(unit: string): number | undefined {
  const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'].indexOf(unit);
  if (binary >= 0) return 2 ** (10 * binary);
  const decimal = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'].indexOf(unit);
  return decimal >= 0 ? 10 ** (3 * decimal) : undefined;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** Where to point at each resource of a job: its value under `resources`, else the `resources` key, else the job's name. */
function resourcePlaces(document: SpecDocument, job: JobSpec): { gpus: SourceRange; cpus: SourceRange; memory: SourceRange } {
  const map = jobMapOf(document, job);
  const resources = map && mapEntry(map, 'resources');
  const fallback = resources?.keyRange ?? job.idRange;
  const at = (key: string): SourceRange => (resources && isMapNode(resources.value) && mapValue(resources.value, key)?.range) || fallback;
  return { gpus: at('gpus'), cpus: at('cpus'), memory: at('memory') };
}

