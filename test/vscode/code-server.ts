/** What the test runner and `npm run editor` share: the VS Code server install and its URLs. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');

/** Installs code-server once (into .cache/, see install-code-server.sh) and returns its server entry point. */
export function installServer(): string {
  const script = path.join(REPO, 'test', 'vscode', 'install-code-server.sh');
  const result = spawnSync('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const entry = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status !== 0 || !fs.existsSync(entry)) throw new Error(`installing the VS Code server failed (${script} exited with ${result.status})`);
  return entry;
}

/** A file of the server's machine, as the workbench addresses it. */
export function remoteUri(port: number, file: string): string {
  return `vscode-remote://127.0.0.1:${port}${file.split(path.sep).map(encodeURIComponent).join('/')}`;
}

export function workbenchUrl(port: number, folder: string, payload: [string, string][]): string {
  const url = new URL(`http://127.0.0.1:${port}/`);
  url.searchParams.set('folder', folder.split(path.sep).join('/'));
  if (payload.length > 0) url.searchParams.set('payload', JSON.stringify(payload));
  return url.toString();
}
