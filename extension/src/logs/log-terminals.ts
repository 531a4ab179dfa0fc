import * as vscode from 'vscode';
import type { DaemonClient } from '../../../common/node/daemon-client';
import { FINAL_STATES, type JobView } from '../../../common/protocol';
import type { DroverContext } from '../context';
import { runLabel } from '../model/format';
import { LogFollower, type LogSource } from './log-follower';

/** A terminal's input and output ends, as VS Code sees them; writes before it opens are kept. */
class LogPty implements vscode.Pseudoterminal {
  private readonly writes = new vscode.EventEmitter<string>();
  private readonly closes = new vscode.EventEmitter<void>();
  readonly onDidWrite = this.writes.event;
  readonly onDidClose = this.closes.event;
  /** Everything written, in order (for the integration tests, through the extension's test hooks). */
  readonly written: string[] = [];
  private opened = false;
  private held: string[] = [];

  open(): void {
    this.opened = true;
    for (const data of this.held.splice(0)) this.writes.fire(data);
  }

  close(): void {
    this.writes.dispose();
    this.closes.dispose();
  }

  write(data: string): void {
    if (data === '') return;
    this.written.push(data);
    if (this.opened) this.writes.fire(data);
    else this.held.push(data);
  }
}

interface LogView {
  terminal: vscode.Terminal;
  pty: LogPty;
  follower: LogFollower;
}

/**
 * One terminal per run, following its output: drover/logs from offset 0, then drover/event/log
 * events, and from the last offset again after a dropped connection or a daemon restart. Events
 * come on a connection of their own, since a subscription's run filter covers all its topics.
 */
export class LogTerminals implements vscode.Disposable {
  private readonly views = new Map<number, LogView>();
  private stream: DaemonClient | undefined;
  private streamOpening: Promise<DaemonClient | undefined> | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: DroverContext) {
    this.disposables.push(
      vscode.window.onDidCloseTerminal((terminal) => {
        for (const [id, view] of this.views) {
          if (view.terminal !== terminal) continue;
          this.views.delete(id);
          void this.resubscribe();
        }
      }),
      ctx.store.onDidChange((change) => {
        const jobs = change.reloaded ? [...this.views.keys()].map((id) => ctx.store.job(id)).filter((job) => job !== undefined) : change.jobs;
        for (const job of jobs) if (FINAL_STATES.includes(job.state)) this.finish(job);
      }),
    );
    ctx.onConnected((_client, scope) => {
      // The old stream died with the old connection: catch every open terminal up from its offset.
      this.dropStream();
      scope.push({ dispose: () => this.dropStream() });
      return this.resume();
    });
  }

  /** Opens (or reveals) the terminal following a run. */
  async show(job: JobView, preserveFocus = false): Promise<void> {
    const open = this.views.get(job.id);
    if (open) {
      open.terminal.show(preserveFocus);
      return;
    }
    const pty = new LogPty();
    const follower = new LogFollower(job.id, (data) => pty.write(data));
    const terminal = vscode.window.createTerminal({ name: `Drover: run ${runLabel(job)}`, pty, iconPath: new vscode.ThemeIcon('output'), isTransient: true });
    this.views.set(job.id, { terminal, pty, follower });
    terminal.show(preserveFocus);
    follower.note(`run ${runLabel(job)}: ${job.command ?? (job.notebook !== undefined ? `notebook ${job.notebook}` : '')}`);
    if (job.state === 'queued') follower.note(`queued: ${job.reason ?? 'waiting for the scheduler'}`);
    await this.follow(follower);
  }

  /** All a run's terminal was given to show (a test hook), or undefined when none is open. */
  output(jobId: number): string | undefined {
    return this.views.get(jobId)?.pty.written.join('');
  }

  dispose(): void {
    this.dropStream();
    for (const view of this.views.values()) view.terminal.dispose();
    this.views.clear();
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }

  private source(): LogSource {
    return {
      logs: (params) => this.ctx.daemon.client().request('drover/logs', params),
      job: (id) => this.ctx.daemon.client().request('drover/job', { id }),
    };
  }

  private async follow(follower: LogFollower): Promise<void> {
    try {
      // Subscribed first, so nothing written between the read and the subscription is lost.
      await this.resubscribe();
      await follower.catchUp(this.source());
      const job = this.ctx.store.job(follower.jobId);
      if (job && FINAL_STATES.includes(job.state)) await follower.finish(job, this.source());
    } catch (error) {
      // The daemon went away: the next connection resumes from the offset.
      this.ctx.output.warn(`logs of run ${follower.jobId}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private finish(job: JobView): void {
    const view = this.views.get(job.id);
    if (!view || view.follower.done) return;
    view.follower.finish(job, this.source()).catch((error: unknown) => this.ctx.output.warn(`logs of run ${job.id}: ${error instanceof Error ? error.message : String(error)}`));
  }

  private async resume(): Promise<void> {
    const followers = [...this.views.values()].map((view) => view.follower).filter((follower) => !follower.done);
    if (!followers.length) return;
    for (const follower of followers) follower.note('reconnected to the daemon');
    await Promise.all(followers.map((follower) => this.follow(follower)));
  }

  /** Points the event stream at the runs with an open terminal (a new subscription replaces the filter). */
  private async resubscribe(): Promise<void> {
    const ids = [...this.views.entries()].filter(([, view]) => !view.follower.done).map(([id]) => id);
    if (!ids.length) {
      this.dropStream();
      return;
    }
    const stream = await this.openStream();
    if (stream) await stream.request('drover/subscribe', { topics: ['logs'], jobIds: ids });
  }

  private openStream(): Promise<DaemonClient | undefined> {
    if (this.stream) return Promise.resolve(this.stream);
    this.streamOpening ??= (async () => {
      try {
        const stream = await this.ctx.daemon.secondary('logs');
        this.stream = stream;
        stream.on('drover/event/log', (chunk) => {
          if (this.stream === stream) this.views.get(chunk.jobId)?.follower.onEvent(chunk, this.source());
        });
        void stream.closed().then(() => {
          if (this.stream !== stream) return;
          this.stream = undefined;
          // Only the stream dropped: read what it would have carried. (Were the daemon gone, the next connection resumes.)
          if (this.ctx.daemon.state.kind === 'connected') void this.resume();
        });
        return stream;
      } finally {
        this.streamOpening = undefined;
      }
    })();
    return this.streamOpening;
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.close();
  }
}
