import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createMessageConnection, ResponseError, SocketMessageReader, type MessageConnection } from 'vscode-jsonrpc/node';
import { DAEMON_EXIT, PROTOCOL_VERSION, type DaemonNotifications, type DaemonRequests, type HandshakeResult } from '../protocol';
import { daemonPaths, droverHome, type DaemonPaths } from './daemon-paths';
import { SocketWriter } from './socket-writer';

/** No daemon to talk to: none is running and none could be started, or it went away. */
export class DaemonUnavailable extends Error {}

/** The daemon refused a request; the message says why. */
export class DaemonRefused extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export interface ConnectOptions {
  /** Who is asking, for the daemon's log. */
  client: string;
  env?: NodeJS.ProcessEnv;
  /** The script that starts a daemon (bin/drover-daemon.js) when none is running; absent: never start one. */
  startWith?: string;
}

/** A connection to the user's daemon, speaking the shared protocol (common/protocol). */
export class DaemonClient {
  private constructor(
    private readonly connection: MessageConnection,
    private readonly socket: Socket,
    readonly daemon: HandshakeResult,
  ) {}

  /**
   * Connects to the user's daemon on its local socket, or, when `DROVER_DAEMON=tcp://HOST:PORT`
   * names one that listens on TCP, there with the token in `DROVER_TOKEN`.
   */
  static async connect(options: ConnectOptions): Promise<DaemonClient> {
    const env = options.env ?? process.env;
    const remote = env['DROVER_DAEMON'];
    if (remote) return DaemonClient.handshake(await openTcp(remote), options.client, env['DROVER_TOKEN']);
    const paths = daemonPaths(droverHome(options.env));
    let socket = await openSocket(paths.socket);
    if (!socket) {
      if (!options.startWith) throw new DaemonUnavailable('the Drover daemon is not running (start it with: drover daemon start)');
      const heldBy = await startDaemon(paths, options.env ?? process.env, options.startWith);
      socket = await openSocket(paths.socket);
      if (!socket) {
        throw new DaemonUnavailable(
          heldBy
            ? `${heldBy}, says its lock ${paths.lock}, but nothing answers on ${paths.socket}: if that process is not a Drover daemon (its pid used again after a restart), delete the lock and try again`
            : `the daemon started but its socket ${paths.socket} does not answer; see ${paths.daemonLog}`,
        );
      }
    }
    return DaemonClient.handshake(socket, options.client, undefined);
  }

  private static async handshake(socket: Socket, client: string, token: string | undefined): Promise<DaemonClient> {
    const connection = createMessageConnection(new SocketMessageReader(socket), new SocketWriter(socket));
    connection.listen();
    let daemon: HandshakeResult;
    try {
      // A daemon may close the connection without an answer; the request alone would wait forever.
      let onClose = () => undefined as void;
      const closed = new Promise<never>((_, reject) => {
        onClose = () => reject(new Error('the daemon closed the connection'));
        socket.once('close', onClose);
      });
      try {
        daemon = await Promise.race([
          connection.sendRequest<HandshakeResult>('drover/handshake', { protocolVersion: PROTOCOL_VERSION, client, ...(token !== undefined && { token }) }),
          closed,
        ]);
      } finally {
        socket.off('close', onClose);
      }
    } catch (error) {
      connection.dispose();
      socket.destroy();
      throw new DaemonUnavailable(error instanceof ResponseError ? error.message : `the daemon did not answer the handshake: ${String(error)}`);
    }
    return new DaemonClient(connection, socket, daemon);
  }

  async request<M extends keyof DaemonRequests>(method: M, params: DaemonRequests[M]['params']): Promise<DaemonRequests[M]['result']> {
    try {
      return await this.connection.sendRequest<DaemonRequests[M]['result']>(method, params);
    } catch (error) {
      if (error instanceof ResponseError) throw new DaemonRefused(error.message, error.code);
      throw new DaemonUnavailable(`lost the connection to the daemon: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  on<M extends keyof DaemonNotifications>(method: M, handler: (payload: DaemonNotifications[M]) => void): void {
    this.connection.onNotification(method, handler);
  }

  /** Resolves when the daemon goes away. */
  closed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.closed) resolve();
      this.socket.once('close', () => resolve());
    });
  }

  close(): void {
    this.connection.dispose();
    this.socket.destroy();
  }
}

async function openTcp(address: string): Promise<Socket> {
  const match = /^tcp:\/\/(.+):(\d+)$/.exec(address);
  if (!match) throw new DaemonUnavailable(`DROVER_DAEMON is tcp://HOST:PORT, not '${address}'`);
  const socket = await new Promise<Socket | undefined>((resolve) => {
    const attempt = connect(Number(match[2]), match[1]!.replace(/^\[|\]$/g, ''));
    attempt.once('connect', () => resolve(attempt));
    attempt.once('error', () => resolve(undefined));
  });
  if (!socket) throw new DaemonUnavailable(`no Drover daemon answers at ${address}`);
  return socket;
}

function openSocket(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}

/**
 * Starts the daemon in the background, detached from this process, and waits until it says it
 * is ready. A daemon that finds another already running (a race with another client) is fine:
 * what it said of the other is returned.
 */
async function startDaemon(paths: DaemonPaths, env: NodeJS.ProcessEnv, script: string): Promise<string | undefined> {
  mkdirSync(paths.home, { recursive: true, mode: 0o700 });
  const log = openSync(paths.daemonLog, 'a', 0o600);
  const child = spawn(process.execPath, [script], { detached: true, stdio: ['ignore', 'pipe', log], env });
  closeSync(log);
  const started = await untilReady(child, 15_000);
  if (started.ready || started.exitCode === DAEMON_EXIT.alreadyRunning) {
    child.unref();
    return started.ready ? undefined : (started.said ?? 'a Drover daemon is already running');
  }
  throw new DaemonUnavailable(
    started.said ?? (started.exitCode === null ? `the daemon did not start within 15 s; see ${paths.daemonLog}` : `the daemon could not start (exit ${started.exitCode}); see ${paths.daemonLog}`),
  );
}

/**
 * Waits for a daemon process to print `ready` (it then serves), or to end first, with what it
 * said (`error …`). Stops reading its output either way: a ready daemon never writes there again.
 */
export async function untilReady(child: ChildProcess, timeoutMs: number): Promise<{ ready: true; line: string } | { ready: false; exitCode: number | null; said?: string }> {
  let output = '';
  const result = await new Promise<{ ready: true; line: string } | { ready: false; exitCode: number | null; said?: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ ready: false, exitCode: null }), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /^ready .*$/m.exec(output);
      if (ready) {
        clearTimeout(timer);
        resolve({ ready: true, line: ready[0] });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      const said = /^error (.*)$/m.exec(output)?.[1];
      resolve({ ready: false, exitCode: code, ...(said !== undefined && { said }) });
    });
  });
  child.stdout!.destroy();
  return result;
}
