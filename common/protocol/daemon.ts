/**
 * The protocol between the runner daemon and its clients (the CLI and the extension): JSON-RPC
 * over a local socket. Each method is declared once here, with its parameter and result types,
 * and both sides import it. Bump PROTOCOL_VERSION on any change a client could notice.
 */
import type { ParamValue, ResourceRequest } from '../spec';

export const PROTOCOL_VERSION = 1;

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';
export type AttemptOutcome = 'running' | 'succeeded' | 'failed' | 'timed-out' | 'cancelled' | 'lost';

export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'skipped'];

/** One job as clients see it: what was asked and where it stands. */
export interface JobView {
  id: number;
  submissionId: number;
  /** The spec's name; with `key`, what the user calls the run (`lr-sweep[3]`). */
  specName: string;
  key: string;
  state: JobState;
  priority: number;
  resources: ResourceRequest;
  command?: string;
  notebook?: string;
  params: Record<string, ParamValue>;
  /** Why the job is pending, failed or was skipped, in words. */
  reason?: string;
  attempts: number;
  host?: string;
  gpus?: number[];
  exitCode?: number;
  signal?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

export interface AttemptView {
  number: number;
  outcome: AttemptOutcome;
  host: string;
  gpus: number[];
  pid?: number;
  exitCode?: number;
  signal?: string;
  startedAt: number;
  endedAt?: number;
  logPath: string;
  logBytes: number;
  /** On an SSH host: the tree hash of the workdir version it ran in. */
  workdirVersion?: string;
}

/** What reproduces a run. */
export interface RunRecord {
  specPath?: string;
  specText: string;
  overrides: Record<string, ParamValue>;
  workdir: string;
  env: Record<string, string>;
  git?: { commit: string; dirty: boolean; diffHash?: string; branch?: string };
  host?: { name: string; os: string; gpuModels: string[]; driverVersion?: string };
}

export interface JobDetail extends JobView {
  attemptList: AttemptView[];
  record: RunRecord;
  needs: number[];
}

/** A GPU as its host reports it. */
export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  /** null where the GPU does not report it (`[N/A]`, e.g. MIG mode or some consumer cards). */
  utilizationPercent: number | null;
}

export interface GpuView extends GpuInfo {
  /** The job holding it, if Drover placed one there. */
  jobId?: number;
  /** Processes Drover did not start (another user's work). */
  foreignPids: number[];
}

export interface HostView {
  name: string;
  /** 'ssh': an alias from the user's OpenSSH config, in the pool with `drover hosts add`. */
  kind: 'local' | 'ssh';
  /** 'connecting' until an SSH host was first reached; 'unreachable' carries the reason in `message`. */
  state: 'up' | 'degraded' | 'connecting' | 'unreachable';
  message?: string;
  os: string;
  cpus: number;
  memoryBytes: number;
  driverVersion?: string;
  gpus: GpuView[];
  updatedAt: number;
}

export interface LogChunk {
  jobId: number;
  attempt: number;
  /** Byte offset of `data` in the attempt's log: ask again from `offset + bytes` to resume. */
  offset: number;
  data: string;
  /** Bytes of `data` as UTF-8 (a chunk never splits a character). */
  bytes: number;
  /** True when the attempt has ended and this chunk reaches the end of its log. */
  complete: boolean;
}

export interface MetricPointView {
  step: number | null;
  value: number;
  at: number;
}

export interface MetricSeries {
  name: string;
  points: MetricPointView[];
  /** Points the daemon holds in the asked range: more than `points` when it downsampled them. */
  total: number;
}

/** What a metric's points are ordered by: the step each reported, or when it was recorded. */
export type MetricAxis = 'step' | 'time';

export interface MetricsParams {
  id: number;
  /** Only these metrics (default: all). */
  names?: string[];
  /** Only points with x in [min, max] on this axis (default: all), e.g. a chart's visible range. */
  range?: { axis: MetricAxis; min: number; max: number };
  /**
   * At most this many points per series (4 or more), picked by LTTB (Largest-Triangle-Three-Buckets) on the
   * range's axis (step by default): first, last, lowest and highest always kept. Default: all.
   */
  maxPoints?: number;
}

export interface HandshakeParams {
  protocolVersion: number;
  client: string;
  /** Required over TCP (the contents of the daemon's token file); the local socket needs none. */
  token?: string;
}

export interface HandshakeResult {
  protocolVersion: number;
  daemonVersion: string;
  pid: number;
  home: string;
}

export interface SubmitParams {
  specText: string;
  /** Where the spec came from; relative workdirs resolve against its folder (or `cwd`). */
  specPath?: string;
  cwd: string;
  /** Places every run on this host alias only (`--host`), overriding the spec's placement. */
  host?: string;
  overrides?: Record<string, ParamValue>;
  /** The client's environment, for the record; secrets are redacted before they are stored. */
  env?: Record<string, string>;
}

export interface SubmitResult {
  submissionId: number;
  jobs: JobView[];
}

export type Topic = 'jobs' | 'logs' | 'metrics' | 'hosts';

/** Requests: method → parameters and result. */
export interface DaemonRequests {
  'drover/handshake': { params: HandshakeParams; result: HandshakeResult };
  'drover/submit': { params: SubmitParams; result: SubmitResult };
  'drover/jobs': { params: { states?: JobState[]; submissionId?: number; limit?: number }; result: JobView[] };
  'drover/job': { params: { id: number }; result: JobDetail };
  'drover/cancel': { params: { ids: number[] }; result: { cancelled: number[] } };
  'drover/logs': { params: { id: number; attempt?: number; offset?: number; maxBytes?: number }; result: LogChunk };
  'drover/metrics': { params: MetricsParams; result: MetricSeries[] };
  'drover/hosts': { params: Record<string, never>; result: HostView[] };
  /** Adds an alias of the user's OpenSSH config to the pool (it is probed at once). */
  'drover/hosts/add': { params: { alias: string }; result: HostView };
  'drover/hosts/remove': { params: { alias: string }; result: { removed: boolean } };
  /** The concrete Host aliases of the SSH config the daemon reads (Includes followed), for a picker. */
  'drover/hosts/aliases': { params: Record<string, never>; result: { aliases: string[] } };
  /** Queued runs with a higher priority are placed first. */
  'drover/setPriority': { params: { ids: number[]; priority: number }; result: { changed: number[] } };
  /** Forgets finished runs: their records, logs and metrics. Running or queued runs are refused. */
  'drover/delete': { params: { ids: number[] }; result: { deleted: number[] } };
  'drover/subscribe': { params: { topics: Topic[]; jobIds?: number[] }; result: Record<string, never> };
  'drover/shutdown': { params: Record<string, never>; result: Record<string, never> };
}

/** Notifications the daemon sends to subscribed clients. */
export interface DaemonNotifications {
  'drover/event/job': JobView;
  'drover/event/log': LogChunk;
  'drover/event/metric': { jobId: number; attempt: number; name: string; point: MetricPointView };
  'drover/event/host': HostView;
}

export type DaemonMethod = keyof DaemonRequests;

/** Exit codes of a daemon that cannot start, read by the client that started it. */
export const DAEMON_EXIT = { alreadyRunning: 75, badState: 78 } as const;

/** JSON-RPC error codes the daemon answers with (application range). */
export const DaemonErrorCode = {
  protocolMismatch: -32001,
  unauthorized: -32003,
  handshakeRequired: -32002,
  notFound: -32004,
  invalidSpec: -32005,
  /** The daemon's state could not record the change (e.g. a full disk); nothing was lost. */
  stateUnavailable: -32006,
  invalidRequest: -32600,
} as const;
