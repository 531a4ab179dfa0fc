import type { JobView } from '../../../common/protocol';
import type { ResourceRequest } from '../../../common/spec';

/** 42s, 3m04s, 1h02m, 2d03h: short enough for a tree item's description. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad(seconds % 60)}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${pad(Math.floor((seconds % 3600) / 60))}m`;
  return `${Math.floor(seconds / 86_400)}d${pad(Math.floor((seconds % 86_400) / 3600))}h`;
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** What a run asked for: "2× A100 GPUs (≥40 GiB), 4 CPUs, 16 GiB" or "CPU only". */
export function formatResources(resources: ResourceRequest): string {
  const parts: string[] = [];
  const gpus = resources.gpus;
  if (gpus.count > 0) {
    let text = `${gpus.count}${gpus.type ? `× ${gpus.type}` : ''} GPU${gpus.count === 1 ? '' : 's'}`;
    if (gpus.memoryBytes !== undefined) text += ` (≥${formatGib(gpus.memoryBytes)} GiB)`;
    parts.push(text);
  }
  if (resources.cpus !== undefined) parts.push(`${resources.cpus} CPU${resources.cpus === 1 ? '' : 's'}`);
  if (resources.memoryBytes !== undefined) parts.push(`${formatGib(resources.memoryBytes)} GiB`);
  if (gpus.count === 0) parts.unshift('CPU only');
  return parts.join(', ');
}

/** Bytes as GiB with at most one decimal: 17.0, 40, 0.5. */
export function formatGib(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return Number.isInteger(gib) ? String(gib) : gib.toFixed(1);
}

/** What users call a run: `12 resnet-sweep[3]`, or `12 train` when the key is the spec's name. */
export function runLabel(job: Pick<JobView, 'id' | 'specName' | 'key'>): string {
  return `${job.id} ${job.key === job.specName ? job.specName : `${job.specName}/${job.key}`}`;
}

/** A metric value for a description: 4 significant digits, exponent form for tiny or huge ones. */
export function formatMetricValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return value.toExponential(2);
  return String(+value.toPrecision(4));
}

/** How a finished run ended, in words: "succeeded", "failed (exit 1)", "cancelled (SIGTERM)". */
export function describeOutcome(job: Pick<JobView, 'state' | 'exitCode' | 'signal' | 'reason'>): string {
  const detail = job.signal ? job.signal : job.exitCode !== undefined && job.state !== 'succeeded' ? `exit ${job.exitCode}` : undefined;
  return detail ? `${job.state} (${detail})` : job.state;
}
