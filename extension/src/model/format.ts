import type { JobView } from '../../../common/protocol';
import { formatGib, type ResourceRequest } from '../../../common/spec';
// Shared with the CLI, so a run reads the same in a terminal and in the editor.
export { formatElapsed, formatGib, formatMetricValue } from '../../../common/spec';

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

/** What users call a run: `12 resnet-sweep[3]`, or `12 train` when the key is the spec's name. */
export function runLabel(job: Pick<JobView, 'id' | 'specName' | 'key'>): string {
  return `${job.id} ${job.key === job.specName ? job.specName : `${job.specName}/${job.key}`}`;
}

/** How a finished run ended, in words: "succeeded", "failed (exit 1)", "cancelled (SIGTERM)". */
export function describeOutcome(job: Pick<JobView, 'state' | 'exitCode' | 'signal' | 'reason'>): string {
  // Its signal is the stop, not news.
  if (job.state === 'stopped') return 'stopped early';
  const detail = job.signal ? job.signal : job.exitCode !== undefined && job.state !== 'succeeded' ? `exit ${job.exitCode}` : undefined;
  return detail ? `${job.state} (${detail})` : job.state;
}
