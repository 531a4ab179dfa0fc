import * as vscode from 'vscode';
import { config } from '../config';
import type { DroverContext } from '../context';
import { isPlainAlias } from '../host-alias';

/** A host from a Clusters node, a string, or the user's pick among hosts of `kinds`. */
async function resolveHost(ctx: DroverContext, arg: unknown, kinds: readonly string[], title: string): Promise<string | undefined> {
  if (typeof arg === 'string') return arg;
  if (typeof arg === 'object' && arg !== null) {
    if ('kind' in arg && arg.kind === 'host' && 'name' in arg && typeof arg.name === 'string') return arg.name;
    if ('kind' in arg && arg.kind === 'refused' && 'alias' in arg && typeof arg.alias === 'string') return arg.alias;
  }
  const hosts = [...ctx.store.hosts].filter((host) => kinds.includes(host.kind));
  if (!hosts.length) {
    void vscode.window.showInformationMessage(`Drover: no ${kinds.join(' or ')} hosts in the pool${ctx.store.daemon.state === 'connected' ? '' : ' (the daemon is not running)'}.`);
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    hosts.map((host) => ({ label: host.name, description: `${host.kind} · ${host.state}` })),
    { title: `Drover: ${title}` },
  );
  return picked?.label;
}

/** Adds an alias of ~/.ssh/config to the pool (picked from the config, or typed), and to drover.hosts. */
export const addHost = (ctx: DroverContext) => async (...args: unknown[]) => {
  let alias = typeof args[0] === 'string' ? args[0] : undefined;
  if (!alias) {
    const client = await ctx.requireDaemon('start');
    if (!client) return undefined;
    // The daemon reads the SSH config it will connect with (Includes and all): one reading of it.
    const inPool = new Set([...ctx.store.hosts].map((host) => host.name));
    const aliases = (await client.request('drover/hosts/aliases', {})).aliases.filter((name) => !inPool.has(name));
    const TYPE = '$(edit) Type an alias…';
    const picked = aliases.length
      ? await vscode.window.showQuickPick([...aliases.map((name) => ({ label: name, description: 'from ~/.ssh/config' })), { label: TYPE, description: 'a Host of your SSH config' }], {
          title: 'Drover: add which SSH host to the pool?',
        })
      : { label: TYPE };
    if (!picked) return undefined;
    alias =
      picked.label === TYPE
        ? await vscode.window.showInputBox({
            title: 'Drover: add an SSH host',
            prompt: 'A Host alias of your OpenSSH config; Drover connects as `ssh ALIAS` would.',
            validateInput: (value) => (isPlainAlias(value.trim()) ? undefined : 'one word, not starting with "-"'),
          })
        : picked.label;
    alias = alias?.trim();
    if (!alias) return undefined;
  }
  if (!isPlainAlias(alias)) {
    void vscode.window.showErrorMessage(`Drover: '${alias}' is not a host alias (one word, not starting with "-").`);
    return undefined;
  }
  const client = await ctx.requireDaemon('start');
  if (!client) return undefined;
  const host = await client.request('drover/hosts/add', { alias });
  ctx.store.upsertHosts([host]);
  ctx.store.setHostRefusal(alias, undefined);
  const configured = config.hosts();
  if (!configured.includes(alias)) await config.setHosts([...configured, alias]);
  void vscode.window.showInformationMessage(`Drover: ${alias} is in the pool (${host.state}${host.message ? `: ${host.message}` : ''}).`);
  return host;
};

export const removeHost = (ctx: DroverContext) => async (...args: unknown[]) => {
  const alias = await resolveHost(ctx, args[0], ['ssh'], 'remove which host from the pool?');
  if (!alias) return undefined;
  const configured = config.hosts();
  const known = [...ctx.store.hosts].some((host) => host.name === alias);
  if (known) {
    const client = await ctx.requireDaemon('offer');
    if (!client) return undefined;
    await client.request('drover/hosts/remove', { alias });
    ctx.store.replaceHosts(await client.request('drover/hosts', {}));
  }
  ctx.store.setHostRefusal(alias, undefined);
  if (configured.includes(alias)) await config.setHosts(configured.filter((name) => name !== alias));
  return alias;
};

/** `ssh ALIAS` in an integrated terminal; the alias is an argument of its own, never shell text. */
export const openHostTerminal = (ctx: DroverContext) => async (...args: unknown[]) => {
  const alias = await resolveHost(ctx, args[0], ['ssh'], 'open a terminal on which host?');
  if (!alias) return undefined;
  if (!isPlainAlias(alias)) {
    void vscode.window.showErrorMessage(`Drover: '${alias}' is not a host alias ssh can take.`);
    return undefined;
  }
  const terminal = vscode.window.createTerminal({ name: `ssh ${alias}`, shellPath: 'ssh', shellArgs: [alias], iconPath: new vscode.ThemeIcon('remote') });
  terminal.show();
  return terminal;
};
