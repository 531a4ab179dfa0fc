import * as vscode from 'vscode';
import { DaemonRefused, type DaemonClient } from '../../common/node/daemon-client';
import { config } from './config';
import type { DroverContext } from './context';

/**
 * Keeps the daemon's pool in step with `drover.hosts`: on each connection the aliases it lacks
 * are added, and an edit of the setting adds and removes the aliases that changed. What the
 * daemon refuses is shown once, and stays visible in the Clusters view.
 */
export function registerHostSync(ctx: DroverContext): void {
  let previous = config.hosts();
  const told = new Set<string>();
  const add = async (client: DaemonClient, aliases: string[]) => {
    const refused: string[] = [];
    for (const alias of aliases) {
      try {
        ctx.store.upsertHosts([await client.request('drover/hosts/add', { alias })]);
        ctx.store.setHostRefusal(alias, undefined);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        ctx.store.setHostRefusal(alias, message);
        if (!told.has(`${alias}\0${message}`)) refused.push(`${alias}: ${message}`);
        told.add(`${alias}\0${message}`);
        if (!(error instanceof DaemonRefused)) break;
      }
    }
    if (refused.length) void vscode.window.showWarningMessage(`Drover could not add hosts from drover.hosts: ${refused.join('; ')}`);
  };
  ctx.onConnected(async (client) => {
    const known = new Set([...ctx.store.hosts].map((host) => host.name));
    await add(client, config.hosts().filter((alias) => !known.has(alias)));
  });
  ctx.own(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration('drover.hosts')) return;
      const next = config.hosts();
      const added = next.filter((alias) => !previous.includes(alias));
      const removed = previous.filter((alias) => !next.includes(alias));
      previous = next;
      for (const alias of removed) ctx.store.setHostRefusal(alias, undefined);
      if (ctx.daemon.state.kind !== 'connected') return;
      const client = ctx.daemon.state.client;
      const known = new Set([...ctx.store.hosts].map((host) => host.name));
      await add(client, added.filter((alias) => !known.has(alias)));
      for (const alias of removed.filter((name) => known.has(name))) {
        try {
          await client.request('drover/hosts/remove', { alias });
        } catch (error) {
          void vscode.window.showWarningMessage(`Drover could not remove ${alias} from the pool: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      if (removed.length) ctx.store.replaceHosts(await client.request('drover/hosts', {}));
    }),
  );
}
