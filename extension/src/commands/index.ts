import * as vscode from 'vscode';
import type { DroverContext } from '../context';
import { refresh, startDaemon, stopDaemon } from './daemon-commands';
import { addHost, openHostTerminal, removeHost } from './host-commands';
import { cancelRun, compareRuns, deleteRuns, openDashboard, openExperiment, openGpuTimeline, openRecord, openRunDiff, raisePriority, rerun, rerunWithParams, showLogs, whyPending } from './run-commands';
import { previewSbatch, resetRememberedChoices, runCurrentFile, runOnCluster, submitSpec } from './submit-commands';

type Factory = (ctx: DroverContext) => (...args: unknown[]) => Promise<unknown>;

/** Every command, by id, with what it is doing (for error messages). All are declared in package.json. */
export const COMMANDS: Record<string, [Factory, string]> = {
  'drover.submitSpec': [submitSpec, 'submit the spec'],
  'drover.previewSbatch': [previewSbatch, 'preview the sbatch scripts'],
  'drover.runCurrentFile': [runCurrentFile, 'run the file'],
  'drover.runOnCluster': [runOnCluster, 'run the file'],
  'drover.cancelRun': [cancelRun, 'cancel'],
  'drover.raisePriority': [raisePriority, 'raise the priority'],
  'drover.showLogs': [showLogs, 'show the logs'],
  'drover.whyPending': [whyPending, 'say why the run is pending'],
  'drover.openDashboard': [openDashboard, 'open the dashboard'],
  'drover.openExperiment': [openExperiment, 'open the experiment dashboard'],
  'drover.openGpuTimeline': [openGpuTimeline, 'open the GPU timeline'],
  'drover.openRunDiff': [openRunDiff, 'diff the run with the working tree'],
  'drover.rerunWithParams': [rerunWithParams, 'rerun with edited parameters'],
  'drover.openRecord': [openRecord, 'open the record'],
  'drover.compareRuns': [compareRuns, 'compare the runs'],
  'drover.rerun': [rerun, 'rerun'],
  'drover.deleteRuns': [deleteRuns, 'delete the runs'],
  'drover.addHost': [addHost, 'add the host'],
  'drover.removeHost': [removeHost, 'remove the host'],
  'drover.openHostTerminal': [openHostTerminal, 'open a terminal on the host'],
  'drover.refresh': [refresh, 'refresh'],
  'drover.startDaemon': [startDaemon, 'start the daemon'],
  'drover.stopDaemon': [stopDaemon, 'stop the daemon'],
  'drover.resetRememberedChoices': [resetRememberedChoices, 'reset the remembered choices'],
};

/**
 * Registers every command, whether or not the daemon answers: each says itself what it needs.
 * A failure is shown to the user and returns undefined (so tests see it as well).
 */
export function registerCommands(ctx: DroverContext): void {
  for (const [id, [factory, doing]] of Object.entries(COMMANDS)) registerCommand(ctx, id, factory(ctx), doing);
}

/** Registers one command for the extension's life; a failure is shown to the user and returns undefined. */
export function registerCommand(ctx: DroverContext, id: string, handler: (...args: unknown[]) => Promise<unknown>, doing: string): void {
  ctx.own(
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await handler(...args);
      } catch (error) {
        ctx.reportError(error, doing);
        return undefined;
      }
    }),
  );
}
