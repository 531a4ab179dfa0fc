import * as vscode from 'vscode';

export type NotificationLevel = 'all' | 'failures' | 'none';

/** Typed reads of the `drover.*` settings (declared in package.json's contributes.configuration). */
export const config = {
  hosts(): string[] {
    const value = section().get<unknown>('hosts', []);
    return Array.isArray(value) ? [...new Set(value.filter((alias): alias is string => typeof alias === 'string' && alias.trim() !== '').map((alias) => alias.trim()))] : [];
  },
  daemonSocket(): string {
    return section().get<string>('daemon.socket', '').trim();
  },
  defaultTarget(): string {
    return section().get<string>('defaultTarget', '').trim();
  },
  notifications(): NotificationLevel {
    const value = section().get<string>('notifications', 'all');
    return value === 'failures' || value === 'none' ? value : 'all';
  },
  retentionDays(): number {
    const value = section().get<number>('logs.retentionDays', 0);
    return typeof value === 'number' && value > 0 ? value : 0;
  },
  python(): string {
    return section().get<string>('python', 'python3').trim() || 'python3';
  },
  rememberUnsavedChoice(): boolean {
    return section().get<boolean>('run.rememberUnsavedChoice', true);
  },
  async setHosts(aliases: string[]): Promise<void> {
    await section().update('hosts', aliases, vscode.ConfigurationTarget.Global);
  },
};

function section(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('drover');
}

/**
 * The environment the daemon client connects with, and a started daemon inherits. Under
 * Electron (desktop VS Code) the extension host's executable is Electron, which runs a script as
 * Node only with ELECTRON_RUN_AS_NODE; in code-server it is Node already.
 */
export function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (process.versions['electron']) env['ELECTRON_RUN_AS_NODE'] = '1';
  const socket = config.daemonSocket();
  if (socket) env['DROVER_DAEMON'] = socket;
  return env;
}
