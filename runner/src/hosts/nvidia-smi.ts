/**
 * GPU discovery through `nvidia-smi`.
 *
 * We read nvidia-smi's CSV query mode rather than NVML bindings: it needs no native module
 * (see the README's "no native modules" choice), it is present wherever the driver is, and the
 * same two commands can be run on a remote host by the SSH backend, which is why the argument
 * lists are exported. Nothing here throws: a host without GPUs and a host whose driver is broken
 * are states the scheduler has to show, not exceptions.
 */
import { execFile, type ChildProcess, type ExecFileException } from 'node:child_process';
import type { GpuInfo } from '../../../common/protocol';

export type { GpuInfo };

export interface GpuProcess {
  pid: number;
  gpuUuid: string;
  usedMemoryBytes: number;
  /** Its process group, where the prober could tell (a remote host's probe asks `ps`). */
  groupId?: number | undefined;
}

export type GpuProbe =
  | { status: 'ok'; gpus: GpuInfo[]; processes: GpuProcess[]; driverVersion?: string }
  /** nvidia-smi is not on PATH: a CPU-only host, not an error. */
  | { status: 'absent' }
  /** nvidia-smi is there but failing: broken driver, timeout, unparsable output. */
  | { status: 'degraded'; message: string };

/** The exact argument lists used, exported so the SSH backend can run the same queries remotely. */
export const GPU_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,driver_version',
  '--format=csv,noheader,nounits',
]);
export const PROCESS_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-compute-apps=pid,gpu_uuid,used_memory',
  '--format=csv,noheader,nounits',
]);

const DEFAULT_TIMEOUT_MS = 10_000;
const MIB = 1024 * 1024;
/** Far above any real answer (a line per GPU or process); only a runaway output reaches it. */
const MAX_OUTPUT_BYTES = 4 * MIB;

/** Fields after `name` in GPU_QUERY_ARGS; counted from the end so a comma in a name cannot shift them. */
const GPU_TRAILING_FIELDS = 4;

/**
 * Probes the GPUs. `query` runs nvidia-smi with the given arguments: here by default, or on a
 * remote host (the SSH backend passes its own).
 */
export async function probeNvidiaSmi(
  options: { command?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; query?: (args: readonly string[]) => Promise<QueryRun> } = {},
): Promise<GpuProbe> {
  const command = options.command ?? 'nvidia-smi';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const query = options.query ?? ((args: readonly string[]) => runQuery(command, args, options.env, timeoutMs));
  // In parallel: each call pays the driver's start-up cost (up to seconds without persistence
  // mode), and the timeout then bounds the whole probe rather than each query in turn.
  const [gpuRun, processRun] = await Promise.all([query(GPU_QUERY_ARGS), query(PROCESS_QUERY_ARGS)]);
  if (gpuRun.kind === 'absent') return { status: 'absent' };
  if (gpuRun.kind === 'failed') return { status: 'degraded', message: gpuRun.message };

  const rows = parseGpuRows(gpuRun.stdout);
  if (rows.bad.length > 0) {
    return { status: 'degraded', message: `cannot parse nvidia-smi's GPU list: ${JSON.stringify(rows.bad[0])}` };
  }
  // Without the process list we cannot tell a free GPU from one another user holds, so on a
  // shared box it is safer to stop placing work than to guess.
  if (processRun.kind !== 'ok') {
    return { status: 'degraded', message: processRun.kind === 'failed' ? processRun.message : `${command} disappeared while probing` };
  }
  const driverVersion = rows.gpus[0]?.driverVersion;
  return {
    status: 'ok',
    gpus: rows.gpus.map((row) => row.gpu),
    processes: parseComputeApps(processRun.stdout),
    ...(driverVersion !== undefined ? { driverVersion } : {}),
  };
}

/** Parses the output of GPU_QUERY_ARGS; lines it cannot read are left out. */
export function parseGpuQuery(csv: string): GpuInfo[] {
  return parseGpuRows(csv).gpus.map((row) => row.gpu);
}

/**
 * Parses the output of PROCESS_QUERY_ARGS. Lines that are not process rows are skipped rather
 * than reported: a header, or the "No running processes found" that some drivers print.
 */
export function parseComputeApps(csv: string): GpuProcess[] {
  const processes: GpuProcess[] = [];
  for (const line of nonBlankLines(csv)) {
    const fields = line.split(',').map((field) => field.trim());
    if (fields.length !== 3) continue;
    const [pidText, gpuUuid, memoryText] = fields as [string, string, string];
    const pid = parseInteger(pidText);
    // A process's memory is [N/A] inside containers and on WSL: the process still holds the GPU.
    const usedMemoryBytes = memoryBytes(memoryText);
    if (pid === undefined || pid <= 0 || !isUuid(gpuUuid) || usedMemoryBytes === undefined) continue;
    processes.push({ pid, gpuUuid, usedMemoryBytes });
  }
  return processes;
}

interface GpuRow {
  gpu: GpuInfo;
  driverVersion?: string;
}

/** The GPU rows, and the lines that were not rows, so the probe can tell garbage from "no GPUs". */
function parseGpuRows(csv: string): { gpus: GpuRow[]; bad: string[] } {
  const gpus: GpuRow[] = [];
  const bad: string[] = [];
  for (const line of nonBlankLines(csv)) {
    const row = parseGpuLine(line);
    if (row) gpus.push(row);
    else bad.push(line);
  }
  return { gpus, bad };
}

function parseGpuLine(line: string): GpuRow | undefined {
  const fields = line.split(',').map((field) => field.trim());
  if (fields.length < 3 + GPU_TRAILING_FIELDS) return undefined;
  const index = parseInteger(fields[0]!);
  const uuid = fields[1]!;
  const name = fields.slice(2, -GPU_TRAILING_FIELDS).join(', ');
  const [totalText, usedText, utilizationText, driverText] = fields.slice(-GPU_TRAILING_FIELDS) as [string, string, string, string];
  const memoryTotalBytes = memoryBytes(totalText);
  const memoryUsedBytes = memoryBytes(usedText);
  const utilization = percent(utilizationText);
  if (index === undefined || index < 0 || !isUuid(uuid) || name === '') return undefined;
  if (memoryTotalBytes === undefined || memoryUsedBytes === undefined || utilization === undefined) return undefined;
  const gpu: GpuInfo = { index, uuid, name, memoryTotalBytes, memoryUsedBytes, utilizationPercent: utilization };
  return isNotAvailable(driverText) || driverText === '' ? { gpu } : { gpu, driverVersion: driverText };
}

function nonBlankLines(text: string): string[] {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
}

/** `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Insufficient Permissions]`...: nvidia-smi's "no value". */
function isNotAvailable(cell: string): boolean {
  return /^\[.*\]$/.test(cell);
}

/** A uuid column holds an identifier, never a number or an N/A; this is what catches a shifted row. */
function isUuid(cell: string): boolean {
  return /^(GPU|MIG)-[0-9A-Za-z-]+$/.test(cell);
}

function parseInteger(cell: string): number | undefined {
  return /^\d+$/.test(cell) ? Number(cell) : undefined;
}

/** MiB, with or without the unit (`nounits` or not), in bytes; N/A counts as 0. */
function memoryBytes(cell: string): number | undefined {
  if (isNotAvailable(cell)) return 0;
  const match = /^(\d+(?:\.\d+)?)(?:\s*MiB)?$/.exec(cell);
  return match ? Math.round(Number(match[1]) * MIB) : undefined;
}

/** A percentage with or without ` %`; null for N/A, undefined for garbage. */
function percent(cell: string): number | null | undefined {
  if (isNotAvailable(cell)) return null;
  const match = /^(\d+(?:\.\d+)?)(?:\s*%)?$/.exec(cell);
  return match ? Number(match[1]) : undefined;
}

/** How one nvidia-smi query went. */
export type QueryRun = { kind: 'ok'; stdout: string } | { kind: 'absent' } | { kind: 'failed'; message: string };

/** Reads a query's outcome from its exit code and output, where it ran through a shell (127: not found). */
export function queryOutcome(command: string, code: number | null, stdout: string, stderr: string): QueryRun {
  if (code === 0) return { kind: 'ok', stdout };
  if (code === 127) return { kind: 'absent' };
  const explanation = nonBlankLines(stdout)[0] ?? nonBlankLines(stderr)[0];
  return { kind: 'failed', message: explanation ?? `${command} exited with code ${code ?? 'unknown'}` };
}

/**
 * Runs one query without a shell. The timeout is our own timer rather than execFile's option:
 * execFile only reports once the child's pipes close, and an nvidia-smi stuck in the kernel on a
 * wedged driver may never die, so the probe must be able to give up on it without waiting.
 */
function runQuery(command: string, args: readonly string[], env: NodeJS.ProcessEnv | undefined, timeoutMs: number): Promise<QueryRun> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    let settled = false;
    const settle = (run: QueryRun) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(run);
    };
    try {
      // execFile's callback always comes asynchronously, so `timer` below is set by then.
      child = execFile(command, [...args], { env: env ?? process.env, encoding: 'utf8', maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true }, (error, stdout, stderr) =>
        settle(error ? describeFailure(command, error, stdout, stderr) : { kind: 'ok', stdout }),
      );
    } catch (error) {
      // execFile throws synchronously only for arguments it rejects outright (a NUL in a path).
      resolve({ kind: 'failed', message: `cannot run ${command}: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
    const timer = setTimeout(() => {
      settle({ kind: 'failed', message: `${command} did not answer within ${formatDuration(timeoutMs)}` });
      child.kill('SIGKILL');
      // A process in uninterruptible sleep outlives SIGKILL; let go of it so that it cannot
      // keep a CLI run (or a daemon shutting down) waiting on its pipes.
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
    }, timeoutMs);
  });
}

function describeFailure(command: string, error: ExecFileException, stdout: string, stderr: string): QueryRun {
  if (error.code === 'ENOENT') {
    // Not on PATH means a CPU-only host. An explicit path that does not exist is a
    // misconfiguration, though, and should not quietly turn a GPU box into a CPU one.
    return command.includes('/') ? { kind: 'failed', message: `${command} not found` } : { kind: 'absent' };
  }
  // nvidia-smi explains itself on stdout (the driver-failure message, exit 9), tools wrapping it on stderr.
  if (typeof error.code === 'number') return queryOutcome(command, error.code, stdout, stderr);
  if (error.signal) return { kind: 'failed', message: `${command} was killed by ${error.signal}` };
  if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') return { kind: 'failed', message: `${command} printed more than ${MAX_OUTPUT_BYTES / MIB} MiB` };
  return { kind: 'failed', message: `cannot run ${command}: ${error.message}` };
}

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
