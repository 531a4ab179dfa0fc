import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import {
  FINAL_STATES,
  type AttemptOutcome,
  type DaemonNotifications,
  type HostView,
  type JobDetail,
  type JobState,
  type JobView,
  type LogChunk,
  type MetricSeries,
  type MetricsParams,
  type RunRecord,
  type SubmitParams,
  type SubmitResult,
  type Topic,
} from '../../../common/protocol';
import { analyzeSpec, expandSpec, ExpansionError, formatDiagnostic, hasErrors } from '../../../common/spec';
import { LOCAL_HOST, probeLocalHost, type HostInventory } from '../hosts/local-host';
import { listSshAliases } from '../hosts/ssh/ssh-config';
import { daemonIdOf, SshHost } from '../hosts/ssh/ssh-host';
import { REMOTE_READ_LIMIT, type PolledAttempt } from '../hosts/ssh/remote-scripts';
import { LauncherClient } from '../local/launcher-client';
import { attemptFiles, groupAlive, isAlive, processGroupOf, processStartTime, readExitStatus, readWrapperPid, signalGroup } from '../local/detached-process';
import { MetricLineReader, parseMetricJson, type MetricPoint } from '../metrics/metric-lines';
import { readMetrics } from '../metrics/lttb';
import { redactEnv } from '../records/reproduction';
import { schedule, DEFAULT_CPUS, type Allocation, type HostCapacity } from '../scheduler/placement';
import { Store, TransactionLost, type AttemptRow, type JobRow, type MetricRow } from '../store/store';
import type { DaemonPaths } from '../../../common/node/daemon-paths';

/** A problem with what a client asked, reported back to it as is. */
export class RequestError extends Error {
  constructor(
    readonly kind: 'not-found' | 'invalid-spec' | 'invalid-request',
    message: string,
  ) {
    super(message);
  }
}

export interface DaemonSettings {
  /** The environment for GPU discovery (tests put an nvidia-smi fixture on its PATH). */
  env: NodeJS.ProcessEnv;
  /** Wait before the first retry of a failed attempt; it doubles for each further one. */
  retryBackoffMs: number;
  /** Between SIGTERM and SIGKILL when a run is cancelled or times out. */
  killGraceMs: number;
  /** How often running attempts' logs are read. */
  pollMs: number;
  /** How often the hosts are probed (GPUs, foreign processes). */
  hostProbeMs: number;
  /** The OpenSSH client config SSH hosts are read from (default ~/.ssh/config). */
  sshConfigPath?: string;
}

/** A process the daemon started (or re-adopted after a restart) and watches. */
interface LiveAttempt {
  jobId: number;
  number: number;
  dir: string;
  pid: number | null;
  processStart: string | null;
  /** A launch request is on its way to the launcher. */
  launching?: boolean;
  /** The launcher saw the wrapper end. */
  exited?: boolean;
  allocation: Allocation & { group: string };
  /** Why the daemon is stopping it, if it is. */
  stopping?: 'cancelled' | 'timed-out';
  timeoutTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  logOffset: number;
  metricsOffset: number;
  /** Metrics in the attempt's output and in its $DROVER_METRICS file, as they are read. */
  outputMetrics: MetricLineReader;
  fileMetrics: MetricLineReader;
  /** Points read and not yet written down. */
  points: MetricPoint[];
  /** On an SSH host: where it runs there, and what the last poll saw. */
  remote?: RemoteAttempt;
}

/**
 * The host side of an attempt on an SSH host. Its output and exit status are copied into the
 * attempt's local folder as polls bring them, so logs, metrics and the end are read as for a
 * local attempt, and what was fetched survives the host going away.
 */
interface RemoteAttempt {
  host: SshHost;
  /** Known once the host has been reached (it is under the remote user's home). */
  dir: string | undefined;
  /** False once a poll found neither the process nor an exit status. */
  alive: boolean;
  /** Signals to deliver on the next poll (the link may be down when they are decided). */
  pendingSignal?: 'TERM' | 'KILL';
}

/** What one scheduling pass decided: attempts to start, and jobs whose state or reason changed. */
interface SchedulePass {
  starting: { job: JobRow; allocation: Allocation; number: number; dir: string }[];
  changed: number[];
  /** Something changed that may let more start (a skip): run another pass. */
  again: boolean;
}

/** How an attempt ended, as far as the daemon could tell. */
interface AttemptEnd {
  exitCode: number | null;
  signal: string | null;
  /** It never started, and why. */
  failure?: string;
  /** It vanished without a status while nobody was stopping it. */
  lost?: boolean;
}

/** Sends a notification to the clients subscribed to `topic` (and to `jobId`, when given). */
export type Emit = <M extends keyof DaemonNotifications>(topic: Topic, method: M, payload: DaemonNotifications[M], jobId?: number) => void;

const LOG_READ_LIMIT = 1 << 20;
/** After a failed commit, how long to wait before trying again what it lost. */
const RECOVERY_DELAY_MS = 1_000;

/**
 * The one owner of Drover's state: it takes submissions, schedules them on the local host,
 * runs and watches their processes, and answers clients. Everything it knows is in the store;
 * what it holds in memory (live processes, timers) is rebuilt from the store on start.
 */
export class Daemon {
  private readonly live = new Map<number, LiveAttempt>();
  /**
   * The queued jobs, as in the store: each pass looks at all of them, so they are kept here
   * rather than read back each time. Only the daemon changes jobs, and every change to a queued
   * job goes through this class, which keeps the two in step (and reloads this after a failed
   * commit).
   */
  private readonly queue = new Map<number, JobRow>();
  /** Why each queued job waits, from the last pass: derived state, so never stored. */
  private readonly waitingReasons = new Map<number, string>();
  private readonly launcher = new LauncherClient();
  /** Git states being read, by workdir, with the submissions waiting for each. */
  private readonly gitReads = new Map<string, number[]>();
  private host: HostInventory | undefined;
  /** The SSH hosts of the pool, by alias. The pool itself is the store's list of hosts. */
  private readonly sshHosts = new Map<string, SshHost>();
  /** Hosts with a poll on its way, so polls of one host never overlap. */
  private readonly polling = new Set<string>();
  /** Writes waiting for the next group commit. */
  private batch: { work: (now: number) => void; done: (error?: Error) => void }[] | undefined;
  private scheduleWanted = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly paths: DaemonPaths,
    private readonly store: Store,
    private readonly settings: DaemonSettings,
    private readonly emit: Emit,
  ) {}

  async start(): Promise<void> {
    mkdirSync(this.paths.runs, { recursive: true, mode: 0o700 });
    await this.probeHost();
    for (const host of this.store.hosts()) if (host.kind === 'ssh') this.openSshHost(host.name);
    this.readopt(true);
    this.reloadQueue();
    this.pollTimer = setInterval(() => this.pollLive(), this.settings.pollMs);
    this.probeTimer = setInterval(() => {
      void this.probeHost().then(() => this.requestSchedule());
      for (const host of this.sshHosts.values()) if (host.reachable) void host.probe().then(() => this.requestSchedule());
    }, this.settings.hostProbeMs);
    this.requestSchedule();
  }

  /** Stops watching; running processes go on and are re-adopted by the next daemon. */
  stop(): void {
    // What was asked before the stop is written (and answered) first.
    if (this.batch) this.commit();
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.probeTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.recoveryTimer);
    for (const attempt of this.live.values()) {
      clearTimeout(attempt.timeoutTimer);
      clearTimeout(attempt.killTimer);
    }
    this.launcher.close();
    for (const host of this.sshHosts.values()) host.close();
    this.store.close();
  }

  // Requests

  submit(params: SubmitParams): Promise<SubmitResult> {
    const analysis = analyzeSpec(params.specText, params.specPath);
    if (hasErrors(analysis.diagnostics) || !analysis.model) {
      const file = params.specPath ?? 'spec';
      const lines = analysis.diagnostics
        .filter((diagnostic) => diagnostic.severity === 'error')
        .map((diagnostic) => formatDiagnostic(file, analysis, diagnostic, { severity: false }));
      throw new RequestError('invalid-spec', lines.join('\n') || `${file}: not a spec`);
    }
    let plans;
    try {
      plans = expandSpec(analysis.model, { overrides: params.overrides ?? {} });
    } catch (error) {
      if (error instanceof ExpansionError) throw new RequestError('invalid-spec', error.message);
      throw error;
    }
    const base = params.specPath ? dirname(resolve(params.cwd, params.specPath)) : params.cwd;
    for (const plan of plans) {
      plan.workdir = resolve(base, plan.workdir);
      if (params.host !== undefined) plan.hosts = [params.host];
    }
    if (params.host !== undefined && params.host !== LOCAL_HOST && !this.sshHosts.has(params.host)) {
      throw new RequestError('invalid-request', `${params.host} is not in the pool: add it with \`drover hosts add ${params.host}\``);
    }
    const workdir = plans[0]?.workdir ?? base;
    const record: RunRecord = {
      ...(params.specPath !== undefined && { specPath: resolve(params.cwd, params.specPath) }),
      specText: params.specText,
      overrides: params.overrides ?? {},
      workdir,
      env: redactEnv(params.env ?? {}),
      ...(this.host && {
        host: { name: this.host.name, os: this.host.os, gpuModels: this.host.gpus.map((gpu) => gpu.name), ...(this.host.driverVersion && { driverVersion: this.host.driverVersion }) },
      }),
    };
    return new Promise((resolve, reject) => {
      let jobIds: number[] = [];
      let submissionId = 0;
      this.commitSoon(
        (now) => {
          submissionId = this.store.insertSubmission(analysis.model!.name, record, now);
          const idByKey = new Map<string, number>();
          for (const plan of plans) idByKey.set(plan.key, this.store.insertJob({ submissionId, plan, state: 'queued', needs: [] }, now));
          for (const plan of plans) {
            if (plan.needs.length > 0) this.store.setNeeds(idByKey.get(plan.key)!, plan.needs.map((key) => idByKey.get(key)!));
          }
          this.store.addEvent(null, 'submitted', `${analysis.model!.name}: ${plans.length} run${plans.length === 1 ? '' : 's'}`, now);
          jobIds = [...idByKey.values()];
          for (const id of jobIds) this.queue.set(id, this.store.job(id)!);
        },
        (error) => {
          if (error) return reject(error);
          const jobs = jobIds.map((id) => this.view(this.store.job(id)!));
          for (const job of jobs) if (job.state === 'queued') this.emit('jobs', 'drover/event/job', job, job.id);
          this.recordGitState(submissionId, workdir);
          resolve({ submissionId, jobs });
        },
      );
    });
  }

  /**
   * Adds the workdir's git state to a submission's record. It is read off the request's path, so
   * a burst of submissions waits for nothing and shares one read per workdir.
   */
  private recordGitState(submissionId: number, workdir: string): void {
    const waiting = this.gitReads.get(workdir);
    if (waiting) {
      waiting.push(submissionId);
      return;
    }
    const submissions = [submissionId];
    this.gitReads.set(workdir, submissions);
    void this.launcher.gitState(workdir).then((git) => {
      this.gitReads.delete(workdir);
      if (!git) return;
      this.commitSoon(
        () => {
          for (const id of submissions) this.store.updateSubmissionRecord(id, { ...this.store.submissionRecord(id)!, git });
        },
        undefined,
        { schedule: false },
      );
    });
  }

  jobs(filter: { states?: JobState[]; submissionId?: number; limit?: number }): JobView[] {
    return this.store.jobs(filter).map((row) => this.view(row));
  }

  job(id: number): JobDetail {
    const row = this.requireJob(id);
    const attempts = this.store.attempts(id);
    return {
      ...this.view(row, attempts),
      needs: row.needs,
      record: this.store.submissionRecord(row.submissionId)!,
      attemptList: attempts.map((attempt) => {
        // A running attempt's pid is in memory before it is first written down.
        const pid = attempt.pid ?? (attempt.outcome === 'running' ? this.live.get(id)?.pid : null) ?? null;
        return {
          number: attempt.number,
          outcome: attempt.outcome,
          host: attempt.host,
          gpus: attempt.gpus,
          ...(pid !== null && { pid }),
          ...(attempt.exitCode !== null && { exitCode: attempt.exitCode }),
          ...(attempt.signal !== null && { signal: attempt.signal }),
          startedAt: attempt.startedAt,
          ...(attempt.endedAt !== null && { endedAt: attempt.endedAt }),
          ...(attempt.workdirVersion !== null && { workdirVersion: attempt.workdirVersion }),
          logPath: attemptFiles(attempt.dir).log,
          logBytes: fileSize(attemptFiles(attempt.dir).log),
        };
      }),
    };
  }

  cancel(ids: number[]): number[] {
    const cancelled: number[] = [];
    const now = Date.now();
    for (const id of ids) {
      const row = this.requireJob(id);
      if (FINAL_STATES.includes(row.state)) continue;
      if (row.state === 'queued') {
        this.store.transaction(() => {
          this.store.updateJob(id, { state: 'cancelled', reason: 'cancelled before it started', endedAt: now });
          this.store.addEvent(id, 'cancelled', 'cancelled before it started', now);
        });
        this.forget(id);
        this.emitJob(id);
      } else {
        this.store.updateJob(id, { cancelRequested: true });
        const attempt = this.live.get(id);
        if (attempt) this.stopAttempt(attempt, 'cancelled');
      }
      cancelled.push(id);
    }
    if (cancelled.length) this.requestSchedule();
    return cancelled;
  }

  /** Changes the priority of queued runs; others keep theirs (it only orders the queue). */
  setPriority(ids: number[], priority: number): number[] {
    const changed: number[] = [];
    for (const id of ids) {
      const row = this.requireJob(id);
      if (row.state !== 'queued' || row.priority === priority) continue;
      this.store.updateJob(id, { priority });
      this.queue.set(id, this.store.job(id)!);
      changed.push(id);
    }
    for (const id of changed) this.emitJob(id);
    if (changed.length) this.requestSchedule();
    return changed;
  }

  /** Forgets finished runs, their logs and metrics included; unfinished ones must be cancelled first. */
  deleteJobs(ids: number[]): number[] {
    const rows = ids.map((id) => this.requireJob(id));
    const unfinished = rows.filter((row) => !FINAL_STATES.includes(row.state));
    if (unfinished.length) {
      throw new RequestError('invalid-request', `cancel ${unfinished.map((row) => row.id).join(', ')} first: only finished runs can be deleted`);
    }
    const dirs = rows.map((row) => join(this.paths.runs, String(row.id)));
    this.store.transaction(() => {
      for (const row of rows) this.store.deleteJob(row.id);
    });
    // The files go only once the store no longer points at them.
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    return rows.map((row) => row.id);
  }

  logs(id: number, attemptNumber: number | undefined, offset = 0, maxBytes = LOG_READ_LIMIT): LogChunk {
    const row = this.requireJob(id);
    const number = attemptNumber ?? row.attempts;
    const attempt = number > 0 ? this.store.attempt(id, number) : undefined;
    if (!attempt) return { jobId: id, attempt: number, offset: 0, data: '', bytes: 0, complete: FINAL_STATES.includes(row.state) };
    const { data, bytes, size } = readUtf8(attemptFiles(attempt.dir).log, offset, Math.min(maxBytes, LOG_READ_LIMIT));
    return { jobId: id, attempt: number, offset, data, bytes, complete: attempt.outcome !== 'running' && offset + bytes >= size };
  }

  /** The run's metrics, optionally cut to a range and downsampled (for charts: see MetricsParams). */
  metrics(id: number, options: Omit<MetricsParams, 'id'> = {}): MetricSeries[] {
    this.requireJob(id);
    return readMetrics(this.store, id, options);
  }

  hosts(): HostView[] {
    const held = new Map<string, number>();
    for (const attempt of this.live.values()) for (const gpu of attempt.allocation.gpus) held.set(`${attempt.allocation.host}/${gpu}`, attempt.jobId);
    return this.store.hosts().map((host) => ({
      ...host,
      gpus: host.gpus.map((gpu) => {
        const jobId = held.get(`${host.name}/${gpu.index}`);
        return jobId === undefined ? gpu : { ...gpu, jobId };
      }),
    }));
  }

  /** Adds an alias of the user's OpenSSH config to the pool; it is connected and probed in the background. */
  addHost(alias: string): HostView {
    if (alias === LOCAL_HOST) throw new RequestError('invalid-request', `${LOCAL_HOST} is always in the pool`);
    const existing = this.hosts().find((host) => host.name === alias);
    if (existing) return existing;
    const known = this.sshAliases();
    if (!known.includes(alias)) {
      throw new RequestError('invalid-request', `${alias} is not a Host in your SSH config${known.length ? ` (it has ${known.join(', ')})` : ''}`);
    }
    this.saveHost(alias, 'ssh', { state: 'connecting' });
    this.openSshHost(alias);
    return this.hosts().find((host) => host.name === alias)!;
  }

  /** The aliases of the SSH config this daemon reads. */
  sshAliases(): string[] {
    try {
      return listSshAliases(this.settings.sshConfigPath !== undefined ? { configPath: this.settings.sshConfigPath } : {});
    } catch (error) {
      throw new RequestError('invalid-request', error instanceof Error ? error.message : String(error));
    }
  }

  /** Takes a host out of the pool; runs on it must have ended (or be cancelled) first. */
  removeHost(alias: string): boolean {
    const busy = [...this.live.values()].filter((attempt) => attempt.allocation.host === alias);
    if (busy.length) throw new RequestError('invalid-request', `runs ${busy.map((attempt) => attempt.jobId).join(', ')} are on ${alias}: cancel them or wait for them first`);
    this.sshHosts.get(alias)?.close();
    this.sshHosts.delete(alias);
    const removed = this.store.transaction(() => this.store.removeHost(alias));
    if (removed) this.requestSchedule();
    return removed;
  }

  private openSshHost(alias: string): void {
    const host = new SshHost(alias, {
      daemonId: daemonIdOf(hostname(), this.paths.home),
      cacheDir: join(this.paths.home, 'sync-cache'),
      ...(this.settings.sshConfigPath !== undefined && { sshConfigPath: this.settings.sshConfigPath }),
    });
    this.sshHosts.set(alias, host);
    host.on('change', () => {
      // A probe may answer after the daemon stopped, or the host left the pool.
      if (this.stopped || this.sshHosts.get(alias) !== host) return;
      this.saveHost(alias, 'ssh', host.state, host.lastInventory);
      this.requestSchedule();
    });
    // Back after a cut: what ran there meanwhile is read, and what waited for it can start.
    host.on('up', () => {
      if (this.stopped) return;
      for (const attempt of this.live.values()) {
        if (attempt.remote?.host === host) attempt.remote.dir ??= host.attemptDir(attempt.jobId, attempt.number);
      }
      this.pollHost(host);
      this.requestSchedule();
    });
    host.start();
  }

  /**
   * Records a host's state and what it last offered (none yet: a host never reached) and tells
   * clients. Local and SSH hosts alike.
   */
  private saveHost(name: string, kind: HostView['kind'], status: { state: HostView['state']; message?: string | undefined }, inventory?: HostInventory): void {
    this.store.transaction(() =>
      this.store.saveHost({
        name,
        kind,
        state: status.state,
        ...(status.message !== undefined && { message: status.message }),
        os: inventory?.os ?? '',
        cpus: inventory?.cpus ?? 0,
        memoryBytes: inventory?.memoryBytes ?? 0,
        ...(inventory?.driverVersion !== undefined && { driverVersion: inventory.driverVersion }),
        updatedAt: inventory?.probedAt ?? Date.now(),
        gpus: (inventory?.gpus ?? []).map((gpu) => ({
          ...gpu,
          foreignPids: inventory!.foreignProcesses.filter((process) => process.gpuUuid === gpu.uuid).map((process) => process.pid),
        })),
      }),
    );
    const view = this.hosts().find((host) => host.name === name);
    if (view) this.emit('hosts', 'drover/event/host', view);
  }

  // Scheduling

  /** Schedules once after the current burst of work (many submissions or exits make one pass). */
  requestSchedule(): void {
    this.commitSoon();
  }

  /**
   * Group commit: the writes asked for in one turn of the event loop (submissions, attempts that
   * ended), followed by a scheduling pass, go to disk in one transaction, each in a savepoint of
   * its own so that one failing write fails only its request. `done` runs once the transaction
   * is on disk, so nothing is acknowledged before it is durable.
   */
  private commitSoon(work?: (now: number) => void, done?: (error?: Error) => void, options: { schedule: boolean } = { schedule: true }): void {
    if (this.stopped) {
      done?.(new Error('the daemon is stopping'));
      return;
    }
    if (!this.batch) {
      this.batch = [];
      setImmediate(() => this.commit());
    }
    this.scheduleWanted ||= options.schedule;
    if (work || done) this.batch.push({ work: work ?? (() => undefined), done: done ?? (() => undefined) });
  }

  private commit(): void {
    const batch = this.batch ?? [];
    const schedule = this.scheduleWanted;
    this.batch = undefined;
    this.scheduleWanted = false;
    if (this.stopped) return;
    const now = Date.now();
    const failures = new Map<number, Error>();
    let pass: SchedulePass;
    try {
      pass = this.store.transaction(() => {
        batch.forEach(({ work }, index) => {
          try {
            this.store.savepoint(() => work(now));
          } catch (error) {
            // The whole transaction is gone (a full disk): the batch fails together, below.
            if (error instanceof TransactionLost) throw error;
            failures.set(index, error instanceof Error ? error : new Error(String(error)));
          }
        });
        return schedule ? this.schedulePass(now) : { starting: [], changed: [], again: false };
      });
    } catch (error) {
      for (const { done } of batch) done(error instanceof Error ? error : new Error(String(error)));
      this.recoverFromFailedCommit();
      return;
    }
    batch.forEach(({ done }, index) => done(failures.get(index)));
    this.carryOut(pass);
  }

  /**
   * Decides what starts, waits or is skipped, and records it, inside the caller's transaction.
   * Processes are started only after that transaction is on disk (see carryOut), so a crash can
   * never leave a process running that the state does not know about.
   */
  private schedulePass(now: number): SchedulePass {
    const pass: SchedulePass = { starting: [], changed: [], again: false };
    const queued = [...this.queue.values()].sort((a, b) => b.priority - a.priority || a.id - b.id);
    if (queued.length === 0) return pass;
    const states = new Map<number, { state: JobState; key: string }>();
    for (const job of queued) {
      for (const need of job.needs) {
        if (states.has(need)) continue;
        const needed = this.store.job(need);
        if (needed) states.set(need, { state: needed.state, key: `${needed.specName}/${needed.key}` });
      }
    }
    const hosts = this.capacities();
    const decisions = schedule({
      now,
      queued: queued.map((job) => ({ id: job.id, plan: job.plan, group: sweepGroup(job), needs: job.needs, notBefore: job.notBefore })),
      running: [...this.live.values()].map((attempt) => attempt.allocation),
      hosts,
      states,
    });
    const byId = new Map(queued.map((job) => [job.id, job]));
    for (const { jobId, reason } of decisions.skip) {
      this.store.updateJob(jobId, { state: 'skipped', reason, endedAt: now });
      this.store.addEvent(jobId, 'skipped', reason, now);
      this.forget(jobId);
      pass.changed.push(jobId);
    }
    for (const [jobId, reason] of decisions.waiting) {
      if (this.waitingReasons.get(jobId) === reason) continue;
      this.waitingReasons.set(jobId, reason);
      pass.changed.push(jobId);
    }
    for (const allocation of decisions.start) {
      const job = byId.get(allocation.jobId)!;
      const number = job.attempts + 1;
      const dir = join(this.paths.runs, String(job.id), String(number));
      this.store.insertAttempt({
        jobId: job.id, number, host: allocation.host, gpus: allocation.gpus, pid: null, processStart: null,
        outcome: 'running', exitCode: null, signal: null, startedAt: now, endedAt: null, dir,
      });
      this.store.updateJob(job.id, { state: 'running', attempts: number, reason: null, notBefore: null, ...(job.startedAt === null && { startedAt: now }) });
      this.forget(job.id);
      pass.starting.push({ job, allocation, number, dir });
      // Claimed now, so the rest of this pass (and the next) sees the resources as taken.
      this.live.set(job.id, this.liveAttempt(job, allocation, number, dir));
    }
    pass.again = decisions.skip.length > 0;
    this.armRetryTimer(queued, now);
    return pass;
  }

  /** What each host of the pool offers the scheduler now. */
  private capacities(): HostCapacity[] {
    const offers: HostInventory[] = [];
    const unusable: HostCapacity[] = [];
    if (this.host) offers.push(this.host);
    for (const host of this.sshHosts.values()) {
      const offer = host.offer;
      if (offer) offers.push(offer);
      else {
        const { state, message } = host.state;
        const why = state === 'connecting' ? 'is being connected to' : `is ${state}${message ? `: ${message}` : ''}`;
        unusable.push({ name: host.name, usable: false, unusable: why, cpus: 0, memoryBytes: 0, gpus: [] });
      }
    }
    const usable = offers.map((offer): HostCapacity => {
      // A GPU process in the group of one of our attempts on that host is ours, not foreign.
      const ourGroups = new Set([...this.live.values()].filter((attempt) => attempt.allocation.host === offer.name).map((attempt) => attempt.pid));
      const remote = offer.name !== LOCAL_HOST;
      return {
        name: offer.name,
        // A degraded host lists no GPUs, so only CPU work is placed there.
        usable: true,
        cpus: offer.cpus,
        memoryBytes: offer.memoryBytes,
        gpus: offer.gpus.map((gpu) => ({
          index: gpu.index,
          name: gpu.name,
          memoryTotalBytes: gpu.memoryTotalBytes,
          foreign: offer.foreignProcesses.some(
            (process) => process.gpuUuid === gpu.uuid && !ourGroups.has((remote ? process.groupId : processGroupOf(process.pid)) ?? -1),
          ),
        })),
      };
    });
    return [...usable, ...unusable];
  }

  /**
   * A commit failed (a full disk): nothing in it happened, so neither did what this class noted
   * in memory on its way. Memory is made to match the store again, and what was lost (the end
   * of an attempt) is found again and retried a moment later, once there may be room.
   */
  private recoverFromFailedCommit(): void {
    this.reloadQueue();
    for (const [jobId, attempt] of this.live) {
      if (attempt.pid === null && !attempt.launching && this.store.job(jobId)?.state !== 'running') this.live.delete(jobId);
    }
    clearTimeout(this.recoveryTimer);
    this.recoveryTimer = setTimeout(() => this.readopt(false), RECOVERY_DELAY_MS);
  }

  private reloadQueue(): void {
    this.queue.clear();
    this.waitingReasons.clear();
    for (const row of this.store.jobs({ states: ['queued'] })) this.queue.set(row.id, row);
  }

  /** A job leaves the queue. */
  private forget(id: number): void {
    this.queue.delete(id);
    this.waitingReasons.delete(id);
  }

  /** Starts the processes a committed pass decided on, and tells clients. */
  private carryOut(pass: SchedulePass): void {
    for (const start of pass.starting) this.launch(start.job, this.live.get(start.job.id)!);
    for (const id of [...pass.changed, ...pass.starting.map((start) => start.job.id)]) this.emitJob(id);
    if (pass.again) this.requestSchedule();
  }

  private armRetryTimer(queued: JobRow[], now: number): void {
    const next = Math.min(...queued.map((job) => job.notBefore ?? Infinity).filter((at) => at > now));
    clearTimeout(this.retryTimer);
    if (Number.isFinite(next)) this.retryTimer = setTimeout(() => this.requestSchedule(), next - now);
  }

  // Processes

  private liveAttempt(job: JobRow, allocation: Allocation, number: number, dir: string): LiveAttempt {
    const points: MetricPoint[] = [];
    const keep = (found: MetricPoint[]) => points.push(...found);
    return {
      jobId: job.id, number, dir, pid: null, processStart: null, allocation: { ...allocation, group: sweepGroup(job) },
      logOffset: 0, metricsOffset: 0, points,
      outputMetrics: new MetricLineReader(keep), fileMetrics: new MetricLineReader(keep, { parse: parseMetricJson }),
    };
  }

  private launch(job: JobRow, live: LiveAttempt): void {
    if (live.allocation.host !== LOCAL_HOST) {
      void this.launchRemote(job, live);
      return;
    }
    const { dir, number, allocation } = live;
    const files = attemptFiles(dir);
    // Added to the launcher's environment, which is the daemon's.
    const env: Record<string, string> = {
      ...job.plan.env,
      CUDA_VISIBLE_DEVICES: allocation.gpus.join(','),
      DROVER_RUN_ID: String(job.id),
      DROVER_ATTEMPT: String(number),
      DROVER_METRICS: files.metrics,
    };
    const command = job.plan.command ?? notebookCommand(job.plan.notebook!);
    if (!existsSync(job.plan.workdir)) {
      this.finish(live, { exitCode: null, signal: null, failure: `could not start: the workdir ${job.plan.workdir} does not exist` });
      return;
    }
    live.launching = true;
    this.launcher.launch(
      { command, cwd: job.plan.workdir, dir, env },
      {
        started: (pid, processStart) => this.started(live, pid, processStart),
        failed: (message) => {
          // The launcher may have died after starting the wrapper: the wrapper's pid file tells.
          const pid = readWrapperPid(dir);
          if (pid !== undefined) this.started(live, pid, processStartTime(pid));
          else {
            live.launching = false;
            this.finish(live, { exitCode: null, signal: null, failure: `could not start: ${message}` });
          }
        },
        exited: () => {
          live.exited = true;
          this.checkAttempt(live);
        },
      },
    );
    this.armTimeout(live, job, Date.now());
  }

  /** Syncs the workdir to the attempt's SSH host, runs the setup if this version needs it, and starts it detached there. */
  private async launchRemote(job: JobRow, live: LiveAttempt): Promise<void> {
    const host = this.sshHosts.get(live.allocation.host);
    live.launching = true;
    mkdirSync(live.dir, { recursive: true, mode: 0o700 });
    // Created now, so that an attempt that never starts still has (empty) output to show.
    appendFileSync(attemptFiles(live.dir).log, '');
    try {
      if (!host) throw new Error(`${live.allocation.host} is no longer in the pool`);
      const remoteDir = host.attemptDir(job.id, live.number);
      if (!existsSync(job.plan.workdir)) throw new Error(`the workdir ${job.plan.workdir} does not exist`);
      const version = await host.prepare(job.plan.workdir, job.plan.setup);
      if (!remoteDir) throw new Error(`${host.name} has not been reached yet`);
      live.remote = { host, dir: remoteDir, alive: true };
      const command = job.plan.command ?? notebookCommand(job.plan.notebook!);
      const env: Record<string, string> = {
        ...job.plan.env,
        CUDA_VISIBLE_DEVICES: live.allocation.gpus.join(','),
        DROVER_RUN_ID: String(job.id),
        DROVER_ATTEMPT: String(live.number),
        DROVER_METRICS: `${remoteDir}/metrics.jsonl`,
        DROVER_WORKDIR_VERSION: version.treeHash,
      };
      const pid = await host.launch({ dir: remoteDir, cwd: version.remoteDir, command, env });
      if (this.live.get(job.id) !== live) return;
      this.started(live, pid, null);
      const message = `attempt ${live.number} on ${host.name} (pid ${pid}), workdir ${version.treeHash.slice(0, 12)}: ${version.uploadedFiles} of ${version.files} files sent`;
      this.commitSoon(
        (now) => {
          this.store.updateAttempt(job.id, live.number, { pid, workdirVersion: version.treeHash });
          this.store.addEvent(job.id, 'started', message, now);
        },
        undefined,
        { schedule: false },
      );
      this.armTimeout(live, job, Date.now());
    } catch (error) {
      live.launching = false;
      if (this.live.get(job.id) === live) this.finish(live, { exitCode: null, signal: null, failure: `could not start on ${live.allocation.host}: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  private started(live: LiveAttempt, pid: number, processStart: string | null): void {
    live.launching = false;
    live.pid = pid;
    live.processStart = processStart;
    // Cancelled or timed out while it was being started.
    if (live.stopping) this.signalStop(live);
  }

  private armTimeout(attempt: LiveAttempt, job: JobRow, startedAt: number): void {
    if (job.plan.timeoutSeconds === undefined) return;
    const remaining = Math.max(0, startedAt + job.plan.timeoutSeconds * 1000 - Date.now());
    attempt.timeoutTimer = setTimeout(() => this.stopAttempt(attempt, 'timed-out'), remaining);
  }

  private stopAttempt(attempt: LiveAttempt, why: 'cancelled' | 'timed-out'): void {
    if (attempt.stopping) return;
    attempt.stopping = why;
    if (attempt.pid !== null) this.signalStop(attempt);
  }

  /** SIGTERM to the attempt's process group, SIGKILL after the grace period. */
  private signalStop(attempt: LiveAttempt): void {
    if (attempt.remote) {
      // Delivered by the host's next poll (now, or once the link is back); KILL after the grace period.
      attempt.remote.pendingSignal = 'TERM';
      this.pollHost(attempt.remote.host);
      attempt.killTimer = setTimeout(() => {
        if (attempt.remote) attempt.remote.pendingSignal = 'KILL';
        if (attempt.remote) this.pollHost(attempt.remote.host);
      }, this.settings.killGraceMs);
      return;
    }
    const pid = attempt.pid!;
    signalGroup(pid, 'SIGTERM');
    attempt.killTimer = setTimeout(() => {
      if (groupAlive(pid)) signalGroup(pid, 'SIGKILL');
    }, this.settings.killGraceMs);
  }

  private endGroup(pid: number): void {
    signalGroup(pid, 'SIGTERM');
    setTimeout(() => {
      if (groupAlive(pid)) signalGroup(pid, 'SIGKILL');
    }, this.settings.killGraceMs).unref();
  }

  private endRemoteGroup(host: SshHost, pid: number): void {
    const end = async () => {
      if (await host.signal(pid, 'TERM')) setTimeout(() => void host.signal(pid, 'KILL').catch(() => undefined), this.settings.killGraceMs).unref();
    };
    // Unreachable now: what is left there was only strays of a finished attempt.
    end().catch(() => undefined);
  }

  /**
   * Watches again what the store says is running and nobody watches (after a restart, or a
   * failed commit), and settles what ended meanwhile.
   */
  private readopt(afterRestart: boolean): void {
    for (const row of this.store.runningAttempts()) {
      if (this.live.has(row.jobId)) continue;
      const job = this.store.job(row.jobId)!;
      const allocation = { jobId: row.jobId, host: row.host, cpus: job.plan.resources.cpus ?? DEFAULT_CPUS, memoryBytes: job.plan.resources.memoryBytes ?? 0, gpus: row.gpus };
      const live = this.liveAttempt(job, allocation, row.number, row.dir);
      if (row.host !== LOCAL_HOST) {
        const host = this.sshHosts.get(row.host);
        if (!host) {
          this.finish(live, { exitCode: null, signal: null, lost: true, failure: `${row.host} was taken out of the pool while it ran` });
          continue;
        }
        live.remote = { host, dir: host.attemptDir(row.jobId, row.number), alive: true };
        live.pid = row.pid;
      } else {
        live.pid = row.pid ?? readWrapperPid(row.dir) ?? null;
        live.processStart = row.processStart ?? (live.pid === null ? null : processStartTime(live.pid));
      }
      live.logOffset = row.logScanned;
      live.metricsOffset = row.metricsScanned;
      this.live.set(row.jobId, live);
      if (afterRestart) this.store.addEvent(row.jobId, 'readopted', `attempt ${row.number} (pid ${live.pid ?? 'unknown'}) watched again after a daemon restart`, Date.now());
      if (job.cancelRequested) this.stopAttempt(live, 'cancelled');
      else this.armTimeout(live, job, row.startedAt);
      this.checkAttempt(live);
    }
  }

  private pollLive(): void {
    for (const attempt of [...this.live.values()]) if (!attempt.remote) this.checkAttempt(attempt);
    for (const host of this.sshHosts.values()) this.pollHost(host);
  }

  /**
   * Fetches, in one round trip, what the attempts on an SSH host wrote since the last poll and
   * whether they ended, into their local folders; then settles them as local ones. Offsets are
   * the sizes of the local copies, so nothing is fetched twice or skipped, across restarts too.
   */
  private pollHost(host: SshHost): void {
    if (this.polling.has(host.name) || !host.reachable) return;
    const attempts = [...this.live.values()].filter((attempt) => attempt.remote?.host === host && attempt.remote.dir !== undefined && !attempt.launching);
    if (attempts.length === 0) return;
    const asked: PolledAttempt[] = attempts.map((attempt) => {
      const files = attemptFiles(attempt.dir);
      return {
        key: String(attempt.jobId),
        dir: attempt.remote!.dir!,
        logOffset: fileSize(files.log),
        metricsOffset: fileSize(files.metrics),
        ...(attempt.remote!.pendingSignal && { signal: attempt.remote!.pendingSignal }),
      };
    });
    this.polling.add(host.name);
    host
      .poll(asked)
      .then((answers) => {
        attempts.forEach((attempt, index) => {
          const answer = answers.get(String(attempt.jobId));
          const remote = attempt.remote!;
          if (!answer || this.live.get(attempt.jobId) !== attempt) return;
          const files = attemptFiles(attempt.dir);
          mkdirSync(attempt.dir, { recursive: true, mode: 0o700 });
          if (answer.log.length) appendFileSync(files.log, answer.log);
          if (answer.metrics.length) appendFileSync(files.metrics, answer.metrics);
          // Delivered, unless a stronger one was decided meanwhile.
          if (asked[index]!.signal === remote.pendingSignal) delete remote.pendingSignal;
          if (answer.pid !== null) attempt.pid = answer.pid;
          // Only once all its output is here: a long log takes several polls.
          const more = answer.log.length >= REMOTE_READ_LIMIT || answer.metrics.length >= REMOTE_READ_LIMIT;
          if (answer.exitStatus !== null && !more) writeFileSync(files.status, `${answer.exitStatus}\n`);
          remote.alive = answer.alive || answer.exitStatus !== null || more;
          this.checkAttempt(attempt);
        });
      })
      .catch(() => {
        // The link is down: the attempts go on there, and are read again once it is back.
      })
      .finally(() => this.polling.delete(host.name));
  }

  /** Reads new output and, if the attempt has ended, settles it. */
  private checkAttempt(attempt: LiveAttempt): void {
    // A stopping daemon settles nothing: the next one will.
    if (this.stopped || this.live.get(attempt.jobId) !== attempt) return;
    this.drain(attempt);
    const status = readExitStatus(attempt.dir);
    if (status) {
      this.finish(attempt, { exitCode: status.exitCode, signal: status.signal ?? null });
      return;
    }
    if (attempt.launching) return;
    const alive = attempt.remote ? attempt.remote.alive : attempt.pid !== null && !attempt.exited && isAlive(attempt.pid, attempt.processStart);
    if (alive) return;
    // The wrapper is gone without writing a status: killed (SIGKILL after a grace period, or by someone else).
    const late = readExitStatus(attempt.dir);
    if (late) this.finish(attempt, { exitCode: late.exitCode, signal: late.signal ?? null });
    else this.finish(attempt, { exitCode: null, signal: attempt.stopping ? 'SIGKILL' : null, lost: !attempt.stopping });
  }

  /**
   * Forwards new log bytes to subscribers and records the metrics in them; at the attempt's end
   * (`final`), also a last line written without a line end.
   */
  private drain(attempt: LiveAttempt, final = false): void {
    const files = attemptFiles(attempt.dir);
    const log = readUtf8(files.log, attempt.logOffset, LOG_READ_LIMIT);
    if (log.bytes > 0) {
      this.emit('logs', 'drover/event/log', { jobId: attempt.jobId, attempt: attempt.number, offset: attempt.logOffset, data: log.data, bytes: log.bytes, complete: false }, attempt.jobId);
      attempt.outputMetrics.feed(log.chunk);
      attempt.logOffset += log.bytes;
    }
    const metrics = readUtf8(files.metrics, attempt.metricsOffset, LOG_READ_LIMIT);
    if (metrics.bytes > 0) {
      attempt.fileMetrics.feed(metrics.chunk);
      attempt.metricsOffset += metrics.bytes;
    }
    if (final) {
      attempt.outputMetrics.flush();
      attempt.fileMetrics.flush();
    }
    if (log.bytes === 0 && metrics.bytes === 0 && attempt.points.length === 0) return;
    const now = Date.now();
    const points: MetricRow[] = attempt.points.splice(0).map((point) => ({ jobId: attempt.jobId, attempt: attempt.number, name: point.name, step: point.step, value: point.value, at: point.at ?? now }));
    const { pid, processStart, logOffset, metricsOffset } = attempt;
    this.commitSoon(
      () => {
        this.store.addMetrics(points);
        this.store.updateAttempt(attempt.jobId, attempt.number, { pid, processStart, logScanned: logOffset, metricsScanned: metricsOffset });
      },
      undefined,
      { schedule: false },
    );
    for (const point of points) {
      this.emit('metrics', 'drover/event/metric', { jobId: point.jobId, attempt: point.attempt, name: point.name, point: { step: point.step, value: point.value, at: point.at } }, point.jobId);
    }
  }

  private finish(attempt: LiveAttempt, end: AttemptEnd): void {
    clearTimeout(attempt.timeoutTimer);
    clearTimeout(attempt.killTimer);
    this.drain(attempt, true);
    this.live.delete(attempt.jobId);
    // What the command left running in its group (stray background processes) ends with it.
    if (attempt.remote && attempt.pid !== null) this.endRemoteGroup(attempt.remote.host, attempt.pid);
    else if (attempt.pid !== null && groupAlive(attempt.pid)) this.endGroup(attempt.pid);
    const job = this.store.job(attempt.jobId)!;
    const now = Date.now();
    let outcome: AttemptOutcome;
    if (job.cancelRequested) outcome = 'cancelled';
    else if (attempt.stopping === 'timed-out') outcome = 'timed-out';
    else if (end.exitCode === 0) outcome = 'succeeded';
    else if (end.lost) outcome = 'lost';
    else outcome = 'failed';
    const described = describeEnd(outcome, end, job);
    const retriesLeft = job.plan.retries - (attempt.number - 1);
    const retry = (outcome === 'failed' || outcome === 'timed-out' || outcome === 'lost') && retriesLeft > 0;
    const backoff = this.settings.retryBackoffMs * 2 ** (attempt.number - 1);
    this.commitSoon(
      () => {
        this.store.updateAttempt(attempt.jobId, attempt.number, {
          pid: attempt.pid, processStart: attempt.processStart, outcome, exitCode: end.exitCode, signal: end.signal, endedAt: now,
          logScanned: attempt.logOffset, metricsScanned: attempt.metricsOffset,
        });
        if (retry) {
          const reason = `attempt ${attempt.number} ${described}; retrying in ${formatDelay(backoff)} (${retriesLeft} ${retriesLeft === 1 ? 'retry' : 'retries'} left)`;
          this.store.updateJob(attempt.jobId, { state: 'queued', reason, notBefore: now + backoff });
          this.store.addEvent(attempt.jobId, 'retry', reason, now);
          this.queue.set(attempt.jobId, this.store.job(attempt.jobId)!);
        } else {
          const state: JobState = outcome === 'succeeded' ? 'succeeded' : outcome === 'cancelled' ? 'cancelled' : 'failed';
          this.store.updateJob(attempt.jobId, { state, reason: state === 'succeeded' ? null : described, endedAt: now, exitCode: end.exitCode, signal: end.signal });
          this.store.addEvent(attempt.jobId, state, described, now);
        }
      },
      () => {
        const size = fileSize(attemptFiles(attempt.dir).log);
        this.emit('logs', 'drover/event/log', { jobId: attempt.jobId, attempt: attempt.number, offset: attempt.logOffset, data: '', bytes: 0, complete: size <= attempt.logOffset }, attempt.jobId);
        this.emitJob(attempt.jobId);
      },
    );
  }

  private async probeHost(): Promise<void> {
    const inventory = await probeLocalHost({ env: this.settings.env });
    if (this.stopped) return;
    this.host = inventory;
    this.saveHost(inventory.name, 'local', inventory, inventory);
  }

  // Views

  private requireJob(id: number): JobRow {
    const row = this.store.job(id);
    if (!row) throw new RequestError('not-found', `no run ${id}`);
    return row;
  }

  private emitJob(id: number): void {
    const row = this.store.job(id);
    if (row) this.emit('jobs', 'drover/event/job', this.view(row), id);
  }

  private view(row: JobRow, attempts?: AttemptRow[]): JobView {
    const last = (attempts ?? (row.attempts > 0 ? [this.store.attempt(row.id, row.attempts)!] : [])).at(-1);
    const view: JobView = {
      id: row.id,
      submissionId: row.submissionId,
      specName: row.specName,
      key: row.key,
      state: row.state,
      priority: row.priority,
      resources: row.plan.resources,
      params: row.plan.params,
      attempts: row.attempts,
      createdAt: row.createdAt,
    };
    if (row.plan.command !== undefined) view.command = row.plan.command;
    if (row.plan.notebook !== undefined) view.notebook = row.plan.notebook;
    const reason = row.reason ?? (row.state === 'queued' ? this.waitingReasons.get(row.id) : undefined);
    if (reason !== undefined) view.reason = reason;
    if (last) {
      view.host = last.host;
      view.gpus = last.gpus;
    }
    if (row.exitCode !== null) view.exitCode = row.exitCode;
    if (row.signal !== null) view.signal = row.signal;
    if (row.startedAt !== null) view.startedAt = row.startedAt;
    if (row.endedAt !== null) view.endedAt = row.endedAt;
    return view;
  }
}

/** The runs that share a sweep's max_parallel: one job of one submission. */
function sweepGroup(job: JobRow): string {
  return `${job.submissionId}:${job.plan.job}`;
}

function describeEnd(outcome: AttemptOutcome, end: AttemptEnd, job: JobRow): string {
  if (outcome === 'succeeded') return 'succeeded';
  if (outcome === 'cancelled') return 'cancelled';
  if (outcome === 'timed-out') return `timed out after ${formatDelay((job.plan.timeoutSeconds ?? 0) * 1000)}`;
  if (end.failure) return end.failure;
  if (end.lost) return 'the process disappeared without an exit status';
  if (end.signal) return `killed by ${end.signal}`;
  return `exited with code ${end.exitCode}`;
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 120) return `${+seconds.toFixed(1)} s`;
  return `${+(seconds / 60).toFixed(1)} min`;
}

/** Runs a notebook job (the notebook issue replaces this with a per-cell driver). */
function notebookCommand(notebook: string): string {
  const quoted = `'${notebook.replace(/'/g, `'\\''`)}'`;
  return `jupyter nbconvert --to notebook --execute --output executed.ipynb ${quoted}`;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Reads up to `limit` bytes from `offset`, ending on a whole UTF-8 character; `chunk` holds those bytes. */
function readUtf8(file: string, offset: number, limit: number): { chunk: Buffer; data: string; bytes: number; size: number } {
  const nothing = (size: number) => ({ chunk: Buffer.alloc(0), data: '', bytes: 0, size });
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return nothing(0);
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.max(0, Math.min(limit, size - offset));
    if (length === 0) return nothing(size);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, offset);
    const chunk = buffer.subarray(0, completeUtf8Length(buffer.subarray(0, read)));
    return { chunk, data: chunk.toString('utf8'), bytes: chunk.length, size };
  } finally {
    closeSync(fd);
  }
}

/** The length of the longest prefix that does not end inside a UTF-8 character. */
function completeUtf8Length(buffer: Buffer): number {
  let end = buffer.length;
  for (let back = 1; back <= Math.min(3, buffer.length); back++) {
    const byte = buffer[buffer.length - back]!;
    if ((byte & 0xc0) === 0x80) continue;
    const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    if (size > back) end = buffer.length - back;
    break;
  }
  return end;
}
