import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { packageRoot } from '../package-root';
import type { GitState } from '../records/reproduction';
import type { LauncherMessage, LaunchRequest } from './launcher';

export interface LaunchCallbacks {
  started(pid: number, processStart: string | null): void;
  failed(message: string): void;
  /** The wrapper ended (read its status from its folder). */
  exited(): void;
}

/**
 * The daemon's side of the launcher process: sends requests and routes the answers.
 * If the launcher dies, it is started again; attempts it had started are unaffected (they are
 * detached, and the daemon watches them through their pid and status files).
 */
export class LauncherClient {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, LaunchCallbacks>();
  private readonly watching = new Map<number, LaunchCallbacks>();
  private readonly gitReads = new Map<number, (git: GitState | undefined) => void>();
  private nextId = 1;
  private closed = false;

  /** Starts the launcher process now, rather than at the first launch, which would wait for it. */
  start(): void {
    this.process();
  }

  launch(request: Omit<LaunchRequest, 'id'>, callbacks: LaunchCallbacks): void {
    const id = this.nextId++;
    this.pending.set(id, callbacks);
    this.process().stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
  }

  /** The git state of a folder (undefined: not a work tree, or git is missing). */
  gitState(dir: string): Promise<GitState | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.gitReads.set(id, resolve);
      this.process().stdin!.write(`${JSON.stringify({ id, git: dir })}\n`);
    });
  }

  /** Ends the launcher. Launches still unanswered are left as they are: no callback of theirs runs. */
  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
  }

  private process(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'drover-launcher.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => this.receive(JSON.parse(line) as LauncherMessage));
    child.once('exit', () => {
      this.child = undefined;
      // Requests it never answered: the daemon finds those attempts through their pid files.
      // After close the daemon is stopping and writes nothing more: the next one recovers them.
      if (!this.closed) for (const callbacks of this.pending.values()) callbacks.failed('the launcher process ended before it answered');
      this.pending.clear();
      // Its end says nothing of the wrappers it started: they are detached and go on; the daemon
      // now watches them by pid alone.
      this.watching.clear();
      for (const resolve of this.gitReads.values()) resolve(undefined);
      this.gitReads.clear();
      if (!this.closed) this.process();
    });
    return child;
  }

  private receive(message: LauncherMessage): void {
    if ('exited' in message) {
      const callbacks = this.watching.get(message.exited);
      this.watching.delete(message.exited);
      callbacks?.exited();
      return;
    }
    if ('git' in message) {
      this.gitReads.get(message.id)?.(message.git ?? undefined);
      this.gitReads.delete(message.id);
      return;
    }
    const callbacks = this.pending.get(message.id);
    this.pending.delete(message.id);
    if (!callbacks) return;
    if ('error' in message) callbacks.failed(message.error);
    else {
      this.watching.set(message.id, callbacks);
      callbacks.started(message.pid, message.processStart);
    }
  }
}
