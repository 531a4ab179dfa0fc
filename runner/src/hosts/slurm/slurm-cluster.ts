/**
 * One SLURM cluster of the pool, as the daemon uses it: where its commands run (this machine
 * when sbatch is on PATH, or a login node over SSH), its shared folder for workdirs and job
 * output, and the commands themselves — sbatch, scancel, and one poll that reads the queue
 * (squeue), the partitions and nodes (sinfo) and the new output of the daemon's tasks in one
 * round trip. SLURM schedules; this holds no job state: the daemon owns that and asks.
 *
 * Every command is a script on the standard input of `sh -s` (as for SSH hosts), with every
 * value quoted by `shellWord`, so the login shell parses nothing else.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { shellWord } from '../../../../common/spec';
import type { SlurmClusterView } from '../../../../common/protocol';
import { SshConnection } from '../ssh/connection';
import { parsePoll, pollScript, SCRIPT_RUNNER, type PollAnswer, type PolledAttempt } from '../ssh/remote-scripts';
import { resolveSshHost } from '../ssh/ssh-config';
import { projectId, syncWorkdir } from '../ssh/workdir-sync';
import { sbatchScript, taskDirs, type SbatchJob } from './sbatch-script';
import { parseNodes, parsePartitions, parseSacct, parseSqueueJson, SINFO_NODES_ARGS, SINFO_PARTITIONS_ARGS, type SlurmJob } from './slurm-state';

export interface SlurmClusterSettings {
  /** The login node's SSH alias; none: this machine submits. */
  via?: string;
  /** The shared folder Drover uses on the cluster (default `~/.drover` there). */
  workdirRoot?: string;
}

export interface SlurmClusterOptions {
  /** Names this daemon's folder on the cluster, so daemons of several users or homes never share one. */
  daemonId: string;
  cacheDir: string;
  sshConfigPath?: string;
  /** The environment of local SLURM commands (SLURM_CONF, PATH). */
  env: NodeJS.ProcessEnv;
}

export type SlurmClusterState = { state: 'connecting' | 'up' | 'unreachable'; message?: string };

export interface SlurmPoll {
  jobs: SlurmJob[];
  /** Jobs squeue no longer lists, from sacct; undefined where the cluster keeps no accounting. */
  accounted: SlurmJob[] | undefined;
  /** The user's jobs, and (when asked for) partitions and nodes. */
  view: Omit<SlurmClusterView, 'via' | 'workdirRoot' | 'partitions' | 'nodes'> & Partial<Pick<SlurmClusterView, 'partitions' | 'nodes'>>;
  logs: Map<string, PollAnswer>;
}

/** Emits 'change' when its state changes. */
export class SlurmCluster extends EventEmitter {
  private readonly connection: SshConnection | undefined;
  private status: SlurmClusterState = { state: 'connecting' };
  private home: string | undefined;
  private closed = false;
  /** The last polls' view, for the clusters tree. */
  lastView: Omit<SlurmClusterView, 'via' | 'workdirRoot'> | undefined;
  /** When partitions and nodes were last read. */
  inventoryAt = 0;

  constructor(
    readonly name: string,
    readonly settings: SlurmClusterSettings,
    private readonly options: SlurmClusterOptions,
  ) {
    super();
    if (settings.via !== undefined) {
      this.connection = new SshConnection(resolveSshHost(settings.via, options.sshConfigPath !== undefined ? { configPath: options.sshConfigPath } : {}));
      this.connection.on('up', () => void this.probe());
      this.connection.on('down', (reason: string) => this.setStatus({ state: 'unreachable', message: `${settings.via}: ${reason}` }));
    }
  }

  start(): void {
    if (this.connection) {
      this.connection.connect().catch((error: unknown) => this.setStatus({ state: 'unreachable', message: describe(error) }));
    } else {
      void this.probe();
    }
  }

  close(): void {
    this.closed = true;
    void this.connection?.close();
  }

  get state(): SlurmClusterState {
    return this.status;
  }

  get reachable(): boolean {
    return this.status.state === 'up';
  }

  /** Where this daemon keeps its work on the cluster. */
  get root(): string | undefined {
    const base = this.settings.workdirRoot ?? (this.home && `${this.home}/.drover`);
    return base && `${base}/slurm/${this.options.daemonId}`;
  }

  /** The output folder of one job of a submission. */
  outputDir(submissionId: number, job: string): string | undefined {
    const root = this.root;
    return root && `${root}/runs/${submissionId}-${job.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  }

  /** Checks that SLURM answers where its commands run. */
  async probe(): Promise<void> {
    if (this.closed) return;
    try {
      const output = (await this.run(['printf "home=%s\\n" "$HOME"', 'command -v sbatch >/dev/null || { echo "sbatch is not on PATH" >&2; exit 3; }', 'sinfo --version'].join('\n'))).toString('utf8');
      this.home = /^home=(.*)$/m.exec(output)?.[1];
      this.setStatus({ state: 'up' });
    } catch (error) {
      this.setStatus({ state: 'unreachable', message: describe(error) });
    }
  }

  /**
   * The workdir as the cluster's jobs see it: this machine's own folder when SLURM runs here,
   * else synced (changed files only) below the shared root, as for SSH hosts.
   */
  async prepareWorkdir(workdir: string): Promise<string> {
    if (!this.connection) return workdir;
    const root = this.requireRoot();
    const project = projectId(workdir, this.name);
    const connection = this.connection;
    const synced = await syncWorkdir({
      localDir: workdir,
      remoteRoot: `${root}/projects/${project}`,
      sftp: await connection.sftp(),
      exec: (command) => connection.exec(command),
      cacheFile: `${this.options.cacheDir}/${project}.json`,
    });
    return synced.remoteDir;
  }

  /** Submits a job; resolves with its SLURM job id. Its task folders are made first (SLURM does not make them). */
  async submit(job: SbatchJob): Promise<string> {
    const script = sbatchScript(job);
    const output = await this.run([
      'set -e',
      `mkdir -p ${taskDirs(job).map(shellWord).join(' ')}`,
      `printf '%s' ${shellWord(script)} > ${shellWord(`${job.outputDir}/job.sbatch`)}`,
      `sbatch --parsable < ${shellWord(`${job.outputDir}/job.sbatch`)}`,
    ].join('\n'));
    // `--parsable` prints `id` or `id;cluster`.
    const id = output.toString('utf8').trim().split('\n').pop()?.split(';')[0] ?? '';
    if (!/^\d+$/.test(id)) throw new Error(`sbatch on ${this.name} did not say which job it made: ${JSON.stringify(output.toString('utf8').trim())}`);
    return id;
  }

  async cancel(ids: string[]): Promise<void> {
    if (ids.length) await this.run(`scancel ${ids.map(shellWord).join(' ')}`);
  }

  /**
   * One round trip: the user's jobs (squeue), partitions and nodes (sinfo), sacct for `missing`
   * jobs squeue forgot, and the new output of `tasks`. Each answer is framed by its exit code
   * and byte count, so output of any shape comes back whole.
   */
  async poll(tasks: readonly PolledAttempt[], missing: readonly string[], inventory: boolean): Promise<SlurmPoll> {
    const framed = (key: string, command: string) => [
      `out=$(${command} 2>&1); code=$?`,
      `printf '${key}=%s %s\\n' "$code" "$(printf '%s' "$out" | wc -c | tr -d ' ')"`,
      `printf '%s' "$out"`,
    ];
    const script = [
      ...framed('squeue', 'squeue --json -t all --me'),
      // Partitions and nodes change slowly, and each sinfo is one more RPC to slurmctld.
      ...(inventory ? framed('partitions', `sinfo ${SINFO_PARTITIONS_ARGS.map(shellWord).join(' ')}`) : []),
      ...(inventory ? framed('nodes', `sinfo ${SINFO_NODES_ARGS.map(shellWord).join(' ')}`) : []),
      ...(missing.length ? framed('sacct', `sacct -X -n -P --format=JobID,State,ExitCode,Reason -j ${missing.map(shellWord).join(',')}`) : []),
      // Logs are read after the states: a task seen ended has all its output written.
      'echo "@@logs"',
      pollScript(tasks),
    ].join('\n');
    const output = await this.run(script);
    const sections = new Map<string, { code: number; text: string }>();
    let at = 0;
    for (;;) {
      const end = output.indexOf(0x0a, at);
      if (end < 0) break;
      const header = /^(\w+)=(\d+) (\d+)$/.exec(output.subarray(at, end).toString('utf8'));
      if (!header) break;
      at = end + 1;
      const length = Number(header[3]);
      sections.set(header[1]!, { code: Number(header[2]), text: output.subarray(at, at + length).toString('utf8') });
      at += length;
    }
    const logsAt = output.indexOf('@@logs\n', at);
    const squeue = sections.get('squeue');
    if (!squeue || squeue.code !== 0) throw new Error(`squeue on ${this.name} failed: ${squeue?.text.trim() || 'no answer'}`);
    const jobs = parseSqueueJson(squeue.text);
    const sacct = sections.get('sacct');
    const ok = (section: { code: number; text: string } | undefined) => (section && section.code === 0 ? section.text : '');
    return {
      jobs,
      accounted: sacct && sacct.code === 0 ? parseSacct(sacct.text) : undefined,
      view: {
        ...(inventory && { partitions: parsePartitions(ok(sections.get('partitions'))), nodes: parseNodes(ok(sections.get('nodes'))) }),
        jobs: jobs.map((job) => ({ id: job.id, name: job.name, state: job.state, reason: job.reason, partition: job.partition, nodes: job.nodes })),
      },
      logs: logsAt < 0 ? new Map() : parsePoll(output.subarray(logsAt + '@@logs\n'.length)),
    };
  }

  /** Runs a script: on this machine with the daemon's environment, or on the login node. */
  private async run(script: string): Promise<Buffer> {
    if (this.connection) {
      const result = await this.connection.exec(SCRIPT_RUNNER, { stdin: script });
      if (result.code !== 0) throw new Error(`${this.name}: ${result.stderr.toString('utf8').trim() || `exit ${result.code ?? result.signal}`}`);
      return result.stdout;
    }
    return new Promise((resolve, reject) => {
      const child = spawn('sh', ['-s'], { env: this.options.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.once('error', reject);
      child.once('close', (code) => {
        if (code === 0) resolve(Buffer.concat(stdout));
        else reject(new Error(`${this.name}: ${Buffer.concat(stderr).toString('utf8').trim() || `exit ${code}`}`));
      });
      child.stdin.end(script);
    });
  }

  private requireRoot(): string {
    const root = this.root;
    if (!root) throw new Error(`${this.name} has not been reached yet`);
    return root;
  }

  private setStatus(status: SlurmClusterState): void {
    if (status.state === this.status.state && status.message === this.status.message) return;
    this.status = status;
    this.emit('change');
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
