import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { DaemonRefused, DaemonUnavailable, type DaemonClient } from '../../common/node/daemon-client';
import { FINAL_STATES, type JobView } from '../../common/protocol';
import { daemonEnv } from './config';
import { DashboardPanels } from './dashboard/dashboard-panels';
import { DaemonConnection, type ConnectionState } from './daemon/connection';
import { startLanguageClient } from './language-client';
import { LogTerminals } from './logs/log-terminals';
import { RUN_DOCUMENT_SCHEME, RunDocuments } from './run-documents';
import { RunStore } from './store/run-store';

/** Runs read at each (re)connection for the Runs view: the newest ones; older ones stay in the daemon. */
const HISTORY_LIMIT = 1000;
const MY_RUNS_KEY = 'drover.myRuns';

type ConnectedSetup = (client: DaemonClient, scope: vscode.Disposable[]) => void | Promise<void>;

/**
 * The extension's one owner of state and lifetimes: the language client, the daemon connection,
 * the store the views render, the runs started from this window, and two cleanup scopes: one for
 * the extension's life and one per daemon connection, torn down and rebuilt on every reconnect
 * so nothing leaks across daemon restarts.
 */
export class DroverContext implements vscode.Disposable {
  readonly store = new RunStore();
  readonly daemon: DaemonConnection;
  readonly output: vscode.LogOutputChannel;
  /** A terminal per run following its output. */
  readonly logs: LogTerminals;
  /** Read-only documents of run records. */
  readonly documents: RunDocuments;
  /** The dashboard panels (experiments, runs, comparisons, the GPU timeline). */
  readonly dashboards: DashboardPanels;
  private readonly lifetime: vscode.Disposable[] = [];
  private connectionScope: vscode.Disposable[] = [];
  private readonly connectedSetups: ConnectedSetup[] = [];
  private languageClient: LanguageClient | undefined;

  constructor(readonly extension: vscode.ExtensionContext) {
    this.output = this.own(vscode.window.createOutputChannel('Drover', { log: true }));
    this.daemon = new DaemonConnection({
      clientName: 'drover-vscode',
      env: daemonEnv,
      daemonScript: extension.asAbsolutePath('bin/drover-daemon.js'),
    });
    this.own(this.daemon);
    this.own(this.store);
    this.own({ dispose: () => this.endConnectionScope() });
    this.daemon.onDidChange((state) => void this.onDaemonState(state));
    this.logs = this.own(new LogTerminals(this));
    this.documents = this.own(new RunDocuments(this));
    this.own(vscode.workspace.registerTextDocumentContentProvider(RUN_DOCUMENT_SCHEME, this.documents));
    this.dashboards = this.own(new DashboardPanels(this));
  }

  /** Keeps something until the extension deactivates. */
  own<T extends vscode.Disposable>(disposable: T): T {
    this.lifetime.push(disposable);
    return disposable;
  }

  /** Runs `setup` on every connection; what it puts in `scope` is disposed when that connection ends. */
  onConnected(setup: ConnectedSetup): void {
    this.connectedSetups.push(setup);
    if (this.daemon.state.kind === 'connected') void this.runSetup(setup, this.daemon.state.client, this.connectionScope);
  }

  /** Starts the language client and the daemon connection, both in the background. */
  start(): void {
    this.languageClient = startLanguageClient(this.extension, this.output);
    this.daemon.start();
  }

  /**
   * The daemon for a command. When none answers: with `start`, start one (submitting is what it
   * is for); otherwise say so and offer to start it. Undefined when there is none to use.
   */
  async requireDaemon(mode: 'start' | 'offer'): Promise<DaemonClient | undefined> {
    try {
      return await this.daemon.connect(false);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (this.daemon.remote) {
        void vscode.window.showErrorMessage(`Drover: the daemon does not answer (${reason}). It runs elsewhere (drover.daemon.socket), so it must be started there.`);
        return undefined;
      }
      if (mode === 'offer') {
        const choice = await vscode.window.showErrorMessage(`Drover: the daemon is not running (${reason}).`, 'Start Daemon');
        if (choice !== 'Start Daemon') return undefined;
      }
      return this.startDaemon();
    }
  }

  /** Starts the bundled daemon (with VS Code's own runtime) unless one answers already. */
  async startDaemon(): Promise<DaemonClient | undefined> {
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Starting the Drover daemon…' }, () => this.daemon.connect(true));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.output.error(`could not start the daemon: ${message}`);
      void vscode.window.showErrorMessage(`Drover: could not start the daemon: ${message}`, 'Show Log').then((choice) => {
        if (choice) this.output.show();
      });
      return undefined;
    }
  }

  /** Reads runs and hosts afresh from the daemon (the Refresh action; also what each connection does). */
  async reload(client: DaemonClient, before?: () => Promise<unknown>): Promise<void> {
    this.store.beginReload();
    try {
      await before?.();
      // Active runs in full, then the recent history; events that arrive between are applied in order.
      this.store.upsertJobs(await client.request('drover/jobs', { states: ['queued', 'running'] }));
      this.store.upsertJobs(await client.request('drover/jobs', { limit: HISTORY_LIMIT }));
      this.store.upsertHosts(await client.request('drover/hosts', {}));
    } finally {
      this.store.endReload();
    }
  }

  /** Runs started from this window (their end is notified), kept across reloads of the window. */
  get myRuns(): Set<number> {
    return new Set(this.extension.workspaceState.get<number[]>(MY_RUNS_KEY, []));
  }

  async addMyRuns(jobs: readonly JobView[]): Promise<void> {
    const runs = this.myRuns;
    for (const job of jobs) runs.add(job.id);
    await this.extension.workspaceState.update(MY_RUNS_KEY, [...runs]);
    // A run may have ended before it was listed as ours: tell the listeners about it again.
    const ended = jobs.map((job) => this.store.job(job.id)).filter((job) => job !== undefined && FINAL_STATES.includes(job.state)) as JobView[];
    if (ended.length) this.store.upsertJobs(ended);
  }

  async forgetMyRuns(ids: readonly number[]): Promise<void> {
    const runs = this.myRuns;
    for (const id of ids) runs.delete(id);
    await this.extension.workspaceState.update(MY_RUNS_KEY, [...runs]);
  }

  /** Says what went wrong in a command, in the user's terms. */
  reportError(error: unknown, doing: string): void {
    if (error instanceof DaemonUnavailable) {
      void vscode.window.showErrorMessage(`Drover: cannot ${doing}: ${error.message}.`, 'Start Daemon').then((choice) => {
        if (choice) void this.startDaemon();
      });
    } else if (error instanceof DaemonRefused) {
      void vscode.window.showErrorMessage(`Drover: cannot ${doing}: ${error.message}`);
    } else {
      const message = error instanceof Error ? error.message : String(error);
      this.output.error(`${doing}: ${error instanceof Error && error.stack ? error.stack : message}`);
      void vscode.window.showErrorMessage(`Drover: cannot ${doing}: ${message}`);
    }
  }

  async dispose(): Promise<void> {
    const client = this.languageClient;
    this.languageClient = undefined;
    for (const disposable of this.lifetime.splice(0).reverse()) {
      try {
        disposable.dispose();
      } catch (error) {
        console.error('drover: dispose failed', error);
      }
    }
    // dispose, not stop: it also unregisters the providers, so nothing asks a stopped client to start again.
    await client?.dispose().catch(() => undefined);
  }

  private async onDaemonState(state: ConnectionState): Promise<void> {
    this.endConnectionScope();
    if (state.kind !== 'connected') {
      this.store.setDaemonState(state.kind, state.kind === 'stopped' ? state.reason : undefined);
      if (state.kind === 'stopped') this.output.info(`daemon: ${state.reason}`);
      return;
    }
    const client = state.client;
    this.output.info(`connected to the daemon (Drover ${client.daemon.daemonVersion}, pid ${client.daemon.pid}, ${client.daemon.home})`);
    const scope: vscode.Disposable[] = [];
    this.connectionScope = scope;
    const live = () => this.daemon.state.kind === 'connected' && this.daemon.state.client === client;
    // Notifications stay with this client; once it is replaced they are ignored, then gone with it.
    client.on('drover/event/job', (job) => live() && this.store.upsertJobs([job]));
    client.on('drover/event/host', (host) => live() && this.store.upsertHosts([host]));
    client.on('drover/event/metric', (point) => live() && this.store.applyMetric(point));
    this.store.setDaemonState('connected');
    try {
      await this.reload(client, () => client.request('drover/subscribe', { topics: ['jobs', 'hosts', 'metrics'] }));
    } catch (error) {
      this.output.warn(`reading the daemon's state failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    for (const setup of this.connectedSetups) if (live()) await this.runSetup(setup, client, scope);
  }

  private async runSetup(setup: ConnectedSetup, client: DaemonClient, scope: vscode.Disposable[]): Promise<void> {
    try {
      await setup(client, scope);
    } catch (error) {
      this.output.warn(`after connecting: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private endConnectionScope(): void {
    for (const disposable of this.connectionScope.splice(0).reverse()) disposable.dispose();
  }
}
