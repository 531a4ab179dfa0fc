/**
 * What SLURM says about jobs and nodes, read from its tools' output in explicit formats, and
 * what that means for Drover's runs. Pure parsing: the commands are run elsewhere.
 *
 * Jobs come from `squeue --json -t all` (finished jobs stay listed for the cluster's
 * MinJobAge), whose shape changed between versions: up to 22.05 states are strings, numbers are
 * plain and `exit_code` is the raw wait status; from 23.02 on states are lists of flags, numbers
 * are `{set, infinite, number}` and `exit_code` is `{status, return_code, signal}`. Jobs that
 * have left squeue are read from `sacct -X -n -P --format=JobID,State,ExitCode,Reason`, when the
 * cluster keeps accounting (22.05's `sacct --json` misreports exit codes). Nodes and partitions
 * come from `sinfo` with `-O`/`-o` formats whose fields are separated by `|`.
 */
import type { AttemptOutcome } from '../../../../common/protocol';

/** One SLURM job, or one task of an array, as the poll sees it. */
export interface SlurmJob {
  /** How SLURM names it: `12`, or `11_3` for task 3 of array 11. */
  id: string;
  /** The array's job id, for a task of an array. */
  arrayJobId?: string;
  arrayTaskId?: number;
  name: string;
  /** SLURM's state word (RUNNING, PENDING, TIMEOUT, …). */
  state: string;
  /** Why it waits (or why it ended): `Resources`, `Dependency`, `None`… */
  reason: string;
  /** The command's exit code, once it ended (null when it ended by a signal or never ran). */
  exitCode: number | null;
  /** The signal that ended it, if one did. */
  signal: number | null;
  partition: string;
  nodes: string;
  user: string;
  /** Epoch seconds, once it started. */
  startTime?: number;
}

/** What a SLURM job means for the Drover run it stands for. */
export type RunStanding =
  | { kind: 'queued'; reason: string }
  | { kind: 'running'; nodes: string }
  | { kind: 'ended'; outcome: Exclude<AttemptOutcome, 'running'>; exitCode: number | null; signal: string | null; description: string; skipped?: boolean };

const RUNNING_STATES = new Set(['RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED', 'STOPPED', 'RESIZING', 'SIGNALING', 'STAGE_OUT']);
const PENDING_STATES = new Set(['PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD', 'SPECIAL_EXIT']);

/** Maps a SLURM state (and reason, exit code) to where the run stands. */
export function standingOf(job: Pick<SlurmJob, 'state' | 'reason' | 'exitCode' | 'signal' | 'nodes'>): RunStanding {
  const state = job.state.toUpperCase();
  if (PENDING_STATES.has(state)) return { kind: 'queued', reason: describePending(job.reason) };
  if (RUNNING_STATES.has(state)) return { kind: 'running', nodes: job.nodes };
  const signal = job.signal ? signalName(job.signal) : null;
  const ended = (outcome: Exclude<AttemptOutcome, 'running'>, description: string, extra: { skipped?: boolean } = {}): RunStanding => ({
    kind: 'ended', outcome, exitCode: job.exitCode, signal, description, ...extra,
  });
  switch (state) {
    case 'COMPLETED':
      return ended('succeeded', 'succeeded');
    case 'FAILED':
      // Refused before it ran (BadConstraints, …): 22.05 reports a status that means nothing then.
      if (job.reason && job.reason !== 'NonZeroExitCode' && job.reason !== 'None' && job.exitCode === null) {
        return { kind: 'ended', outcome: 'failed', exitCode: null, signal: null, description: `SLURM could not run it (${job.reason})` };
      }
      return ended('failed', signal ? `killed by ${signal} (SLURM FAILED)` : `exited with code ${job.exitCode ?? 'unknown'} (SLURM FAILED)`);
    case 'TIMEOUT':
    case 'DEADLINE':
      return ended('timed-out', `reached its SLURM time limit (${state})`);
    case 'CANCELLED':
      // --kill-on-invalid-dep: an upstream run failed, so this one never ran.
      if (job.reason === 'DependencyNeverSatisfied') return ended('cancelled', 'a run it needs did not succeed (SLURM DependencyNeverSatisfied)', { skipped: true });
      return ended('cancelled', 'cancelled (SLURM CANCELLED)');
    case 'NODE_FAIL':
      return ended('lost', 'its node failed (SLURM NODE_FAIL)');
    case 'BOOT_FAIL':
      return ended('lost', 'its node failed to boot (SLURM BOOT_FAIL)');
    case 'PREEMPTED':
      return ended('lost', 'preempted by SLURM for other work (PREEMPTED)');
    case 'OUT_OF_MEMORY':
      return ended('failed', 'ran out of memory (SLURM OUT_OF_MEMORY): ask for more with resources.memory');
    default:
      return ended('failed', `ended in SLURM state ${state}${job.reason && job.reason !== 'None' ? ` (${job.reason})` : ''}`);
  }
}

/** SLURM's pending reason, in words a user can act on, with SLURM's own word kept. */
export function describePending(reason: string): string {
  const words: Record<string, string> = {
    Resources: 'the cluster has no free resources that fit it yet',
    Priority: 'jobs with a higher priority are ahead of it',
    Dependency: 'waiting for the runs it needs',
    JobArrayTaskLimit: "the sweep's max_parallel runs are already running",
    QOSMaxJobsPerUserLimit: 'your QOS allows no more running jobs',
    AssocMaxJobsLimit: 'your account allows no more running jobs',
    ReqNodeNotAvail: 'the nodes it needs are not available',
    PartitionDown: 'its partition is down',
    PartitionTimeLimit: "its time limit is above the partition's",
    BeginTime: 'its start time has not come',
    None: 'being scheduled',
  };
  const said = words[reason];
  return `SLURM: ${said ? `${said} (${reason})` : reason || 'pending'}`;
}

/** Reads `squeue --json` of SLURM 22.05 or of 23.02 and later. */
export function parseSqueueJson(text: string): SlurmJob[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`squeue --json gave no JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const jobs = (data as { jobs?: unknown }).jobs;
  if (!Array.isArray(jobs)) throw new Error('squeue --json gave no "jobs" list');
  const found: SlurmJob[] = [];
  for (const raw of jobs as Record<string, unknown>[]) {
    const jobId = numberOf(raw['job_id']);
    if (jobId === undefined) continue;
    const arrayJobId = numberOf(raw['array_job_id']);
    const arrayTaskId = numberOf(raw['array_task_id']);
    const taskString = typeof raw['array_task_string'] === 'string' ? raw['array_task_string'] : '';
    const states = Array.isArray(raw['job_state']) ? (raw['job_state'] as string[]) : [String(raw['job_state'] ?? '')];
    const exit = exitOf(raw['exit_code']);
    const base = {
      name: String(raw['name'] ?? ''),
      state: states[0] ?? '',
      reason: String(raw['state_reason'] ?? ''),
      ...exit,
      partition: String(raw['partition'] ?? ''),
      nodes: String(raw['nodes'] ?? ''),
      user: String(raw['user_name'] ?? ''),
    };
    const start = numberOf(raw['start_time']);
    // A job cancelled while pending has a start time too (the cancel's): only one given nodes ran.
    const started = start !== undefined && start > 0 && base.nodes !== '' && base.state !== 'PENDING' ? { startTime: start } : {};
    if (arrayJobId && arrayTaskId !== undefined) {
      found.push({ id: `${arrayJobId}_${arrayTaskId}`, arrayJobId: String(arrayJobId), arrayTaskId, ...base, ...started });
    } else if (arrayJobId && taskString) {
      // The array's tasks not yet started, as one record (`2-5%2`): one job each.
      for (const task of expandTaskString(taskString)) found.push({ id: `${arrayJobId}_${task}`, arrayJobId: String(arrayJobId), arrayTaskId: task, ...base });
    } else {
      found.push({ id: String(jobId), ...base, ...started });
    }
  }
  return found;
}

/** Reads `sacct -X -n -P --format=JobID,State,ExitCode,Reason` (the same in every version with `-P`). */
export function parseSacct(text: string): SlurmJob[] {
  const found: SlurmJob[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [id = '', stateField = '', exitField = '', reason = 'None'] = line.split('|');
    // "CANCELLED by 1000" names who cancelled.
    const state = stateField.split(' ')[0]!;
    const [code, signal] = exitField.split(':').map(Number);
    const array = /^(\d+)_(\d+)$/.exec(id);
    const exitKnown = Number.isInteger(code) && !(signal && signal > 0);
    found.push({
      id,
      ...(array && { arrayJobId: array[1]!, arrayTaskId: Number(array[2]) }),
      name: '',
      state,
      reason,
      exitCode: exitKnown ? code! : null,
      signal: signal && signal > 0 ? signal : null,
      partition: '',
      nodes: '',
      user: '',
    });
  }
  return found;
}

export interface SlurmPartition {
  name: string;
  default: boolean;
  /** `up`, `down`, `drain`, `inactive`. */
  state: string;
  nodes: string;
  timeLimit: string;
}

export interface SlurmNode {
  name: string;
  state: string;
  partitions: string[];
  cpus: number;
  cpusAllocated: number;
  memoryMiB: number;
  memoryAllocatedMiB: number;
  /** As SLURM writes it: `gpu:a100:2`. */
  gres: string;
  /** `gpu:a100:1(IDX:0)`. */
  gresUsed: string;
}

/** The sinfo command line whose output parsePartitions reads. */
export const SINFO_PARTITIONS_ARGS = ['-h', '-o', '%P|%a|%D|%N|%l'] as const;
/** The sinfo command line whose output parseNodes reads (one line per node and partition). */
export const SINFO_NODES_ARGS = ['-h', '-N', '-O', 'NodeHost:|,Partition:|,StateLong:|,CPUsState:|,Gres:|,GresUsed:|,Memory:|,AllocMem:|'] as const;

export function parsePartitions(text: string): SlurmPartition[] {
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const [name = '', state = '', , nodes = '', timeLimit = ''] = line.split('|').map((field) => field.trim());
      const isDefault = name.endsWith('*');
      return { name: isDefault ? name.slice(0, -1) : name, default: isDefault, state, nodes, timeLimit };
    });
}

export function parseNodes(text: string): SlurmNode[] {
  const nodes = new Map<string, SlurmNode>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [name = '', partition = '', state = '', cpuStates = '', gres = '', gresUsed = '', memory = '', allocated = ''] = line.split('|').map((field) => field.trim());
    const [cpusAllocated = 0, , , cpus = 0] = cpuStates.split('/').map(Number);
    const node = nodes.get(name) ?? {
      name, state, partitions: [], cpus, cpusAllocated,
      memoryMiB: Number(memory) || 0, memoryAllocatedMiB: Number(allocated) || 0,
      gres: gres === '(null)' ? '' : gres, gresUsed: gresUsed === '(null)' ? '' : gresUsed,
    };
    node.partitions.push(partition.replace(/\*$/, ''));
    nodes.set(name, node);
  }
  return [...nodes.values()];
}

/** `2-5%2` or `1,3,7-8` → the task ids it lists (the `%` throttle is not a task). */
export function expandTaskString(text: string): number[] {
  const tasks: number[] = [];
  for (const part of text.split('%')[0]!.split(',')) {
    const range = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!range) continue;
    const start = Number(range[1]);
    const stop = range[2] === undefined ? start : Number(range[2]);
    const step = range[3] === undefined ? 1 : Number(range[3]);
    for (let task = start; task <= stop; task += step) tasks.push(task);
  }
  return tasks;
}

/** A plain number (22.05), or `{set, infinite, number}` (23.02+); undefined when not set. */
function numberOf(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (value && typeof value === 'object') {
    const field = value as { set?: boolean; number?: number; infinite?: boolean };
    if (field.set === false || field.infinite === true || typeof field.number !== 'number') return undefined;
    return field.number;
  }
  return undefined;
}

/** 22.05: the raw wait status (code << 8 | signal); 23.02+: `{status, return_code, signal}`. */
function exitOf(value: unknown): { exitCode: number | null; signal: number | null } {
  if (typeof value === 'number') {
    const signal = value & 0x7f;
    return signal ? { exitCode: null, signal } : { exitCode: (value >> 8) & 0xff, signal: null };
  }
  if (value && typeof value === 'object') {
    const field = value as { return_code?: unknown; signal?: { id?: unknown } };
    const signal = numberOf(field.signal?.id);
    if (signal) return { exitCode: null, signal };
    return { exitCode: numberOf(field.return_code) ?? null, signal: null };
  }
  return { exitCode: null, signal: null };
}

const SIGNAL_NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

function signalName(signal: number): string {
  return SIGNAL_NAMES[signal] ?? `signal ${signal}`;
}
