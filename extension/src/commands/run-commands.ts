import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import { FINAL_STATES, type JobDetail, type JobState, type SubmitParams } from '../../../common/protocol';
import { analyzeSpec, type ParamValue } from '../../../common/spec';
import type { DroverContext } from '../context';
import { runLabel } from '../model/format';
import { groupDescription, groupRuns } from '../model/runs';
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

/** A run's view: its metrics, live output, reproduction record and actions. Returns the panel's key. */
export const openDashboard = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Open in Dashboard', states: ANY });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.dashboards.open({ kind: 'run', jobId: ids[0]! });
};

/**
 * An experiment's dashboard (all runs of one spec): from a Runs group, a spec file (its `name`),
 * a spec name, or the palette's pick of the experiments in the Runs view.
 */
export const openExperiment = (ctx: DroverContext) => async (...args: unknown[]) => {
  const specName = await experimentName(ctx, args[0]);
  if (!specName || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.dashboards.open({ kind: 'experiment', specName });
};

/** Which run held which GPU when, across the hosts. */
export const openGpuTimeline = (ctx: DroverContext) => async () => {
  if (!(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.dashboards.open({ kind: 'gpus' });
};

async function experimentName(ctx: DroverContext, arg: unknown): Promise<string | undefined> {
  if (typeof arg === 'string' && arg) return arg;
  if (typeof arg === 'object' && arg !== null && 'kind' in arg && arg.kind === 'group' && 'name' in arg && typeof arg.name === 'string') return arg.name;
  const uri = arg instanceof vscode.Uri ? arg : arg === undefined ? vscode.window.activeTextEditor?.document.uri : undefined;
  if (uri && /(^|[/.])drover\.ya?ml$/.test(uri.path)) {
    const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    const name = analyzeSpec(text, uri.fsPath).model?.name;
    if (!name) void vscode.window.showErrorMessage(`Drover: ${vscode.workspace.asRelativePath(uri)} has no valid spec name yet (fix the errors in the Problems view), so it has no dashboard.`);
    return name;
  }
  const names = groupRuns(ctx.store.jobs).map((group) => ({ label: group.name, description: groupDescription(group) }));
  if (!names.length) {
    void vscode.window.showInformationMessage('Drover: no experiments yet. Submit a spec first.');
    return undefined;
  }
  return (await vscode.window.showQuickPick(names, { title: 'Drover: Open Experiment Dashboard' }))?.label;
}

export const openRecord = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Open Run Record', states: ANY });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  return ctx.documents.open('record', ids.slice(0, 1));
};

/** Runs side by side: parameters with the differences marked, metric overlays, record differences. */
export const compareRuns = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Compare Runs', states: ANY, many: true });
  if (!ids.length || !(await ctx.requireDaemon('offer'))) return undefined;
  if (ids.length === 1) return ctx.dashboards.open({ kind: 'run', jobId: ids[0]! });
  return ctx.dashboards.open({ kind: 'compare', jobIds: ids.sort((a, b) => a - b) });
};

/**
 * The code a run ran against the working tree now: `git diff` from its recorded commit, as a
 * read-only diff document. A run that had uncommitted changes says so (their content was not kept).
 */
export const openRunDiff = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Diff Run with Working Tree', states: ANY });
  const client = ids.length ? await ctx.requireDaemon('offer') : undefined;
  if (!client) return undefined;
  const job = await client.request('drover/job', { id: ids[0]! });
  const git = job.record.git;
  if (!git) {
    void vscode.window.showInformationMessage(`Drover: run ${runLabel(job)} did not run from a git checkout, so there is no commit to compare with.`);
    return undefined;
  }
  const diff = await gitDiff(job.record.workdir, git.commit);
  const header = [
    `# Run ${runLabel(job)} ran commit ${git.commit}${git.branch ? ` (${git.branch})` : ''} in ${job.record.workdir}.`,
    git.dirty ? '# It also had uncommitted changes then, which were not kept: this diff is from the commit alone.' : '',
    `# Below: git diff ${git.commit.slice(0, 12)} (that commit → the working tree now).`,
    '',
  ].filter((line, index) => line !== '' || index === 3);
  const document = await vscode.workspace.openTextDocument({ language: 'diff', content: `${header.join('\n')}\n${diff || '(no differences)\n'}` });
  return vscode.window.showTextDocument(document, { preview: true });
};

function gitDiff(workdir: string, commit: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // No shell: the commit and folder are arguments, never parsed.
    execFile('git', ['-C', workdir, 'diff', '--no-color', commit, '--'], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`git diff in ${workdir} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Reruns a run with parameters the user edits first (each prefilled with the run's value). */
export const rerunWithParams = (ctx: DroverContext) => async (...args: unknown[]) => {
  const ids = await resolveRuns(ctx, args, { title: 'Rerun with Edited Parameters', states: ANY });
  const client = ids.length ? await ctx.requireDaemon('offer') : undefined;
  if (!client) return undefined;
  const job = await client.request('drover/job', { id: ids[0]! });
  const names = Object.keys(job.params);
  if (!names.length) {
    void vscode.window.showInformationMessage(`Drover: run ${runLabel(job)} has no parameters to edit; use Rerun.`);
    return undefined;
  }
  const params: Record<string, ParamValue> = {};
  for (const [index, name] of names.entries()) {
    const value = await vscode.window.showInputBox({
      title: `Rerun ${runLabel(job)} (${index + 1}/${names.length})`,
      prompt: `${name} (a number, true/false, or text)`,
      value: String(job.params[name]),
      ignoreFocusOut: true,
    });
    if (value === undefined) return undefined;
    params[name] = parseParam(value);
  }
  const result = await client.request('drover/submit', { ...resubmission(job), overrides: { ...job.record.overrides, ...params } });
  ctx.store.addJobs(result.jobs);
  await ctx.addMyRuns(result.jobs);
  void vscode.window.showInformationMessage(`Drover: rerunning ${runLabel(job)} with ${Object.entries(params).map(([name, value]) => `${name}=${value}`).join(', ')} as run ${result.jobs.map((run) => run.id).join(', ')}.`);
  return result;
};

/** What the user typed for a parameter: a number or boolean when it reads as one, else the text. */
function parseParam(text: string): ParamValue {
  const trimmed = text.trim();
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  if (trimmed !== '' && Number.isFinite(Number(trimmed))) return Number(trimmed);
  return text;
}

/** A run's submission as its record has it: the spec as submitted, its workdir and environment. */
function resubmission(job: JobDetail): SubmitParams {
  return {
    specText: job.record.specText,
    ...(job.record.specPath !== undefined && { specPath: job.record.specPath }),
    cwd: job.record.workdir,
    overrides: job.record.overrides,
    env: job.record.env,
    ...(job.record.targetHost !== undefined && { host: job.record.targetHost }),
  };
}

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
    const params: SubmitParams = { ...resubmission(job), overrides: sweepMember ? { ...job.record.overrides, ...job.params } : job.record.overrides };
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
