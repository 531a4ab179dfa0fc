// A real single-node SLURM for tests, on this one machine: munged, slurmctld and slurmd started
// by hand from a temporary folder (Debian's slurm-wlm and munge, which CI installs), with two
// fake GPUs that SLURM accepts (character devices cloned from /dev/null). Clients reach it with
// `SLURM_CONF` set to the testbed's slurm.conf (see `env`). Its own munge socket and ports, so it
// never meets a machine's own SLURM. Needs root; `SlurmTestbed.unavailable()` says why it cannot run.
//
// slurmctld and slurmd bind every interface (SLURM 22.05 has no setting to bind one address);
// the node and the controller are named by 127.0.0.1, and nothing here tells anyone else of them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { lockMachine, unlockMachine } from './machine-lock';

const DIR_PREFIX = 'drover-slurm-testbed-';
const LOCK_FILE = '/run/drover-slurm-testbed.lock';
const MUNGE_KEY = '/etc/munge/munge.key';
const TOOL_PATH = [process.env['PATH'] ?? '', '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter(Boolean).join(delimiter);
/** Not SLURM's default ports, so a SLURM the machine runs itself is left alone. */
const CONTROLLER_PORT = 16817;
const NODE_PORT = 16818;

export interface SlurmTestbedOptions {
  /** CPUs the node advertises (it may advertise more than the machine has). Default 8. */
  cpus?: number;
  /** Fake GPUs, of type a100. Default 2. */
  gpus?: number;
  lockTimeoutMs?: number;
}

const live = new Set<SlurmTestbed>();
let exitHookInstalled = false;
let unavailableReason: string | undefined | null = null;

export class SlurmTestbed {
  readonly dir: string;
  readonly confPath: string;
  /** The node's name (this machine's short hostname, which slurmd must match). */
  readonly node: string;
  readonly gpuType = 'a100';
  readonly timings = { lockWaitMs: 0, startMs: 0 };
  private readonly daemons: ChildProcess[] = [];
  private disposed = false;

  private constructor(
    dir: string,
    private readonly lock: ChildProcess,
  ) {
    this.dir = dir;
    this.confPath = join(dir, 'etc', 'slurm.conf');
    this.node = hostname().split('.')[0]!;
  }

  /** Why the testbed cannot run here, or undefined when it can. */
  static unavailable(): string | undefined {
    if (unavailableReason === null) unavailableReason = probeUnavailable();
    return unavailableReason;
  }

  /** Starts munged, slurmctld and slurmd, and waits until the node is idle. One testbed per machine at a time. */
  static async start(options: SlurmTestbedOptions = {}): Promise<SlurmTestbed> {
    const reason = SlurmTestbed.unavailable();
    if (reason) throw new Error(`SLURM testbed unavailable: ${reason}`);
    const asked = Date.now();
    const lock = await lockMachine(LOCK_FILE, 'SLURM testbed', options.lockTimeoutMs ?? 300_000);
    const locked = Date.now();
    // Holding the lock, any testbed folder left is a crashed run's: its daemons go with it.
    removeStale();
    const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    chmodSync(dir, 0o755);
    const testbed = new SlurmTestbed(dir, lock);
    live.add(testbed);
    installExitHook();
    try {
      await testbed.setUp(options);
    } catch (error) {
      // The daemons' own words say why; the folder goes with the testbed.
      const logs = ['slurmctld.log', 'slurmd.log', 'slurmd.out', 'munged.out'].map((name) => `${name}:\n${tail(join(dir, 'log', name))}`).join('\n');
      await testbed.dispose();
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs}`, { cause: error });
    }
    testbed.timings.lockWaitMs = locked - asked;
    testbed.timings.startMs = Date.now() - locked;
    return testbed;
  }

  /** The environment SLURM's client commands need to find this cluster. */
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SLURM_CONF: this.confPath, PATH: TOOL_PATH };
  }

  /**
   * A slurm.conf for clients in another network namespace, which reach the controller at
   * `address` (this machine's side of their link). Written beside the testbed's own.
   */
  clientConf(address: string): string {
    const text = readFileSync(this.confPath, 'utf8').replace(/^SlurmctldHost=.*$/m, `SlurmctldHost=${this.node}(${address})`);
    const path = join(this.dir, 'etc', `slurm-${address}.conf`);
    writeFileSync(path, text);
    chmodSync(path, 0o644);
    return path;
  }

  /** Runs a SLURM client command against the testbed; throws with its stderr when it fails. */
  command(tool: string, args: string[]): string {
    const result = spawnSync(tool, args, { env: this.env, encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${result.status ?? result.signal}): ${(result.stderr || result.error?.message || '').trim()}`);
    return result.stdout;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    live.delete(this);
    // Jobs first, so slurmd's steps end with it; then the daemons, the node last to stop taking work.
    if (this.daemons.length === 3) spawnSync('scancel', ['--full', '--quiet', '--user=root'], { env: this.env, timeout: 10_000 });
    for (const child of [...this.daemons].reverse()) await stop(child);
    unlockMachine(this.lock);
    if (!process.env["DROVER_KEEP_SLURM_TESTBED"]) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills the daemons at once (for an exiting process, which cannot wait). */
  killNow(): void {
    for (const child of this.daemons) if (child.pid !== undefined) signalPid(child.pid, 'SIGKILL');
  }

  private track(child: ChildProcess): void {
    this.daemons.push(child);
    writeFileSync(join(this.dir, 'pids'), this.daemons.map((daemon) => `${daemon.pid}\n`).join(''));
  }

  private async setUp(options: SlurmTestbedOptions): Promise<void> {
    const etc = join(this.dir, 'etc');
    const devices = join(this.dir, 'dev');
    const state = join(this.dir, 'state');
    const spool = join(this.dir, 'spool');
    const munge = join(this.dir, 'munge');
    const logs = join(this.dir, 'log');
    for (const folder of [etc, devices, state, spool, munge, logs]) mkdirSync(folder, { recursive: true, mode: 0o755 });
    const gpus = options.gpus ?? 2;
    for (let index = 0; index < gpus; index++) {
      // A character device: SLURM refuses GPUs without a device file, and a regular file is not one.
      const made = spawnSync('mknod', [join(devices, `nvidia${index}`), 'c', '1', '3'], { encoding: 'utf8' });
      if (made.status !== 0) throw new Error(`mknod failed: ${made.stderr.trim()}`);
    }
    const mungeUser = spawnSync('id', ['-u', 'munge'], { encoding: 'utf8' });
    const mungeGroup = spawnSync('id', ['-g', 'munge'], { encoding: 'utf8' });
    chownSync(munge, Number(mungeUser.stdout), Number(mungeGroup.stdout));
    const socket = join(munge, 'munge.socket');
    writeFileSync(join(etc, 'slurm.conf'), slurmConf({ dir: this.dir, node: this.node, socket, cpus: options.cpus ?? 8, gpus, gpuType: this.gpuType }));
    writeFileSync(join(etc, 'gres.conf'), gpus > 0 ? `NodeName=${this.node} Name=gpu Type=${this.gpuType} File=${devices}/nvidia[0-${gpus - 1}]\n` : '');
    writeFileSync(join(etc, 'cgroup.conf'), 'CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainDevices=no\n');

    this.track(
      spawnDaemon(
        'munged',
        ['--foreground', '--force', `--socket=${socket}`, `--key-file=${MUNGE_KEY}`, `--pid-file=${join(munge, 'munged.pid')}`, `--log-file=${join(munge, 'munged.log')}`, `--seed-file=${join(munge, 'munged.seed')}`],
        { uid: Number(mungeUser.stdout), gid: Number(mungeGroup.stdout), log: join(logs, 'munged.out') },
      ),
    );
    await waitUntil('munged to listen', () => existsSync(socket), 10_000);
    const env = this.env;
    this.track(spawnDaemon('slurmctld', ['-D', '-i', '-f', this.confPath], { env, log: join(logs, 'slurmctld.out') }));
    await waitUntil('slurmctld to answer', () => spawnSync('scontrol', ['ping'], { env, encoding: 'utf8' }).stdout.includes('is UP'), 20_000);
    this.track(spawnDaemon('slurmd', ['-D', '-f', this.confPath], { env, log: join(logs, 'slurmd.out') }));
    await waitUntil(
      `node ${this.node} to be idle (see ${logs})`,
      // One line per partition the node is in.
      () => /^(idle\n)+$/.test(spawnSync('sinfo', ['-h', '-N', '-n', this.node, '-o', '%T'], { env, encoding: 'utf8' }).stdout),
      30_000,
    );
  }
}

function slurmConf(options: { dir: string; node: string; socket: string; cpus: number; gpus: number; gpuType: string }): string {
  const { dir, node } = options;
  return `${[
    'ClusterName=drovertest',
    `SlurmctldHost=${node}(127.0.0.1)`,
    `SlurmctldPort=${CONTROLLER_PORT}`,
    `SlurmdPort=${NODE_PORT}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${options.socket}`,
    `StateSaveLocation=${dir}/state`,
    `SlurmdSpoolDir=${dir}/spool`,
    `SlurmctldPidFile=${dir}/state/slurmctld.pid`,
    `SlurmdPidFile=${dir}/spool/slurmd.pid`,
    `SlurmctldLogFile=${dir}/log/slurmctld.log`,
    `SlurmdLogFile=${dir}/log/slurmd.log`,
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core_Memory',
    'GresTypes=gpu',
    'MpiDefault=none',
    'ReturnToService=2',
    'SlurmdParameters=config_overrides',
    'SchedulerType=sched/backfill',
    'SchedulerParameters=batch_sched_delay=0,sched_min_interval=0',
    // Without it each job takes the whole node's memory, and jobs run one at a time.
    'DefMemPerCPU=100',
    // Finished jobs stay visible to squeue/scontrol this long (there is no slurmdbd for sacct).
    'MinJobAge=600',
    'KillWait=2',
    'InactiveLimit=0',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${options.cpus} RealMemory=8000${options.gpus > 0 ? ` Gres=gpu:${options.gpuType}:${options.gpus}` : ''} State=UNKNOWN`,
    `PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP`,
    `PartitionName=long Nodes=${node} MaxTime=2-00:00:00 State=UP`,
  ].join('\n')}\n`;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const testbed of live) testbed.killNow();
  });
}

/** Stops the daemons of testbeds whose process died before disposing them, and removes their folders. */
function removeStale(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let pids: number[] = [];
    try {
      pids = readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      // never started a daemon
    }
    for (const pid of pids) if (commandOf(pid)?.includes(dir)) signalPid(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A process's command line, if it still runs. */
function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n');
  } catch {
    return '(none)';
  }
}

function spawnDaemon(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; log: string }): ChildProcess {
  const fd = openSync(options.log, 'a');
  try {
    const child = spawn(command, args, {
      env: options.env ?? { ...process.env, PATH: TOOL_PATH },
      stdio: ['ignore', fd, fd],
      detached: true,
      ...(options.uid !== undefined && { uid: options.uid, gid: options.gid }),
    });
    child.on('error', () => undefined);
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalPid(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && signalPid(child.pid, 'SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}


function probeUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'needs root (slurmd launches jobs as their users; mknod for the fake GPUs)';
  const tools = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'sinfo', 'scancel', 'flock', 'mknod'];
  const missing = tools.filter((tool) => !which(tool));
  if (missing.length) return `missing tools: ${missing.join(', ')} (install the Debian packages slurm-wlm and munge)`;
  if (!existsSync(MUNGE_KEY)) return `no ${MUNGE_KEY} (the munge package creates it)`;
  const short = hostname().split('.')[0]!;
  const resolved = spawnSync('getent', ['hosts', short], { encoding: 'utf8' });
  if (resolved.status !== 0) return `this machine's hostname ${short} does not resolve (add it to /etc/hosts)`;
  return undefined;
}

function which(tool: string): string | undefined {
  for (const dir of TOOL_PATH.split(delimiter)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // next
    }
  }
  return undefined;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`SLURM testbed: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
