/**
 * One SSH host of the pool, as the daemon uses it: its connection, what it offers (probed on
 * an interval), and the remote side of the attempts placed on it — workdir sync, setup, detached
 * launch, polling their output and exit status, signals. It holds no job state: the daemon owns
 * that and asks.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { WRAPPER } from '../../local/detached-process';
import { leaseError, mergeLeases, parseLeaseLines, releaseLeasesScript, type GpuLease, type LeaseOwner } from '../gpu-leases';
import type { HostInventory } from '../local-host';
import { GPU_QUERY_ARGS, PROCESS_QUERY_ARGS, probeNvidiaSmi, queryOutcome, type QueryRun } from '../nvidia-smi';
import { SshConnection } from './connection';
import { launchScript, parsePoll, pollScript, probeScript, readFileScript, SCRIPT_RUNNER, setupScript, signalScript, type PollAnswer, type PolledAttempt } from './remote-scripts';
import { resolveSshHost } from './ssh-config';
import { projectId, syncWorkdir, type SyncResult } from './workdir-sync';

export interface SshHostOptions {
  /** Names this daemon's folder on the host, so daemons of several users or homes never share one. */
  daemonId: string;
  /** Where the local hash cache of synced workdirs lives. */
  cacheDir: string;
  sshConfigPath?: string;
}

export type SshHostState = { state: 'connecting' | 'up' | 'unreachable' | 'degraded'; message?: string };

/** Emits 'change' when its state or inventory changes, and 'up' each time the connection is (re-)established. */
export class SshHost extends EventEmitter {
  private readonly connection: SshConnection;
  private inventory: HostInventory | undefined;
  private status: SshHostState = { state: 'connecting' };
  private home: string | undefined;
  /** Syncs and setups under way, shared by the attempts that need the same one. */
  private readonly syncs = new Map<string, Promise<SyncResult>>();
  private readonly setups = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    readonly name: string,
    private readonly options: SshHostOptions,
  ) {
    super();
    this.connection = new SshConnection(resolveSshHost(name, options.sshConfigPath !== undefined ? { configPath: options.sshConfigPath } : {}));
    // It counts as up once probed: the scheduler needs what it offers, not just a connection.
    this.connection.on('up', () => void this.probe().then(() => this.emit('up')));
    this.connection.on('down', (reason: string) => this.setStatus({ state: 'unreachable', message: reason }));
  }

  /** Connects in the background: a host that cannot be reached now is retried with backoff. */
  start(): void {
    this.connection.connect().catch((error: unknown) => {
      this.setStatus({ state: 'unreachable', message: error instanceof Error ? error.message : String(error) });
    });
  }

  close(): void {
    this.closed = true;
    void this.connection.close();
  }

  get state(): SshHostState {
    return this.status;
  }

  /** What it offers, once probed while reachable (a degraded host offers no GPUs, but still its CPUs). */
  get offer(): HostInventory | undefined {
    return this.status.state === 'up' || this.status.state === 'degraded' ? this.inventory : undefined;
  }

  get lastInventory(): HostInventory | undefined {
    return this.inventory;
  }

  /** Where this daemon keeps an attempt's files on the host. */
  attemptDir(jobId: number, attempt: number): string | undefined {
    return this.home && `${this.home}/.drover/runs/${this.options.daemonId}/${jobId}/${attempt}`;
  }

  async probe(): Promise<void> {
    if (this.closed) return;
    let output: Buffer;
    try {
      output = await this.run(probeScript(GPU_QUERY_ARGS, PROCESS_QUERY_ARGS));
    } catch (error) {
      if (this.connection.state === 'up') {
        // What the last probe saw of its GPUs is no longer to be trusted.
        if (this.inventory) this.inventory = { ...this.inventory, gpus: [], foreignProcesses: [], state: 'degraded' };
        this.setStatus({ state: 'degraded', message: `probe failed: ${describe(error)}` });
      }
      return;
    }
    const probe = parseProbe(output);
    const gpuLeases = parseLeaseLines(output.toString('utf8'));
    this.home = probe.facts.get('home');
    // Both queries ran in the probe's one round trip; their answers are read as a local probe's.
    const missing: QueryRun = { kind: 'failed', message: 'nvidia-smi gave no answer' };
    const gpus = await probeNvidiaSmi({ query: async (args) => probe.queries[args === GPU_QUERY_ARGS ? 0 : 1] ?? missing });
    const base = {
      name: this.name,
      os: probe.facts.get('os') ?? 'unknown',
      cpus: Number(probe.facts.get('cpus')) || 1,
      memoryBytes: (Number(probe.facts.get('memkb')) || 0) * 1024,
      probedAt: Date.now(),
    };
    if (gpus.status === 'ok') {
      const processes = gpus.processes.map((process) => ({ ...process, groupId: probe.groups.get(process.pid) }));
      this.inventory = { ...base, gpus: gpus.gpus, foreignProcesses: processes, gpuLeases, state: 'up', ...(gpus.driverVersion !== undefined && { driverVersion: gpus.driverVersion }) };
    } else {
      this.inventory = { ...base, gpus: [], foreignProcesses: [], state: gpus.status === 'absent' ? 'up' : 'degraded', ...(gpus.status === 'degraded' && { message: gpus.message }) };
    }
    this.status = this.inventory.state === 'degraded' ? { state: 'degraded', message: this.inventory.message! } : { state: 'up' };
    // Each probe is news (GPU use changes), not only a change of state.
    this.emit('change');
  }

  /**
   * Makes the workdir's current version ready on the host: synced (only changed files move) and,
   * when the job has one, its setup run once for that version. Returns the version's folder.
   */
  async prepare(workdir: string, setup: string | undefined): Promise<SyncResult> {
    const home = this.requireHome();
    const project = projectId(workdir, this.name, this.options.daemonId);
    let sync = this.syncs.get(workdir);
    if (!sync) {
      sync = (async () => {
        const sftp = await this.connection.sftp();
        return syncWorkdir({
          localDir: workdir,
          remoteRoot: `${home}/.drover/projects/${project}`,
          sftp,
          exec: (command) => this.connection.exec(command),
          cacheFile: `${this.options.cacheDir}/${project}.json`,
        });
      })().finally(() => this.syncs.delete(workdir));
      this.syncs.set(workdir, sync);
    }
    const synced = await sync;
    if (setup !== undefined) {
      const marker = `.drover-setup-${createHash('sha256').update(setup).digest('hex').slice(0, 12)}`;
      const key = `${synced.remoteDir}\n${marker}`;
      let done = this.setups.get(key);
      if (!done) {
        done = this.runSetup(synced.remoteDir, setup, marker).finally(() => this.setups.delete(key));
        this.setups.set(key, done);
      }
      await done;
    }
    return synced;
  }

  private async runSetup(dir: string, setup: string, marker: string): Promise<void> {
    const result = await this.connection.exec(SCRIPT_RUNNER, { stdin: setupScript(dir, setup, marker) });
    if (result.code !== 0) {
      const tail = result.stdout.toString('utf8').trim().split('\n').slice(-5).join('\n');
      throw new Error(`setup failed on ${this.name} (exit ${result.code ?? result.signal}): ${tail || 'no output'}`);
    }
  }

  /**
   * Starts an attempt detached on the host, after taking the leases on its GPUs there (in the same
   * round trip); resolves with its pid (its process group's id), or with the leases that another
   * daemon holds on some of those GPUs, in which case nothing started.
   */
  async launch(options: {
    dir: string;
    cwd: string;
    command: string;
    env: Record<string, string>;
    files?: Record<string, string>;
    leases?: { owner: LeaseOwner; gpus: string[] };
  }): Promise<{ pid: number } | { held: GpuLease[] }> {
    const result = await this.connection.exec(SCRIPT_RUNNER, { stdin: launchScript({ ...options, wrapper: WRAPPER }) });
    const text = result.stdout.toString('utf8');
    if (result.code === 3) {
      const error = leaseError(text);
      if (error) throw new Error(`${this.name}: ${error}`);
      const held = parseLeaseLines(text);
      this.noteLeases(held);
      return { held };
    }
    if (result.code !== 0) throw new Error(`${this.name}: ${result.stderr.toString('utf8').trim() || `exit ${result.code ?? result.signal}`}`);
    const pid = Number(text.trim().split('\n').pop());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${this.name} did not say which process it started`);
    return { pid };
  }

  /** Gives back this daemon's leases on `gpus` (best effort: a lease whose process ended is stale anyway). */
  async releaseLeases(owner: LeaseOwner, gpus: string[]): Promise<void> {
    if (gpus.length > 0) await this.run(releaseLeasesScript(owner, gpus));
  }

  /** Leases found held since the last probe, so placement avoids those GPUs until the next one. */
  private noteLeases(held: GpuLease[]): void {
    if (!this.inventory || held.length === 0) return;
    this.inventory = { ...this.inventory, gpuLeases: mergeLeases(this.inventory.gpuLeases, held) };
    this.emit('change');
  }

  /** New output, metrics and the state of each attempt, in one round trip. */
  async poll(attempts: readonly PolledAttempt[]): Promise<Map<string, PollAnswer>> {
    if (attempts.length === 0) return new Map();
    return parsePoll(await this.run(pollScript(attempts)));
  }

  /** A file's bytes on the host (an attempt's executed notebook); fails when it cannot be read. */
  async readFile(path: string): Promise<Buffer> {
    return this.run(readFileScript(path));
  }

  /** Signals an attempt's process group; resolves with whether any of it is still running. */
  async signal(pid: number, signal: 'TERM' | 'KILL'): Promise<boolean> {
    return (await this.run(signalScript(pid, signal))).toString('utf8').trim() === 'alive';
  }

  get reachable(): boolean {
    return this.connection.state === 'up';
  }

  private async run(script: string): Promise<Buffer> {
    const result = await this.connection.exec(SCRIPT_RUNNER, { stdin: script });
    if (result.code !== 0) throw new Error(`${this.name}: ${result.stderr.toString('utf8').trim() || `exit ${result.code ?? result.signal}`}`);
    return result.stdout;
  }

  private requireHome(): string {
    if (!this.home) throw new Error(`${this.name} has not been probed yet`);
    return this.home;
  }

  private setStatus(status: SshHostState): void {
    if (status.state === this.status.state && status.message === this.status.message) return;
    this.status = status;
    this.emit('change');
  }
}

/** A stable id for one daemon (its home on its machine), for its folders on shared hosts. */
export function daemonIdOf(machine: string, home: string): string {
  return createHash('sha256').update(`${machine}\n${home}`).digest('hex').slice(0, 12);
}

function parseProbe(output: Buffer): { facts: Map<string, string>; queries: QueryRun[]; groups: Map<number, number> } {
  const facts = new Map<string, string>();
  const queries: QueryRun[] = [];
  const groups = new Map<number, number>();
  let at = 0;
  while (at < output.length) {
    const end = output.indexOf(0x0a, at);
    const line = output.subarray(at, end < 0 ? output.length : end).toString('utf8');
    at = end < 0 ? output.length : end + 1;
    const query = /^query\d=(\d+) (\d+)$/.exec(line);
    if (query) {
      const text = output.subarray(at, at + Number(query[2])).toString('utf8');
      at += Number(query[2]);
      queries.push(queryOutcome('nvidia-smi', Number(query[1]), text, ''));
      continue;
    }
    const group = /^pgid=(\d+) (\d+)$/.exec(line);
    if (group) {
      groups.set(Number(group[1]), Number(group[2]));
      continue;
    }
    const fact = /^(\w+)=(.*)$/.exec(line);
    if (fact) facts.set(fact[1]!, fact[2]!);
  }
  return { facts, queries, groups };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
