import * as vscode from 'vscode';
import { FINAL_STATES, type JobView } from '../../common/protocol';
import { config } from './config';
import type { DroverContext } from './context';
import { describeOutcome, formatElapsed, runLabel } from './model/format';

/**
 * Tells the user when a run they started from this window ends, as `drover.notifications`
 * asks: every outcome, failures only, or nothing. Runs that ended while the daemon was out of
 * reach are told about once it answers again.
 */
export function registerNotifications(ctx: DroverContext): vscode.Disposable {
  return ctx.store.onDidChange((change) => {
    const mine = ctx.myRuns;
    if (!mine.size) return;
    const candidates = change.reloaded ? [...mine].map((id) => ctx.store.job(id)).filter((job) => job !== undefined) : change.jobs.filter((job) => mine.has(job.id));
    const ended = candidates.filter((job) => FINAL_STATES.includes(job.state));
    if (!ended.length) return;
    void ctx.forgetMyRuns(ended.map((job) => job.id));
    for (const job of ended) notify(job);
  });
}

function notify(job: JobView): void {
  const level = config.notifications();
  const failed = job.state === 'failed';
  if (level === 'none' || (level === 'failures' && !failed)) return;
  const took = job.startedAt !== undefined && job.endedAt !== undefined ? ` after ${formatElapsed(job.endedAt - job.startedAt)}` : '';
  const why = job.state !== 'succeeded' && job.reason ? `: ${job.reason}` : '';
  const message = `Drover: run ${runLabel(job)} ${describeOutcome(job)}${took}${why}`;
  const show = failed ? vscode.window.showErrorMessage : job.state === 'succeeded' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
  void show(message, 'Show Logs').then((choice) => {
    if (choice) void vscode.commands.executeCommand('drover.showLogs', job.id);
  });
}
