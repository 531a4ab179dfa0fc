import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createMessageConnection, ResponseError, SocketMessageReader, type MessageConnection } from 'vscode-jsonrpc/node';
import { DaemonErrorCode, PROTOCOL_VERSION, type DaemonNotifications, type DaemonRequests, type JobState, type MetricsParams, type SubmitParams, type Topic } from '../../../common/protocol';
import type { SlurmClusterSettings } from '../hosts/slurm/slurm-cluster';
import { StoreError } from '../store/store';
import { RequestError, type Daemon } from './daemon';
import { SocketWriter } from '../../../common/node/socket-writer';

interface Client {
  connection: MessageConnection;
  topics: Set<Topic>;
  /** Only these jobs' events, when set. */
  jobIds?: Set<number>;
}

/** The clients subscribed to events; the daemon emits through it without knowing who listens. */
export class Subscribers {
  private readonly clients = new Set<Client>();

  add(client: Client): void {
    this.clients.add(client);
  }

  remove(client: Client): void {
    this.clients.delete(client);
  }

  emit<M extends keyof DaemonNotifications>(topic: Topic, method: M, payload: DaemonNotifications[M], jobId?: number): void {
    for (const client of this.clients) {
      if (!client.topics.has(topic)) continue;
      if (jobId !== undefined && client.jobIds && !client.jobIds.has(jobId)) continue;
      void client.connection.sendNotification(method, payload).catch(() => this.clients.delete(client));
    }
  }
}

export interface Served {
  /** The TCP port, when listening on TCP (it may have been chosen by the system). */
  tcpPort: number | undefined;
  /** Stops accepting clients and closes the open connections once their replies are sent. */
  close(): void;
}

type Handlers = { [M in keyof DaemonRequests]: (params: DaemonRequests[M]['params'], client: Client) => DaemonRequests[M]['result'] | Promise<DaemonRequests[M]['result']> };

const JOB_STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'stopped'];
const TOPICS: readonly Topic[] = ['jobs', 'logs', 'metrics', 'hosts', 'cells'];

/**
 * Serves the daemon on a Unix socket (a named pipe on Windows) that only its user can reach.
 * A client must open with a handshake naming its protocol version.
 */
export interface ServeOptions {
  socketPath: string;
  daemonVersion: string;
  onShutdown: () => void;
  /** Also listen on TCP, only when the user asked for it; such clients must show the token. */
  tcp?: { host: string; port: number; token: string };
}

export async function serve(daemon: Daemon, subscribers: Subscribers, options: ServeOptions): Promise<Served> {
  const { daemonVersion, onShutdown } = options;
  const sockets = new Set<Socket>();
  const handlers: Handlers = {
    'drover/handshake': () => ({ protocolVersion: PROTOCOL_VERSION, daemonVersion, pid: process.pid, home: daemon.paths.home }),
    'drover/submit': (params) => daemon.submit(submitParams(params)),
    'drover/jobs': (params) => {
      const states = params?.states;
      if (states !== undefined && (!Array.isArray(states) || states.some((state) => !JOB_STATES.includes(state)))) {
        throw new RequestError('invalid-request', `states must be a list of ${JOB_STATES.join(', ')}`);
      }
      return daemon.jobs({
        ...(states && { states }),
        ...(params?.submissionId !== undefined && { submissionId: integer(params.submissionId, 'submissionId') }),
        ...(params?.limit !== undefined && { limit: integer(params.limit, 'limit') }),
      });
    },
    'drover/job': (params) => daemon.job(integer(params?.id, 'id')),
    'drover/cancel': (params) => ({ cancelled: daemon.cancel(ids(params?.ids)) }),
    'drover/logs': (params) =>
      daemon.logs(
        integer(params?.id, 'id'),
        params.attempt === undefined ? undefined : integer(params.attempt, 'attempt'),
        params.offset === undefined ? 0 : integer(params.offset, 'offset'),
        params.maxBytes === undefined ? undefined : integer(params.maxBytes, 'maxBytes'),
      ),
    'drover/cells': (params) =>
      daemon.cells(
        integer(params?.id, 'id'),
        params.attempt === undefined ? undefined : integer(params.attempt, 'attempt'),
        params.offset === undefined ? 0 : integer(params.offset, 'offset'),
      ),
    'drover/metrics': (params) => daemon.metrics(integer(params?.id, 'id'), metricsOptions(params)),
    'drover/runMetrics': (params) => daemon.runMetrics(ids(params?.ids), metricsOptions(params)),
    'drover/metricSummaries': (params) => daemon.metricSummaries(ids(params?.ids)),
    'drover/hosts': () => daemon.hosts(),
    'drover/gpuSamples': (params) =>
      daemon.gpuSamples({
        ...(params?.from !== undefined && { from: integer(params.from, 'from') }),
        ...(params?.to !== undefined && { to: integer(params.to, 'to') }),
        ...(params?.hosts !== undefined && { hosts: strings(params.hosts, 'hosts') }),
        ...(params?.maxPoints !== undefined && { maxPoints: atLeast(integer(params.maxPoints, 'maxPoints'), 2, 'maxPoints') }),
      }),
    'drover/hosts/add': (params) => daemon.addHost(text(params?.alias, 'alias'), slurmSettings(params?.slurm)),
    'drover/sbatchPreview': (params) => ({ scripts: daemon.sbatchPreview(submitParams(params)) }),
    'drover/hosts/remove': (params) => ({ removed: daemon.removeHost(text(params?.alias, 'alias')) }),
    'drover/hosts/aliases': () => ({ aliases: daemon.sshAliases() }),
    'drover/setPriority': (params) => ({ changed: daemon.setPriority(ids(params?.ids), integer(params?.priority, 'priority')) }),
    'drover/delete': (params) => ({ deleted: daemon.deleteJobs(ids(params?.ids)) }),
    'drover/schedules/add': (params) => {
      if (typeof params?.specText !== 'string' || typeof params.cwd !== 'string') throw new RequestError('invalid-request', 'schedules/add needs specText and cwd (strings)');
      return daemon.addSchedule(params);
    },
    'drover/schedules': () => daemon.listSchedules(),
    'drover/schedules/remove': (params) => ({ removed: daemon.removeSchedule(text(params?.name, 'name')) }),
    'drover/subscribe': (params, client) => {
      if (!Array.isArray(params?.topics) || params.topics.some((topic) => !TOPICS.includes(topic))) {
        throw new RequestError('invalid-request', `topics must be a list of ${TOPICS.join(', ')}`);
      }
      for (const topic of params.topics) client.topics.add(topic);
      if (params.jobIds !== undefined) {
        if (!Array.isArray(params.jobIds)) throw new RequestError('invalid-request', 'jobIds must be a list of run ids');
        client.jobIds = new Set(params.jobIds.map((id) => integer(id, 'jobIds[]')));
      }
      subscribers.add(client);
      return {};
    },
    'drover/shutdown': () => {
      setImmediate(onShutdown);
      return {};
    },
  };

  const accept = (socket: Socket, token: string | undefined) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const connection = createMessageConnection(new SocketMessageReader(socket), new SocketWriter(socket));
    const client: Client = { connection, topics: new Set() };
    let greeted = false;
    for (const method of Object.keys(handlers) as (keyof DaemonRequests)[]) {
      connection.onRequest(method, async (params: unknown) => {
        if (method === 'drover/handshake') {
          const version = (params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
          if (version !== PROTOCOL_VERSION) {
            throw new ResponseError(
              DaemonErrorCode.protocolMismatch,
              `protocol mismatch: the client speaks version ${String(version)}, this daemon (Drover ${daemonVersion}) speaks version ${PROTOCOL_VERSION}; stop the daemon (drover daemon stop) so the new one starts`,
            );
          }
          if (token !== undefined && !sameSecret((params as { token?: unknown }).token, token)) {
            // Refused; the connection is dropped a moment later, once the refusal has gone out.
            setTimeout(() => socket.destroy(), 1_000).unref();
            throw new ResponseError(DaemonErrorCode.unauthorized, 'this daemon takes TCP clients only with its token (the token file in its state folder)');
          }
          greeted = true;
        } else if (!greeted) {
          throw new ResponseError(DaemonErrorCode.handshakeRequired, 'send drover/handshake first');
        }
        try {
          return await (handlers[method] as (params: unknown, client: Client) => unknown)(params, client);
        } catch (error) {
          throw toResponseError(error);
        }
      });
    }
    connection.onClose(() => subscribers.remove(client));
    // A broken stream (garbage instead of JSON-RPC) ends that connection, never the daemon.
    connection.onError(() => socket.destroy());
    socket.on('error', () => connection.dispose());
    connection.listen();
  };
  const servers = [await listen(createServer((socket) => accept(socket, undefined)), options.socketPath)];
  if (options.tcp) servers.push(await listen(createServer((socket) => accept(socket, options.tcp!.token)), options.tcp));
  return {
    tcpPort: options.tcp ? (servers[1]!.address() as AddressInfo).port : undefined,
    close: () => {
      for (const server of servers) server.close();
      // end() sends what is still queued (the answer to a shutdown request) before closing.
      for (const socket of sockets) socket.end();
    },
  };
}

function listen(server: Server, where: string | { host: string; port: number }): Promise<Server> {

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof where !== 'string') {
      server.listen(where.port, where.host, () => resolve(server));
      return;
    }
    // The lock is ours, so a socket file left here is a dead daemon's.
    if (process.platform !== 'win32' && existsSync(where)) unlinkSync(where);
    server.listen(where, () => {
      if (process.platform !== 'win32') chmodSync(where, 0o600);
      resolve(server);
    });
  });
}

/** Compares a presented token with the real one in constant time. */
function sameSecret(presented: unknown, token: string): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
function integer(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new RequestError('invalid-request', `${name} must be a whole number, not ${JSON.stringify(value)}`);
  return value;
}

/** What `drover/metrics` and `drover/runMetrics` take besides the run(s), checked. */
function metricsOptions(params: Omit<MetricsParams, 'id'>): Omit<MetricsParams, 'id'> {
  return {
    ...(params.names !== undefined && { names: strings(params.names, 'names') }),
    ...(params.range !== undefined && { range: metricRange(params.range) }),
    ...(params.maxPoints !== undefined && { maxPoints: atLeast(integer(params.maxPoints, 'maxPoints'), 4, 'maxPoints') }),
  };
}

function ids(value: unknown): number[] {
  if (!Array.isArray(value)) throw new RequestError('invalid-request', 'ids must be a list of run ids');
  return value.map((id) => integer(id, 'ids[]'));
}

function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw new RequestError('invalid-request', `${name} must be a list of strings`);
  return value as string[];
}

function atLeast(value: number, minimum: number, name: string): number {
  if (value < minimum) throw new RequestError('invalid-request', `${name} must be at least ${minimum}, not ${value}`);
  return value;
}

function metricRange(value: unknown): MetricsParams['range'] {
  const range = value as MetricsParams['range'] | null;
  if (typeof range !== 'object' || range === null || (range.axis !== 'step' && range.axis !== 'time') || !Number.isFinite(range.min) || !Number.isFinite(range.max)) {
    throw new RequestError('invalid-request', 'range must be {axis: "step" | "time", min: number, max: number}');
  }
  return { axis: range.axis, min: range.min, max: range.max };
}

function text(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new RequestError('invalid-request', `${name} must be a non-empty string`);
  return value;
}

function toResponseError(error: unknown): ResponseError<void> {
  if (error instanceof ResponseError) return error;
  // The state refused a change (a full disk): the message says what happened and what to do.
  if (error instanceof StoreError) return new ResponseError(DaemonErrorCode.stateUnavailable, error.message);
  if (error instanceof RequestError) {
    const code = error.kind === 'not-found' ? DaemonErrorCode.notFound : error.kind === 'invalid-spec' ? DaemonErrorCode.invalidSpec : DaemonErrorCode.invalidRequest;
    return new ResponseError(code, error.message);
  }
  return new ResponseError(-32603, `internal error: ${error instanceof Error ? error.message : String(error)}`);
}

function submitParams(params: SubmitParams | undefined): SubmitParams {
  if (typeof params?.specText !== 'string' || typeof params.cwd !== 'string') throw new RequestError('invalid-request', 'submit needs specText and cwd (strings)');
  if (params.user !== undefined && (typeof params.user !== 'string' || params.user.trim() === '')) throw new RequestError('invalid-request', 'submit: user, when given, is a user name (a non-empty string)');
  return params;
}

/** A SLURM cluster's settings as `drover/hosts/add` takes them; undefined adds an SSH host. */
function slurmSettings(value: unknown): SlurmClusterSettings | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw new RequestError('invalid-request', 'slurm must be an object ({ via?, workdirRoot? })');
  const { via, workdirRoot } = value as Record<string, unknown>;
  return {
    ...(via !== undefined && { via: text(via, 'slurm.via') }),
    ...(workdirRoot !== undefined && { workdirRoot: text(workdirRoot, 'slurm.workdirRoot') }),
  };
}
