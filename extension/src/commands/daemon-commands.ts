import * as vscode from 'vscode';
import type { DroverContext } from '../context';

export const startDaemon = (ctx: DroverContext) => async () => {
  const running = ctx.daemon.state.kind === 'connected';
  const client = await ctx.startDaemon();
  if (client) void vscode.window.showInformationMessage(`Drover: the daemon ${running ? 'was already running' : 'is running'} (Drover ${client.daemon.daemonVersion}, pid ${client.daemon.pid}).`);
  return client?.daemon;
};

/** Stops the daemon; runs go on detached and are re-adopted when it starts again. */
export const stopDaemon = (ctx: DroverContext) => async () => {
  if (ctx.daemon.state.kind !== 'connected') {
    void vscode.window.showInformationMessage('Drover: the daemon is not running.');
    return false;
  }
  await ctx.daemon.stopDaemon();
  void vscode.window.showInformationMessage('Drover: the daemon stopped. Runs keep going; it picks them up again when it starts.');
  return true;
};

export const refresh = (ctx: DroverContext) => async () => {
  const client = await ctx.requireDaemon('offer');
  if (client) await ctx.reload(client);
};
