import { DaemonClient, DaemonUnavailable } from '../../../common/node/daemon-client';
import { Emitter, type Disposable } from '../events';

export type ConnectionState = { kind: 'connecting' } | { kind: 'connected'; client: DaemonClient } | { kind: 'stopped'; reason: string };

export interface ConnectionOptions {
  /** Who is asking, for the daemon's log. */
  clientName: string;
  /** The environment to connect (DROVER_HOME, DROVER_DAEMON) and to start a daemon with. */
  env: () => NodeJS.ProcessEnv;
  /** The script that runs a daemon (bin/drover-daemon.js in the extension's folder). */
  daemonScript: string;
  /** Milliseconds before the n-th reconnection attempt (n from 0). */
  backoff?: (failures: number) => number;
}

/** 0.5 s, 1 s, 2 s, … up to 10 s between attempts to reach a daemon that is not there. */
export function defaultBackoff(failures: number): number {
  return Math.min(500 * 2 ** failures, 10_000);
}

/**
 * The extension's one connection to the daemon. It connects in the background, never blocking
 * activation; when the daemon goes away (stopped, restarted, crashed) it keeps trying with a
 * backoff, so a daemon started from anywhere (a command, the CLI) is picked up. It starts a
 * daemon only when asked to (`connect(true)`); the daemon is detached, so closing VS Code never
 * stops a run.
 */
export class DaemonConnection implements Disposable {
  private current: ConnectionState = { kind: 'connecting' };
  private readonly changed = new Emitter<ConnectionState>();
  readonly onDidChange = this.changed.event;
  private connecting: Promise<DaemonClient> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private disposed = false;

  constructor(private readonly options: ConnectionOptions) {}

  get state(): ConnectionState {
    return this.current;
  }

  /** Whether the daemon is somewhere else (`tcp://…`) and so cannot be started from here. */
  get remote(): boolean {
    return Boolean(this.options.env()['DROVER_DAEMON']);
  }

  /** Starts connecting in the background; the state says how it went. */
  start(): void {
    void this.connect(false).catch(() => undefined);
  }

  /** The connected client, or DaemonUnavailable with the reason there is none. */
  client(): DaemonClient {
    if (this.current.kind === 'connected') return this.current.client;
    throw new DaemonUnavailable(this.current.kind === 'stopped' ? this.current.reason : 'still connecting to the Drover daemon');
  }

  /** Connects now (or returns the live connection), starting the daemon if `start` and none answers. */
  async connect(start: boolean): Promise<DaemonClient> {
    if (this.current.kind === 'connected') return this.current.client;
    if (this.connecting) {
      try {
        return await this.connecting;
      } catch (error) {
        if (!start) throw error;
      }
      if (this.state.kind === 'connected') return this.state.client;
    }
    if (this.disposed) throw new DaemonUnavailable('Drover is shutting down');
    clearTimeout(this.retryTimer);
    const env = this.options.env();
    const startWith = start && !env['DROVER_DAEMON'] ? this.options.daemonScript : undefined;
    const attempt = DaemonClient.connect({ client: this.options.clientName, env, ...(startWith && { startWith }) });
    this.connecting = attempt;
    try {
      const client = await attempt;
      if (this.disposed) {
        client.close();
        throw new DaemonUnavailable('Drover is shutting down');
      }
      this.failures = 0;
      this.set({ kind: 'connected', client });
      void client.closed().then(() => this.lost(client));
      return client;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (!this.disposed) {
        this.set({ kind: 'stopped', reason });
        this.scheduleRetry();
      }
      throw error instanceof DaemonUnavailable ? error : new DaemonUnavailable(reason);
    } finally {
      if (this.connecting === attempt) this.connecting = undefined;
    }
  }

  /** Another connection to the same daemon, for subscriptions that filter by run (the log streams). */
  secondary(name: string): Promise<DaemonClient> {
    return DaemonClient.connect({ client: `${this.options.clientName}-${name}`, env: this.options.env() });
  }

  /** Asks the daemon to stop (runs go on, and are re-adopted by the next daemon) and waits until it has. */
  async stopDaemon(timeoutMs = 15_000): Promise<void> {
    const client = this.client();
    const closed = client.closed();
    // The daemon may close the connection before its answer arrives: its going away is the answer.
    client.request('drover/shutdown', {}).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the daemon (pid ${client.daemon.pid}) did not stop within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the connection and connects again (the daemon's address changed). */
  reconnect(): void {
    const state = this.current;
    this.set({ kind: 'connecting' });
    if (state.kind === 'connected') state.client.close();
    this.failures = 0;
    this.start();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    if (this.current.kind === 'connected') this.current.client.close();
    this.changed.dispose();
  }

  private lost(client: DaemonClient): void {
    if (this.current.kind !== 'connected' || this.current.client !== client || this.disposed) return;
    this.set({ kind: 'stopped', reason: 'the Drover daemon went away (stopped or restarting)' });
    this.failures = 0;
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    const delay = (this.options.backoff ?? defaultBackoff)(this.failures);
    this.failures += 1;
    this.retryTimer = setTimeout(() => this.start(), delay);
    // A pending retry must not keep a test process (or a shutting-down host) alive.
    this.retryTimer.unref?.();
  }

  private set(state: ConnectionState): void {
    const before = this.current;
    this.current = state;
    // Repeated failures for the same reason are one state, not a stream of changes.
    if (before.kind === 'stopped' && state.kind === 'stopped' && before.reason === state.reason) return;
    this.changed.fire(state);
  }
}
