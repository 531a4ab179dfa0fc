import * as vscode from 'vscode';
import type { JobState, JobView } from '../../../common/protocol';
import type { DroverContext } from '../context';
import { describeOutcome, runLabel } from '../model/format';
import { queueOrder } from '../model/queue';
import { runIdsFrom } from './run-args';

interface RunPick extends vscode.QuickPickItem {
  id: number;
}

/**
 * The runs a command acts on: those it was invoked on, or, from the palette, the user's pick
 * among the runs in `states` (active runs in queue order, then the newest finished ones).
 */
export async function resolveRuns(ctx: DroverContext, args: unknown[], options: { title: string; states: readonly JobState[]; many?: boolean }): Promise<number[]> {
  const given = runIdsFrom(args[0], args[1]);
  if (given.length) return given;
  const client = await ctx.requireDaemon('offer');
  if (!client) return [];
  const jobs = ctx.store.daemon.state === 'connected' ? [...ctx.store.jobs] : await client.request('drover/jobs', { limit: 200 });
  const active = queueOrder(jobs).filter((job) => options.states.includes(job.state));
  const finished = jobs.filter((job) => job.state !== 'queued' && job.state !== 'running' && options.states.includes(job.state)).sort((a, b) => b.id - a.id);
  const items: RunPick[] = [...active, ...finished].map((job) => ({ id: job.id, label: runLabel(job), description: describe(job), detail: job.reason }));
  if (!items.length) {
    void vscode.window.showInformationMessage(`Drover: no ${options.states.join(' or ')} runs to ${options.title.toLowerCase()}.`);
    return [];
  }
  if (options.many) {
    const picked = await vscode.window.showQuickPick(items, { title: `Drover: ${options.title}`, canPickMany: true, matchOnDescription: true });
    return picked?.map((item) => item.id) ?? [];
  }
  const picked = await vscode.window.showQuickPick(items, { title: `Drover: ${options.title}`, matchOnDescription: true, matchOnDetail: true });
  return picked ? [picked.id] : [];
}

function describe(job: JobView): string {
  if (job.state === 'queued') return 'queued';
  if (job.state === 'running') return `running${job.host ? ` on ${job.host}` : ''}`;
  return describeOutcome(job);
}
