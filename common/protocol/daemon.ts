/**
 * The protocol between the runner daemon and its clients (the CLI and the extension): JSON-RPC
 * over a local socket. Each method is declared once here, with its parameter and result types,
 * and both sides import it. Bump PROTOCOL_VERSION on any change a client could notice.
 */
import type { ParamValue, ResourceRequest } from '../spec';

export const PROTOCOL_VERSION = 3;

/** `stopped`: a sweep's `early_stop` ended it because it could not win (an ending, not a failure). */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'stopped';
export type AttemptOutcome = 'running' | 'succeeded' | 'failed' | 'timed-out' | 'cancelled' | 'lost' | 'stopped';

export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'skipped', 'stopped'];

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
  /** A running run whose GPUs have all been at ~0% utilization since then, for the daemon's idle time or longer. */
  gpusIdleSince?: number;
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
  /** A notebook run: the executed notebook (rewritten after each cell; copied back from an SSH host when it ends). */
  notebookPath?: string;
}

/** What reproduces a run. */
export interface RunRecord {
  specPath?: string;
  specText: string;
  overrides: Record<string, ParamValue>;
  workdir: string;
  env: Record<string, string>;
  /** The host the submission pinned its runs to (`--host`); a rerun goes there too. */
  targetHost?: string;
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

/** What a SLURM cluster's last poll saw: its partitions, its nodes, and the user's jobs. */
export interface SlurmClusterView {
  /** The login node's SSH alias; absent when sbatch runs on this machine. */
  via?: string;
  /** The folder on the cluster's shared filesystem Drover works in (workdirs, job output). */
  workdirRoot?: string;
  partitions: { name: string; default: boolean; state: string; nodes: string; timeLimit: string }[];
  nodes: { name: string; state: string; partitions: string[]; cpus: number; cpusAllocated: number; memoryMiB: number; memoryAllocatedMiB: number; gres: string; gresUsed: string }[];
  /** The user's jobs on the cluster (Drover's and others), as squeue lists them. */
  jobs: { id: string; name: string; state: string; reason: string; partition: string; nodes: string }[];
}

export interface HostView {
  name: string;
  /** 'ssh': an alias from the user's OpenSSH config, in the pool with `drover hosts add`; 'slurm': a cluster SLURM schedules. */
  kind: 'local' | 'ssh' | 'slurm';
  /** 'connecting' until an SSH host was first reached; 'unreachable' carries the reason in `message`. */
  state: 'up' | 'degraded' | 'connecting' | 'unreachable';
  message?: string;
  os: string;
  cpus: number;
  memoryBytes: number;
  driverVersion?: string;
  gpus: GpuView[];
  updatedAt: number;
  slurm?: SlurmClusterView;
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

/**
 * A Jupyter output as nbformat 4 stores it (stream, display_data, execute_result or error),
 * so a client can show it, or put it into a notebook, as is.
 */
export interface NotebookOutput {
  output_type: 'stream' | 'display_data' | 'execute_result' | 'error' | 'update_display_data';
  name?: 'stdout' | 'stderr';
  text?: string;
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  execution_count?: number | null;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

/** A metric point reported while a cell ran (from a `::metric` line it printed, or a $DROVER_METRICS record). */
export interface CellMetricPoint {
  name: string;
  step: number | null;
  value: number;
}

/**
 * What a notebook run reports, one event per cell start, output and finish, in order. `cell` is
 * the cell's index in the submitted notebook; the cell Drover injects after the `parameters`
 * cell carries that cell's index and `injected: true`. `time` is in ms since the epoch, by the
 * running host's clock.
 */
export type CellEvent =
  | { event: 'begin'; time: number; cells: number[]; kernel: string; host: string; params: Record<string, unknown> }
  | { event: 'start'; time: number; cell: number; injected?: boolean }
  | { event: 'output'; time: number; cell: number; injected?: boolean; output: NotebookOutput; points?: CellMetricPoint[] }
  /** The cell's outputs, all of them, after a clear_output or an updated display (progress bars do both). */
  | { event: 'outputs'; time: number; cell: number; injected?: boolean; outputs: NotebookOutput[] }
  | { event: 'metrics'; time: number; cell: number; injected?: boolean; points: CellMetricPoint[] }
  | { event: 'finish'; time: number; cell: number; injected?: boolean; status: 'ok' | 'error'; executionCount: number | null }
  | { event: 'end'; time: number; status: 'ok' | 'error'; message?: string };

/** Cell events of one attempt from a byte offset of its events file (whole lines only). */
export interface CellEventsChunk {
  jobId: number;
  attempt: number;
  offset: number;
  /** Ask again from here to resume. */
  nextOffset: number;
  events: CellEvent[];
  /** True when the attempt has ended and this chunk reaches the end of its events. */
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

/** One run's metric in brief, as its coarsest tier holds it: what a runs table shows without the points. */
export interface MetricSummary {
  jobId: number;
  name: string;
  /** Points reported. */
  count: number;
  /** The value of the last point reported. */
  last: number;
  min: number;
  max: number;
}

/** Several runs' metrics in one request (a dashboard's charts): `drover/metrics` for each run. */
export interface RunMetricsParams extends Omit<MetricsParams, 'id'> {
  ids: number[];
}

/** One run's answer within `drover/runMetrics`. */
export interface RunMetricSeries {
  jobId: number;
  series: MetricSeries[];
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

/**
 * One GPU's utilization over time, as the host probes sampled it, column by column. A thinned
 * series (more samples in the range than `maxPoints`) cuts the range into equal spans and gives
 * each span's mean: `samples` says how many probes each point stands for.
 */
export interface GpuSampleSeries {
  host: string;
  gpu: number;
  at: number[];
  /** Percent; null where the GPU did not report it (`[N/A]`). */
  utilization: (number | null)[];
  memoryUsedBytes: number[];
  samples: number[];
  /** Samples the daemon holds in the range (more than `at.length` when thinned). */
  total: number;
}

export interface GpuSamplesParams {
  /** Only samples taken in [from, to] (ms since the epoch); default: all that are kept. */
  from?: number;
  to?: number;
  /** Only these hosts (default: all). */
  hosts?: string[];
  /** At most this many points per GPU (2 or more), each the mean of its span. Default: all. */
  maxPoints?: number;
}

export interface GpuSamplesResult {
  /** How often hosts are probed, hence sampled (ms). */
  intervalMs: number;
  /** How long samples are kept (ms). */
  retentionMs: number;
  series: GpuSampleSeries[];
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
  env?: Record<string, string>;  /** Who submits (fair share and GPU quotas count GPU use per user); the daemon's OS user when absent. */
  user?: string;
}

export interface SubmitResult {
  submissionId: number;
  jobs: JobView[];
}

/** A spec registered to run on its `schedule:`. */
export interface ScheduleView {
  /** The spec's name, which names the schedule (adding a spec of the same name replaces it). */
  name: string;
  cron: string;
  catchUp: 'once' | 'none';
  specPath?: string;
  cwd: string;
  host?: string;
  overrides: Record<string, ParamValue>;
  createdAt: number;
  /** The last scheduled time the daemon started a run for (or skipped, with `catch_up: none`). */
  lastTick?: number;
  /** The submission the last fired time started. */
  lastSubmissionId?: number;
  /** When it fires next; absent when the expression never fires again. */
  nextTick?: number;
}

export type Topic = 'jobs' | 'logs' | 'metrics' | 'hosts' | 'cells';

/** Requests: method → parameters and result. */
export interface DaemonRequests {
  'drover/handshake': { params: HandshakeParams; result: HandshakeResult };
  'drover/submit': { params: SubmitParams; result: SubmitResult };
  'drover/jobs': { params: { states?: JobState[]; submissionId?: number; limit?: number }; result: JobView[] };
  'drover/job': { params: { id: number }; result: JobDetail };
  'drover/cancel': { params: { ids: number[] }; result: { cancelled: number[] } };
  'drover/logs': { params: { id: number; attempt?: number; offset?: number; maxBytes?: number }; result: LogChunk };
  'drover/metrics': { params: MetricsParams; result: MetricSeries[] };
  /** Each run's metrics as `drover/metrics` answers them, for several runs at once (a run without points, or unknown, has none). */
  'drover/runMetrics': { params: RunMetricsParams; result: RunMetricSeries[] };
  /** Count, last, lowest and highest value of each metric of these runs (no points); runs without points have none. */
  'drover/metricSummaries': { params: { ids: number[] }; result: MetricSummary[] };
  /** A notebook run's cell events from `offset` (bytes) of an attempt's events (the last attempt by default). */
  'drover/cells': { params: { id: number; attempt?: number; offset?: number }; result: CellEventsChunk };
  'drover/hosts': { params: Record<string, never>; result: HostView[] };
  /** GPU utilization and memory as the host probes sampled them (the GPU timeline). */
  'drover/gpuSamples': { params: GpuSamplesParams; result: GpuSamplesResult };
  /** Adds an alias of the user's OpenSSH config to the pool (it is probed at once). */
  'drover/hosts/add': { params: { alias: string; slurm?: { via?: string; workdirRoot?: string } }; result: HostView };
  /** The sbatch scripts a submission to a SLURM cluster would hand over, without submitting anything ("Preview sbatch"). */
  'drover/sbatchPreview': { params: SubmitParams; result: { scripts: { job: string; script: string }[] } };
  'drover/hosts/remove': { params: { alias: string }; result: { removed: boolean } };
  /** The concrete Host aliases of the SSH config the daemon reads (Includes followed), for a picker. */
  'drover/hosts/aliases': { params: Record<string, never>; result: { aliases: string[] } };
  /** Queued runs with a higher priority are placed first. */
  'drover/setPriority': { params: { ids: number[]; priority: number }; result: { changed: number[] } };
  /** Forgets finished runs: their records, logs and metrics. Running or queued runs are refused. */
  'drover/delete': { params: { ids: number[] }; result: { deleted: number[] } };
  /** Registers a spec with a `schedule:` (replacing one of the same name); it starts runs at those times. */
  'drover/schedules/add': { params: SubmitParams; result: ScheduleView };
  'drover/schedules': { params: Record<string, never>; result: ScheduleView[] };
  /** Stops a schedule; runs it started are left as they are. */
  'drover/schedules/remove': { params: { name: string }; result: { removed: boolean } };
  'drover/subscribe': { params: { topics: Topic[]; jobIds?: number[] }; result: Record<string, never> };
  'drover/shutdown': { params: Record<string, never>; result: Record<string, never> };
}

/** Notifications the daemon sends to subscribed clients. */
export interface DaemonNotifications {
  'drover/event/job': JobView;
  'drover/event/log': LogChunk;
  'drover/event/metric': { jobId: number; attempt: number; name: string; point: MetricPointView };
  'drover/event/host': HostView;
  /** New cell events of a notebook run (topic `cells`). */
  'drover/event/cells': CellEventsChunk;
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
