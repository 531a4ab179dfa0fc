import * as vscode from 'vscode';
import { FINAL_STATES, type JobState, type SubmitParams } from '../../../common/protocol';
import type { DroverContext } from '../context';
import { runLabel } from '../model/format';
import { resolveRuns } from './pick';

const ACTIVE: readonly JobState[] = ['queued', 'running'];
const ANY: readonly JobState[] = ['queued', 'running', ...FINAL_STATES];

/** Cancels runs: running ones are stopped (SIGTERM, then SIGKILL), queued ones dropped. */
export const cancelRun = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Cancel Run', states: ACTIVE, many: true });
  if (!ids.length) return undefined;
  const client = await ctx.requireDaemon('offer');
  if (!client) return undefined;
  const { cancelled } = await client.request('drover/cancel', { ids });
  const skipped = ids.filter((id) => !cancelled.includes(id));
  void vscode.window.showInformationMessage(
    `Drover: cancelling ${cancelled.length ? `run ${cancelled.join(', ')}` : 'nothing'}${skipped.length ? ` (run ${skipped.join(', ')} had already ended)` : ''}.`,
  );
  return cancelled;
};

/** Moves queued runs up: one priority step above what they have. */
export const raisePriority = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Raise Priority', states: ['queued'], many: true });
  if (!ids.length) return undefined;
  const client = await ctx.requireDaemon('offer');
  if (!client) return undefined;
  const changed: number[] = [];
  for (const id of ids) {
    const job = ctx.store.job(id) ?? (await client.request('drover/job', { id }));
    if (job.state !== 'queued') continue;
    changed.push(...(await client.request('drover/setPriority', { ids: [id], priority: job.priority + 1 })).changed);
  }
  if (!changed.length) void vscode.window.showInformationMessage('Drover: only queued runs have a priority to raise.');
  return changed;
};

export const showLogs = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Show Logs', states: ANY });
  const client = ids.length ? await ctx.requireDaemon('offer') : undefined;
  if (!client) return undefined;
  for (const id of ids) await ctx.logs.show(ctx.store.job(id) ?? (await client.request('drover/job', { id })));
  return ids;
};

/** Says why a run waits (the scheduler's reason), or where it runs / how it ended. */
export const whyPending = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Why Pending', states: ['queued'] });
  const client = ids.length ? await ctx.requireDaemon('offer') : undefined;
  if (!client) return undefined;
  const job = await client.request('drover/job', { id: ids[0]! });
  const message =
    job.state === 'queued'
      ? `Run ${runLabel(job)} is pending: ${job.reason ?? 'waiting for the scheduler to place it'}.`
      : job.state === 'running'
        ? `Run ${runLabel(job)} is not pending: it runs on ${job.host ?? 'a host'}${job.gpus?.length ? ` (GPU ${job.gpus.join(', ')})` : ''}.`
        : `Run ${runLabel(job)} is not pending: it ${job.state}${job.reason ? ` (${job.reason})` : ''}.`;
  void vscode.window.showInformationMessage(message);
  return message;
};

/** The run's dashboard; until that exists, its record as a read-only document that says so. */
export const openDashboard = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Open in Dashboard', states: ANY });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.documents.open('dashboard', ids.slice(0, 1));
};

export const openRecord = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Open Run Record', states: ANY });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.documents.open('record', ids.slice(0, 1));
};

/** Runs side by side; until the comparison dashboard exists, a markdown table of params and last metrics. */
export const compareRuns = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Compare Runs', states: ANY, many: true });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.documents.open('compare', ids.sort((a, b) => a - b));
};

/**
 * Submits a run again from its record: the spec as it was submitted, its overrides and workdir.
 * A sweep member is rerun alone, its parameters pinned by overrides; a run pinned to a host
 * (`--host`) is rerun there.
 */
export const rerun = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Rerun', states: ANY });
  const client = ids.length ? await ctx.requireDaemon('offer') : undefined;
  if (!client) return undefined;
  const results = [];
  for (const id of ids) {
    const job = await client.request('drover/job', { id });
    const sweepMember = /\[\d+\]$/.test(job.key);
    const params: SubmitParams = {
      specText: job.record.specText,
      ...(job.record.specPath !== undefined && { specPath: job.record.specPath }),
      cwd: job.record.workdir,
      overrides: sweepMember ? { ...job.record.overrides, ...job.params } : job.record.overrides,
      env: job.record.env,
      ...(job.record.targetHost !== undefined && { host: job.record.targetHost }),
    };
    const result = await client.request('drover/submit', params);
    ctx.store.addJobs(result.jobs);
    await ctx.addMyRuns(result.jobs);
    results.push(result);
    void vscode.window.showInformationMessage(`Drover: rerunning ${runLabel(job)} as run ${result.jobs.map((run) => run.id).join(', ')}.`);
  }
  return results;
};

/** Forgets finished runs (records, logs, metrics) after the user confirms. */
export const deleteRuns = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Delete Runs', states: FINAL_STATES, many: true });
  if (!ids.length) return undefined;
  const confirm = await vscode.window.showWarningMessage(
    `Delete ${ids.length === 1 ? `run ${ids[0]}` : `${ids.length} runs (${ids.join(', ')})`}?`,
    { modal: true, detail: 'Their records, logs and metrics are removed for good.' },
    'Delete',
  );
  if (confirm !== 'Delete') return undefined;
  const client = await ctx.requireDaemon('offer');
  if (!client) return undefined;
  const { deleted } = await client.request('drover/delete', { ids });
  ctx.store.removeJobs(deleted);
  return deleted;
};
