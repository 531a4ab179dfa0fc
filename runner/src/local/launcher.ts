/**
 * The launcher: a small process that starts every process the daemon needs (its attempts, and
 * git to record what they ran). Starting a process costs time in proportion to the memory of
 * the process that starts it, and the daemon (SQLite in WebAssembly, run records, clients) is
 * several times larger than this; so the daemon asks, and this process spawns. It reads one JSON
 * request per line on stdin and answers on stdout; it ends when the daemon does (stdin closes),
 * and the attempts, being detached, go on.
 */
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { gitState, type GitState } from '../records/reproduction';
import { launchDetached } from './detached-process';

export interface LaunchRequest {
  id: number;
  command: string;
  cwd: string;
  dir: string;
  /** Added to the launcher's own environment (the daemon's). */
  env: Record<string, string>;
}

/** Reads the git state of a folder. */
export interface GitRequest {
  id: number;
  git: string;
}

export type LauncherMessage =
  | { id: number; pid: number; processStart: string | null }
  | { id: number; error: string }
  | { id: number; git: GitState | null }
  /** The wrapper of attempt `exited` has ended (its status, if any, is in its folder). */
  | { exited: number };

export function runLauncher(): void {
  const inherited: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) inherited[name] = value;
  const send = (message: LauncherMessage) => process.stdout.write(`${JSON.stringify(message)}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let request: LaunchRequest | GitRequest;
    try {
      request = JSON.parse(line) as LaunchRequest | GitRequest;
    } catch {
      return;
    }
    if ('git' in request) {
      const { id } = request;
      void gitState(request.git).then((git) => send({ id, git: git ?? null }));
      return;
    }
    try {
      mkdirSync(request.dir, { recursive: true, mode: 0o700 });
      const launched = launchDetached(request.command, { ...request, env: { ...inherited, ...request.env } });
      launched.child.once('exit', () => send({ exited: request.id }));
      send({ id: request.id, pid: launched.pid, processStart: launched.processStart });
    } catch (error) {
      send({ id: request.id, error: error instanceof Error ? error.message : String(error) });
    }
  });
  lines.once('close', () => process.exit(0));
}
