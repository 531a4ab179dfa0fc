/**
 * What this machine offers to the scheduler: CPUs, memory and GPUs, and which GPUs someone
 * else is already using.
 */
import * as os from 'node:os';
import { listLeasesScript, parseLeaseLines, runLeaseScript, type GpuLease } from './gpu-leases';
import { probeNvidiaSmi, type GpuInfo, type GpuProcess } from './nvidia-smi';

/** This machine's name in the pool (and in placement.hosts). */
export const LOCAL_HOST = 'local';

export interface HostInventory {
  name: string;
  /** e.g. "Linux 6.8.0-45-generic". */
  os: string;
  cpus: number;
  memoryBytes: number;
  /** Empty on a CPU-only host, and on a degraded one (we cannot trust what a failing driver says). */
  gpus: GpuInfo[];
  /** Processes holding GPU memory that this runner did not start. */
  foreignProcesses: GpuProcess[];
  /** The live GPU leases on the machine, this daemon's own included (see gpu-leases.ts). */
  gpuLeases?: GpuLease[];
  /** 'degraded': nvidia-smi is installed but failing, so GPU work must not be placed here. */
  state: 'up' | 'degraded';
  message?: string;
  driverVersion?: string;
  /** Date.now() when probed, so a caller can tell a stale inventory. */
  probedAt: number;
}

export async function probeLocalHost(options: { name?: string; nvidiaSmi?: string; env?: NodeJS.ProcessEnv } = {}): Promise<HostInventory> {
  const base = {
    name: options.name ?? LOCAL_HOST,
    os: `${os.type()} ${os.release()}`,
    // availableParallelism honours CPU affinity (taskset, cgroup cpusets), unlike os.cpus().length.
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
  };
  const probe = await probeNvidiaSmi({
    ...(options.nvidiaSmi !== undefined ? { command: options.nvidiaSmi } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
  });
  const probedAt = Date.now();
  switch (probe.status) {
    case 'absent':
      return { ...base, gpus: [], foreignProcesses: [], state: 'up', probedAt };
    case 'degraded':
      return { ...base, gpus: [], foreignProcesses: [], state: 'degraded', message: probe.message, probedAt };
    case 'ok':
      return {
        ...base,
        gpus: probe.gpus,
        // Nothing is ours yet: the daemon does not pass the pids of the runs it started, so every
        // GPU process counts as foreign here. The daemon filters out its own pids (and their
        // children) when it places work; keeping that out of the probe keeps the probe stateless.
        foreignProcesses: probe.processes,
        gpuLeases: await localLeases(options.env ?? process.env),
        state: 'up',
        ...(probe.driverVersion !== undefined ? { driverVersion: probe.driverVersion } : {}),
        probedAt,
      };
  }
}

/** The live GPU leases on this machine (none on Windows, where no other Drover can lease by this protocol). */
async function localLeases(env: NodeJS.ProcessEnv): Promise<GpuLease[]> {
  if (process.platform === 'win32') return [];
  try {
    return parseLeaseLines((await runLeaseScript(listLeasesScript(), env)).stdout);
  } catch {
    return [];
  }
}
