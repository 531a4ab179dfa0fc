import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import {
  FINAL_STATES,
  type AttemptOutcome,
  type CellEvent,
  type CellEventsChunk,
  type DaemonNotifications,
  type GpuSamplesParams,
  type GpuSamplesResult,
  type HostView,
  type JobDetail,
  type JobState,
  type JobView,
  type LogChunk,
  type MetricSeries,
  type MetricsParams,
  type MetricSummary,
  type RunMetricSeries,
  type RunRecord,
  type ScheduleView,
  type SubmitParams,
  type SubmitResult,
  type Topic,
} from '../../../common/protocol';
import { analyzeSpec, expandSpec, ExpansionError, formatDiagnostic, hasErrors, type RunPlan, type SpecModel } from '../../../common/spec';
import {
  describeLease, describeLeaseHolders, leasedByOthers, leaseOwner, mergeLeases, parseLeaseLines, releaseLeasesScript, runLeaseScript, setLeasesScript, takeLeasesScript, takeLocalLeases,
  type GpuLease, type LeaseOwner,
} from '../hosts/gpu-leases';
import { LOCAL_HOST, probeLocalHost, type HostInventory } from '../hosts/local-host';
import { listSshAliases } from '../hosts/ssh/ssh-config';
import { daemonIdOf, SshHost } from '../hosts/ssh/ssh-host';
import { REMOTE_FILES, REMOTE_READ_LIMIT, type PollAnswer, type PolledAttempt } from '../hosts/ssh/remote-scripts';
import { SlurmCluster, type SlurmClusterSettings } from '../hosts/slurm/slurm-cluster';
import { isArrayJob, sbatchScript, SbatchError, type SbatchJob } from '../hosts/slurm/sbatch-script';
import { projectId as projectIdOf } from '../hosts/ssh/workdir-sync';
import { standingOf, type RunStanding, type SlurmJob } from '../hosts/slurm/slurm-state';
import { LauncherClient } from '../local/launcher-client';
import { attemptFiles, groupAlive, isAlive, processGroupOf, processStartTime, readExitStatus, readWrapperPid, signalGroup, writeWrapperFile } from '../local/detached-process';
import { MetricLineReader, parseMetricJson, type MetricPoint } from '../metrics/metric-lines';
import { NOTEBOOK_DRIVER, notebookCommand, notebookDriverPath, notebookEnv, readCellEvents } from '../notebook/cell-events';
import { readMetrics } from '../metrics/lttb';
import { redactEnv } from '../records/reproduction';
import { earlyStopVerdict, type StepValue } from '../scheduler/early-stop';
import { DEFAULT_USAGE_HALF_LIFE_MS, recentGpuHours, type GpuUse } from '../scheduler/fair-share';
import { DEFAULT_CPUS, type Allocation, type HostCapacity } from '../scheduler/placement';
import { neededEndedReason, schedule, type PolicyOptions, type QueuedJob, type RunningJob } from '../scheduler/policy';
import { Store, StoreError, TransactionLost, type AttemptRow, type JobRow, type MetricRow, type ScheduleRow } from '../store/store';
import { IdleGpuWatch } from './idle-gpus';
import { ScheduleTimer } from './schedules';
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
  /** How long a run's GPUs must stay at ~0% utilization before it is flagged as idle. */
  idleGpuMs: number;
  /** How long the GPU utilization samples of the host probes are kept (the GPU timeline). */
  gpuSampleRetentionMs: number;
  /** The OpenSSH client config SSH hosts are read from (default ~/.ssh/config). */
  sshConfigPath?: string;
  /** Scheduling policy settings (GPU quotas, aging…) other than the defaults. */
  policy?: Partial<PolicyOptions>;
  /** How often each SLURM cluster is polled (one poll per cluster, whoever is watching). */
  slurmPollMs: number;
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
  allocation: RunningJob;
  /** Why the daemon is stopping it, if it is. */
  stopping?: 'cancelled' | 'timed-out' | 'stopped-early';
  /** The sweep's early-stop rule's verdict, when that is why. */
  stoppedEarly?: string;
  /** The last step its sweep's early-stop rule judged it at. */
  judgedUpTo?: number;
  timeoutTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  logOffset: number;
  metricsOffset: number;
  /**
   * How far a notebook run's cell events were sent to clients. Not stored: after a restart it
   * starts at the end, and clients read what they missed with `drover/cells`.
   */
  cellsOffset: number;
  /** Metrics in the attempt's output and in its $DROVER_METRICS file, as they are read. */
  outputMetrics: MetricLineReader;
  fileMetrics: MetricLineReader;
  /** Points read and not yet written down. */
  points: MetricPoint[];
  /** On an SSH host: where it runs there, and what the last poll saw. */
  remote?: RemoteAttempt;
  /** On a SLURM cluster: SLURM runs it; polls copy its output here. */
  slurm?: SlurmCluster;
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

/** A submission checked and expanded, ready to be written. */
interface PlannedSubmission {
  model: SpecModel;
  plans: RunPlan[];
  record: RunRecord;
  workdir: string;
  /** Who submitted it (fair share and quotas). */
  user: string;
}

/** How an attempt ended, as far as the daemon could tell. */
interface AttemptEnd {
  exitCode: number | null;
  signal: string | null;
  /** It never started, and why. */
  failure?: string;
  /** It vanished without a status while nobody was stopping it. */
  lost?: boolean;
  /** Decided by whoever ran it (SLURM says how its jobs end). */
  outcome?: AttemptOutcome;
}

/** Sends a notification to the clients subscribed to `topic` (and to `jobId`, when given). */
export type Emit = <M extends keyof DaemonNotifications>(topic: Topic, method: M, payload: DaemonNotifications[M], jobId?: number) => void;

const LOG_READ_LIMIT = 1 << 20;
/** How often a SLURM cluster's partitions and nodes are read (its jobs are read on every poll). */
const SLURM_INVENTORY_MS = 10_000;
/** The longest cell event read whole (a cell's output with images): larger ones wait unread. */
const CELL_EVENT_LIMIT = 256 << 20;
/** The longest a write waits for others to share its commit (see commitWhenQuiet). */
const GROUP_COMMIT_MAX_MS = 5;
/** After a failed commit, how long to wait before trying again what it lost. */
const RECOVERY_DELAY_MS = 1_000;
/** How often the GPU use of ended attempts is read again for fair share (it changes slowly). */
const USAGE_REFRESH_MS = 60_000;

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
  /** Each queued row as the policy takes it (see policyView). */
  private readonly policyViews = new WeakMap<JobRow, QueuedJob>();
  /** Why each queued job waits, from the last pass: derived state, so never stored. */
  private readonly waitingReasons = new Map<number, string>();
  private readonly launcher = new LauncherClient();
  /** Git states being read, by workdir, with the submissions waiting for each. */
  private readonly gitReads = new Map<string, number[]>();
  private host: HostInventory | undefined;
  /** Who runs the daemon: the user of submissions that name none. */
  private localUser: string | undefined;
  /** The SSH hosts of the pool, by alias. The pool itself is the store's list of hosts. */
  private readonly sshHosts = new Map<string, SshHost>();
  /** Hosts with a poll on its way, so polls of one host never overlap. */
  private readonly polling = new Set<string>();
  /** The SLURM clusters of the pool, by name (their settings are in the store's hosts table). */
  private readonly slurmClusters = new Map<string, SlurmCluster>();
  /** SLURM ids squeue stopped listing, to ask sacct about on the next poll (and give up on after that). */
  private readonly slurmMissing = new Map<string, Set<string>>();
  /** A hand-off to SLURM is under way; `handAgain`: another was asked for meanwhile. */
  private handing = false;
  private handAgain = false;
  private slurmTimer: NodeJS.Timeout | undefined;
  /** Writes waiting for the next group commit. */
  private batch: { work: (now: number) => void; done: (error?: Error) => void }[] | undefined;
  /** Commits on their way to disk, to be answered and carried out once there (see commit). */
  private readonly unsettled = new Set<(error?: Error) => void>();
  private scheduleWanted = false;
  /** When the batch was opened, and whether work was added to it since the last look (see commitWhenQuiet). */
  private batchOpenedAt = 0;
  private batchGrew = false;
  /** GPU use of attempts that ended lately, per user, and when it was read. */
  private endedGpuUse: { uses: GpuUse[]; readAt: number } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Why the last observation the store refused was dropped (see recordObservation). */
  private droppedBecause: string | undefined;
  /** Names this daemon on shared hosts: its folders there, and its GPU leases. */
  private readonly daemonId: string;
  private readonly schedules: ScheduleTimer;
  private readonly idleGpus: IdleGpuWatch;

  constructor(
    readonly paths: DaemonPaths,
    private readonly store: Store,
    private readonly settings: DaemonSettings,
    private readonly emit: Emit,
  ) {
    this.daemonId = daemonIdOf(hostname(), paths.home);
    this.idleGpus = new IdleGpuWatch(settings.idleGpuMs);
    this.schedules = new ScheduleTimer(store, {
      fire: (schedule, tick, missed) => this.fireSchedule(schedule, tick, missed),
      skip: (schedule, tick, missed) => this.skipScheduledTimes(schedule, tick, missed),
    });
  }

  async start(): Promise<void> {
    mkdirSync(this.paths.runs, { recursive: true, mode: 0o700 });
    // Started while the daemon starts, not when a burst of work has begun.
    this.launcher.start();
    // Samples of GPUs that are no longer probed age out here (probed ones as they are sampled).
    this.recordObservation(() => this.store.gpuSamples.prune(Date.now() - this.settings.gpuSampleRetentionMs));
    await this.probeHost();
    for (const host of this.store.hosts()) {
      if (host.kind === 'ssh') this.openSshHost(host.name);
      if (host.kind === 'slurm') this.openSlurmCluster(host.name, (this.store.hostSettings(host.name) ?? {}) as SlurmClusterSettings);
    }
    this.readopt(true);
    this.reloadQueue();
    // Times missed while the daemon was down fire now (once), unless their spec says not to.
    this.schedules.check();
    this.pollTimer = setInterval(() => this.pollLive(), this.settings.pollMs);
    this.slurmTimer = setInterval(() => {
      for (const cluster of this.slurmClusters.values()) this.pollSlurm(cluster);
    }, this.settings.slurmPollMs);
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
    this.settleNow();
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.probeTimer);
    clearInterval(this.slurmTimer);
    this.schedules.stop();
    clearTimeout(this.retryTimer);
    clearTimeout(this.recoveryTimer);
    for (const attempt of this.live.values()) {
      clearTimeout(attempt.timeoutTimer);
      clearTimeout(attempt.killTimer);
    }
    this.launcher.close();
    for (const host of this.sshHosts.values()) host.close();
    for (const cluster of this.slurmClusters.values()) cluster.close();
    this.store.close();
  }

  // Requests

  submit(params: SubmitParams): Promise<SubmitResult> {
    const planned = this.planSubmission(params);
    return new Promise((resolve, reject) => {
      let jobIds: number[] = [];
      let submissionId = 0;
      this.commitSoon(
        (now) => ({ submissionId, jobIds } = this.insertSubmission(planned, now)),
        (error) => {
          if (error) return reject(error);
          resolve({ submissionId, jobs: this.submitted(submissionId, jobIds, planned.workdir) });
        },
      );
    });
  }

  /** Checks a submission and expands it into runs; throws a RequestError that says what is wrong. */
  private planSubmission(params: SubmitParams): PlannedSubmission {
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
    if (params.host !== undefined && params.host !== LOCAL_HOST && !this.sshHosts.has(params.host) && !this.slurmClusters.has(params.host)) {
      throw new RequestError('invalid-request', `${params.host} is not in the pool: add it with \`drover hosts add ${params.host}\``);
    }
    for (const plan of plans) {
      const clusters = (plan.hosts ?? []).filter((host) => this.slurmClusters.has(host));
      if (clusters.length > 0 && plan.hosts!.length > 1) {
        throw new RequestError('invalid-request', `${plan.key}: placement lists the SLURM cluster ${clusters[0]} with other hosts; SLURM schedules its own work, so a run goes to a cluster alone (\`--host ${clusters[0]}\`)`);
      }
    }
    const workdir = plans[0]?.workdir ?? base;
    const record: RunRecord = {
      ...(params.specPath !== undefined && { specPath: resolve(params.cwd, params.specPath) }),
      specText: params.specText,
      overrides: params.overrides ?? {},
      workdir,
      env: redactEnv(params.env ?? {}),
      ...(params.host !== undefined && { targetHost: params.host }),
      ...(this.host && {
        host: { name: this.host.name, os: this.host.os, gpuModels: this.host.gpus.map((gpu) => gpu.name), ...(this.host.driverVersion && { driverVersion: this.host.driverVersion }) },
      }),
    };
    return { model: analysis.model, plans, record, workdir, user: params.user ?? (this.localUser ??= userInfo().username) };
  }

  /** Writes a planned submission's runs into the queue, inside the caller's transaction. */
  private insertSubmission(planned: PlannedSubmission, now: number): { submissionId: number; jobIds: number[] } {
    const { model, plans, record, user } = planned;
    const submissionId = this.store.insertSubmission(model.name, user, record, now);
    const idByKey = new Map<string, number>();
    for (const plan of plans) idByKey.set(plan.key, this.store.insertJob({ submissionId, plan, state: 'queued', needs: [] }, now));
    for (const plan of plans) {
      if (plan.needs.length > 0) this.store.setNeeds(idByKey.get(plan.key)!, plan.needs.map((key) => idByKey.get(key)!));
    }
    this.store.addEvent(null, 'submitted', `${model.name}: ${plans.length} run${plans.length === 1 ? '' : 's'}`, now);
    const jobIds = [...idByKey.values()];
    for (const id of jobIds) {
      const row = this.store.job(id)!;
      // SLURM schedules these: they are handed over once on disk (see submitted), not placed here.
      if (!this.slurmClusterOf(row)) this.queue.set(id, row);
    }
    return { submissionId, jobIds };
  }

  /** Once a submission is on disk: tells clients, reads its git state and hands SLURM its runs. */
  private submitted(submissionId: number, jobIds: number[], workdir: string): JobView[] {
    const jobs = jobIds.map((id) => this.view(this.store.job(id)!));
    // Jobs in the local queue were told of by the pass that ran in the same commit (carryOut),
    // with why they wait; the others (a SLURM cluster's) are told of here.
    for (const job of jobs) if (job.state === 'queued' && !this.queue.has(job.id)) this.emit('jobs', 'drover/event/job', job, job.id);
    this.recordGitState(submissionId, workdir);
    this.handToSlurm();
    return jobs;
  }

  // Schedules

  /** Registers a spec with a `schedule:`; a spec of the same name is replaced, and counts its times from now. */
  addSchedule(params: SubmitParams): ScheduleView {
    const { model } = this.planSubmission(params);
    const cron = model.schedule?.value;
    if (cron === undefined) {
      throw new RequestError('invalid-request', `${params.specPath ?? model.name} has no \`schedule:\`: add one (e.g. schedule: "0 2 * * *"), or submit it to run it once now`);
    }
    const now = Date.now();
    const stored = { ...params, env: redactEnv(params.env ?? {}) };
    this.store.transaction(() => {
      this.store.saveSchedule({ name: model.name, cron, catchUp: model.catchUp ?? 'once', params: stored, createdAt: now, lastTick: now, lastSubmissionId: null });
      this.store.addEvent(null, 'schedule-added', `${model.name}: ${cron}`, now);
    });
    this.schedules.check();
    return this.schedules.view(this.store.schedule(model.name)!);
  }

  listSchedules(): ScheduleView[] {
    return this.store.schedules().map((schedule) => this.schedules.view(schedule));
  }

  removeSchedule(name: string): boolean {
    const removed = this.store.transaction(() => this.store.removeSchedule(name));
    this.schedules.check();
    return removed;
  }

  /** Submits a schedule's spec for one of its times; the time is recorded with the submission, so it never fires twice. */
  private fireSchedule(schedule: ScheduleRow, tick: number, missed: number): void {
    const when = new Date(tick).toISOString();
    // Removed meanwhile, or this time fired already (a check that overlapped the commit).
    const unfired = () => {
      const current = this.store.schedule(schedule.name);
      return current !== undefined && current.lastTick < tick;
    };
    let planned: PlannedSubmission;
    try {
      planned = this.planSubmission(schedule.params);
    } catch (error) {
      // The pool changed under it (its host was removed): this time is lost, with the reason.
      const message = error instanceof Error ? error.message : String(error);
      this.commitSoon((now) => {
        if (!unfired()) return;
        this.store.setScheduleTick(schedule.name, tick, null);
        this.store.addEvent(null, 'schedule-failed', `${schedule.name} at ${when}: ${message}`, now);
      });
      return;
    }
    let submission: { submissionId: number; jobIds: number[] } | undefined;
    this.commitSoon(
      (now) => {
        if (!unfired()) return;
        submission = this.insertSubmission(planned, now);
        this.store.setScheduleTick(schedule.name, tick, submission.submissionId);
        const skipped = missed > 0 ? ` (${missed} earlier missed time${missed === 1 ? '' : 's'} not run separately)` : '';
        this.store.addEvent(null, 'scheduled', `${schedule.name}: the run of ${when}${skipped}`, now);
      },
      (error) => {
        if (!error && submission) this.submitted(submission.submissionId, submission.jobIds, planned.workdir);
      },
    );
  }

  private skipScheduledTimes(schedule: ScheduleRow, tick: number, missed: number): void {
    this.commitSoon(
      (now) => {
        const current = this.store.schedule(schedule.name);
        if (!current || current.lastTick >= tick) return;
        this.store.setScheduleTick(schedule.name, tick, null);
        this.store.addEvent(null, 'schedule-skipped', `${schedule.name}: ${missed} time${missed === 1 ? '' : 's'} missed while the daemon was down, up to ${new Date(tick).toISOString()}, not run (catch_up: none)`, now);
      },
      undefined,
      { schedule: false },
    );
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
          ...(row.plan.notebook !== undefined && existsSync(attemptFiles(attempt.dir).notebook) && { notebookPath: attemptFiles(attempt.dir).notebook }),
        };
      }),
    };
  }

  cancel(ids: number[]): number[] {
    const cancelled: number[] = [];
    const now = Date.now();
    const scancel = new Map<SlurmCluster, string[]>();
    for (const id of ids) {
      const row = this.requireJob(id);
      if (FINAL_STATES.includes(row.state)) continue;
      const cluster = this.slurmClusterOf(row);
      if (cluster && row.slurmId !== null) {
        // SLURM ends it; the next poll sees it CANCELLED and settles it.
        this.store.transaction(() => this.store.updateJob(id, { cancelRequested: true }));
        scancel.set(cluster, [...(scancel.get(cluster) ?? []), row.slurmId]);
        const attempt = this.live.get(id);
        if (attempt) attempt.stopping = 'cancelled';
      } else if (row.state === 'queued') {
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
    for (const [cluster, slurmIds] of scancel) {
      cluster.cancel(slurmIds).then(
        () => this.pollSlurm(cluster),
        (error: unknown) => this.recordObservation(() => this.store.addEvent(null, 'scancel-failed', `scancel ${slurmIds.join(' ')} on ${cluster.name}: ${error instanceof Error ? error.message : String(error)}`, Date.now())),
      );
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
    // Each attempt's folder, and the job's folder of the older layout (runs/<job>/<attempt>).
    const dirs = rows.flatMap((row) => [...this.store.attempts(row.id).map((attempt) => attempt.dir), join(this.paths.runs, String(row.id))]);
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

  /** Several runs' metrics (as `metrics` answers each); a run without points (or one deleted since) has none. */
  runMetrics(ids: readonly number[], options: Omit<MetricsParams, 'id'> = {}): RunMetricSeries[] {
    return ids.map((id) => ({ jobId: id, series: readMetrics(this.store, id, options) }));
  }

  /** Each metric's count, last, lowest and highest value for these runs, without reading their points. */
  metricSummaries(ids: readonly number[]): MetricSummary[] {
    return this.store.metricSummaries(ids);
  }

  /** GPU utilization as the host probes sampled it, thinned to `maxPoints` per GPU when asked. */
  gpuSamples(params: GpuSamplesParams): GpuSamplesResult {
    return { intervalMs: this.settings.hostProbeMs, retentionMs: this.settings.gpuSampleRetentionMs, series: this.store.gpuSamples.read(params) };
  }

  /** A notebook run's cell events from `offset` of an attempt's events file (whole lines only). */
  cells(id: number, attemptNumber: number | undefined, offset = 0): CellEventsChunk {
    const row = this.requireJob(id);
    const number = attemptNumber ?? row.attempts;
    const attempt = number > 0 ? this.store.attempt(id, number) : undefined;
    if (!attempt) return { jobId: id, attempt: number, offset, nextOffset: offset, events: [], complete: FINAL_STATES.includes(row.state) };
    const { events, bytes, size } = readCellEventsFrom(attemptFiles(attempt.dir).cells, offset);
    return { jobId: id, attempt: number, offset, nextOffset: offset + bytes, events, complete: attempt.outcome !== 'running' && offset + bytes >= size };
  }

  hosts(): HostView[] {
    const held = new Map<string, number>();
    for (const attempt of this.live.values()) for (const gpu of attempt.allocation.gpus) held.set(`${attempt.allocation.host}/${gpu}`, attempt.jobId);
    return this.store.hosts().map((host) => ({
      ...host,
      ...(host.kind === 'slurm' && { slurm: this.slurmView(host.name) }),
      gpus: host.gpus.map((gpu) => {
        const jobId = held.get(`${host.name}/${gpu.index}`);
        return jobId === undefined ? gpu : { ...gpu, jobId };
      }),
    }));
  }

  /** Adds an alias of the user's OpenSSH config to the pool, or a SLURM cluster; it is connected and probed in the background. */
  addHost(alias: string, slurm?: SlurmClusterSettings): HostView {
    if (alias === LOCAL_HOST) throw new RequestError('invalid-request', `${LOCAL_HOST} is always in the pool`);
    const existing = this.hosts().find((host) => host.name === alias);
    if (existing) {
      if ((existing.kind === 'slurm') !== (slurm !== undefined)) {
        throw new RequestError('invalid-request', `${alias} is already in the pool as ${existing.kind === 'slurm' ? 'a SLURM cluster' : 'an SSH host'}: remove it first`);
      }
      return existing;
    }
    if (slurm) return this.addSlurmCluster(alias, slurm);
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
    const handed = this.store.jobs({ states: ['queued'] }).filter((job) => job.plan.hosts?.length === 1 && job.plan.hosts[0] === alias);
    if (handed.length) throw new RequestError('invalid-request', `runs ${handed.map((job) => job.id).join(', ')} wait on ${alias}: cancel them or wait for them first`);
    this.sshHosts.get(alias)?.close();
    this.sshHosts.delete(alias);
    this.slurmClusters.get(alias)?.close();
    this.slurmClusters.delete(alias);
    const removed = this.store.transaction(() => this.store.removeHost(alias));
    if (removed) this.requestSchedule();
    return removed;
  }

  private openSshHost(alias: string): void {
    const host = new SshHost(alias, {
      daemonId: this.daemonId,
      cacheDir: join(this.paths.home, 'sync-cache'),
      ...(this.settings.sshConfigPath !== undefined && { sshConfigPath: this.settings.sshConfigPath }),
    });
    this.sshHosts.set(alias, host);
    host.on('change', () => {
      // A probe may answer after the daemon stopped, or the host left the pool.
      if (this.stopped || this.sshHosts.get(alias) !== host) return;
      this.saveHost(alias, 'ssh', host.state, host.lastInventory);
      if (host.offer) this.watchUtilization(host.offer);
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

  // SLURM clusters: SLURM schedules their runs; the daemon hands runs over, polls, and mirrors output.

  private addSlurmCluster(name: string, settings: SlurmClusterSettings): HostView {
    if (settings.via !== undefined) {
      const known = this.sshAliases();
      if (!known.includes(settings.via)) throw new RequestError('invalid-request', `--via ${settings.via} is not a Host in your SSH config${known.length ? ` (it has ${known.join(', ')})` : ''}`);
    }
    if (settings.workdirRoot !== undefined && !/^\/[A-Za-z0-9_./+@,:-]*$/.test(settings.workdirRoot)) {
      throw new RequestError('invalid-request', `--workdir-root ${JSON.stringify(settings.workdirRoot)}: give an absolute path on the cluster's shared filesystem, of letters, digits and _ . / + @ , : - (sbatch reads it unquoted)`);
    }
    if (settings.via === undefined && !this.settings.env['PATH']?.split(':').some((dir) => existsSync(join(dir, 'sbatch')))) {
      throw new RequestError('invalid-request', `sbatch is not on this machine's PATH: give the cluster's login node with --via ALIAS`);
    }
    this.saveHost(name, 'slurm', { state: 'connecting' });
    this.store.transaction(() => this.store.setHostSettings(name, settings));
    this.openSlurmCluster(name, settings);
    return this.hosts().find((host) => host.name === name)!;
  }

  private openSlurmCluster(name: string, settings: SlurmClusterSettings): void {
    const cluster = new SlurmCluster(name, settings, {
      daemonId: daemonIdOf(hostname(), this.paths.home),
      cacheDir: join(this.paths.home, 'sync-cache'),
      env: this.settings.env,
      ...(this.settings.sshConfigPath !== undefined && { sshConfigPath: this.settings.sshConfigPath }),
    });
    this.slurmClusters.set(name, cluster);
    cluster.on('change', () => {
      if (this.stopped || this.slurmClusters.get(name) !== cluster) return;
      this.saveSlurmHost(cluster);
      if (cluster.reachable) {
        this.handToSlurm();
        this.pollSlurm(cluster);
      }
    });
    cluster.start();
  }

  /** The cluster a run was placed on (its only host), when that is a SLURM cluster of the pool. */
  private slurmClusterOf(job: JobRow): SlurmCluster | undefined {
    return job.plan.hosts?.length === 1 ? this.slurmClusters.get(job.plan.hosts[0]!) : undefined;
  }

  private slurmView(name: string): NonNullable<HostView['slurm']> {
    const cluster = this.slurmClusters.get(name);
    const settings = (cluster?.settings ?? this.store.hostSettings(name) ?? {}) as SlurmClusterSettings;
    return {
      ...(settings.via !== undefined && { via: settings.via }),
      ...(cluster?.root !== undefined && { workdirRoot: cluster.root }),
      ...(cluster?.lastView ?? { partitions: [], nodes: [], jobs: [] }),
    };
  }

  private saveSlurmHost(cluster: SlurmCluster): void {
    const nodes = cluster.lastView?.nodes ?? [];
    const inventory: HostInventory = {
      name: cluster.name,
      os: `SLURM${cluster.settings.via ? ` via ${cluster.settings.via}` : ''}`,
      cpus: nodes.reduce((sum, node) => sum + node.cpus, 0),
      memoryBytes: nodes.reduce((sum, node) => sum + node.memoryMiB, 0) * 2 ** 20,
      gpus: [],
      foreignProcesses: [],
      state: 'up',
      probedAt: Date.now(),
    };
    this.saveHost(cluster.name, 'slurm', cluster.state, inventory);
  }

  /**
   * Hands the queued runs of SLURM clusters that are not handed over yet to sbatch: one SLURM
   * job per job of a submission (a sweep's points are one array), upstream jobs first so that
   * `needs` become afterok dependencies on their SLURM ids. One hand-off at a time.
   */
  private handToSlurm(): void {
    // Without a cluster there is nothing to hand over (and reading the whole queue for it would
    // cost every submission time in proportion to the queue's length).
    if (this.slurmClusters.size === 0) return;
    if (this.handing) {
      this.handAgain = true;
      return;
    }
    this.handing = true;
    void this.handQueued().finally(() => {
      this.handing = false;
      if (this.handAgain && !this.stopped) {
        this.handAgain = false;
        this.handToSlurm();
      }
    });
  }

  private async handQueued(): Promise<void> {
    const groups = new Map<string, JobRow[]>();
    for (const row of this.store.jobs({ states: ['queued'] }).sort((a, b) => a.id - b.id)) {
      const cluster = this.slurmClusterOf(row);
      if (row.slurmId !== null || !cluster) continue;
      if (!cluster.reachable) {
        // Handed over once it is back (its 'change' event).
        const { state, message } = cluster.state;
        const reason = `waiting for ${cluster.name}, which is ${state === 'connecting' ? 'being connected to' : `${state}${message ? `: ${message}` : ''}`}`;
        if (this.waitingReasons.get(row.id) !== reason) {
          this.waitingReasons.set(row.id, reason);
          this.emitJob(row.id);
        }
        continue;
      }
      const key = sweepGroup(row);
      groups.set(key, [...(groups.get(key) ?? []), row]);
    }
    const pending = [...groups.values()];
    while (pending.length && !this.stopped) {
      // Upstream first: a group whose needs are all handed over (or settled) goes next.
      const ready = pending.findIndex((group) => group.every((row) => row.needs.every((need) => !pending.some((other) => other !== group && other.some((job) => job.id === need)))));
      const group = pending.splice(Math.max(0, ready), 1)[0]!;
      await this.handGroup(group);
    }
  }

  private async handGroup(group: JobRow[]): Promise<void> {
    const first = group[0]!;
    const cluster = this.slurmClusterOf(first)!;
    const dependsOn = new Set<string>();
    for (const need of new Set(group.flatMap((row) => row.needs))) {
      const upstream = this.store.job(need);
      if (!upstream || upstream.state === 'succeeded') continue;
      if (FINAL_STATES.includes(upstream.state) || upstream.slurmId === null || this.slurmClusterOf(upstream) !== cluster) {
        const name = `${upstream.specName}/${upstream.key}`;
        const why = FINAL_STATES.includes(upstream.state) ? neededEndedReason(name, upstream.state) : `it needs ${name}, which is not on ${cluster.name}`;
        this.settleUnhanded(group, 'skipped', why);
        return;
      }
      // An array's whole job: afterok on it waits for every task.
      dependsOn.add(upstream.slurmId.split('_')[0]!);
    }
    const outputDir = cluster.outputDir(first.submissionId, first.plan.job);
    let slurmId: string;
    let job: SbatchJob;
    try {
      if (!outputDir) throw new Error(`${cluster.name} has not been reached yet`);
      if (!existsSync(first.plan.workdir)) throw new Error(`the workdir ${first.plan.workdir} does not exist`);
      const workdir = await cluster.prepareWorkdir(first.plan.workdir);
      job = {
        name: `${first.specName}.${first.plan.job}`,
        runs: group.map((row) => ({ runId: row.id, plan: row.plan, command: slurmCommand(row.plan) })),
        workdir,
        outputDir,
        dependsOn: [...dependsOn],
        ...(first.plan.setup !== undefined && { setup: first.plan.setup }),
      };
      slurmId = await cluster.submit(job);
    } catch (error) {
      if (this.stopped) return;
      const message = error instanceof Error ? error.message : String(error);
      // Unreachable now: tried again once it is back. Anything else is this submission's fault.
      if (!cluster.reachable) return;
      this.settleUnhanded(group, 'failed', `could not submit to ${cluster.name}: ${message}`);
      return;
    }
    if (this.stopped) return;
    const array = isArrayJob(job);
    const late: string[] = [];
    await new Promise<void>((resolve) =>
      this.commitSoon(
        (now) => {
          group.forEach((row, index) => {
            const id = array ? `${slurmId}_${index}` : slurmId;
            const current = this.store.job(row.id);
            // Cancelled while sbatch ran: it goes at once.
            if (!current || FINAL_STATES.includes(current.state) || current.cancelRequested) late.push(id);
            this.store.updateJob(row.id, { slurmId: id });
            this.store.addEvent(row.id, 'handed', `submitted to ${cluster.name} as SLURM job ${id}`, now);
          });
        },
        () => resolve(),
        { schedule: false },
      ),
    );
    if (late.length) void cluster.cancel(late).catch(() => undefined);
    for (const row of group) {
      this.waitingReasons.set(row.id, `SLURM: submitted as job ${array ? `${slurmId}_${group.indexOf(row)}` : slurmId}`);
      this.emitJob(row.id);
    }
  }

  /** Ends runs that were never handed to SLURM. */
  private settleUnhanded(group: JobRow[], state: 'failed' | 'skipped', reason: string): void {
    this.commitSoon(
      (now) => {
        for (const row of group) {
          if (this.store.job(row.id)?.state !== 'queued') continue;
          this.store.updateJob(row.id, { state, reason, endedAt: now });
          this.store.addEvent(row.id, state, reason, now);
        }
      },
      () => {
        for (const row of group) {
          this.waitingReasons.delete(row.id);
          this.emitJob(row.id);
        }
        // What needed them is skipped in turn.
        this.handToSlurm();
      },
      { schedule: false },
    );
  }

  /**
   * One poll of a cluster, whoever is watching: the states of its runs, their new output (into
   * the attempts' local folders, so logs and metrics are read as for any attempt), and the
   * partitions, nodes and jobs the clusters tree shows. Polls of one cluster never overlap.
   */
  private pollSlurm(cluster: SlurmCluster): void {
    if (this.stopped || this.polling.has(cluster.name) || !cluster.reachable) return;
    const tracked = this.store.jobs({ states: ['queued', 'running'] }).filter((row) => row.slurmId !== null && this.slurmClusterOf(row) === cluster);
    const tasks: PolledAttempt[] = [];
    for (const row of tracked) {
      const dir = cluster.outputDir(row.submissionId, row.plan.job);
      if (!dir) continue;
      // A run watched since a restart keeps the folder it was given (an earlier Drover's layout, maybe).
      const files = attemptFiles(this.live.get(row.id)?.dir ?? this.slurmAttemptDir(row));
      tasks.push({ key: String(row.id), dir: `${dir}/${row.slurmId!.split('_')[1] ?? '0'}`, logOffset: fileSize(files.log), metricsOffset: fileSize(files.metrics), cellsOffset: fileSize(files.cells) });
    }
    const missing = [...(this.slurmMissing.get(cluster.name) ?? [])];
    const inventory = Date.now() - cluster.inventoryAt >= Math.max(SLURM_INVENTORY_MS, this.settings.slurmPollMs);
    this.polling.add(cluster.name);
    cluster
      .poll(tasks, missing, inventory)
      .then((poll) => {
        if (inventory) cluster.inventoryAt = Date.now();
        if (this.stopped) return;
        const listed = new Map(poll.jobs.map((job) => [job.id, job]));
        const accounted = new Map((poll.accounted ?? []).map((job) => [job.id, job]));
        const stillMissing = new Set<string>();
        for (const row of tracked) {
          const current = this.store.job(row.id);
          if (!current || FINAL_STATES.includes(current.state)) continue;
          const record = listed.get(row.slurmId!) ?? accounted.get(row.slurmId!);
          if (!record) {
            if (!missing.includes(row.slurmId!)) stillMissing.add(row.slurmId!);
            else this.slurmEnded(cluster, current, undefined, poll.logs.get(String(row.id)), {
              kind: 'ended', outcome: 'lost', exitCode: null, signal: null,
              description: `SLURM no longer lists job ${row.slurmId}${poll.accounted === undefined ? ' and keeps no accounting (sacct) to say how it ended' : ''}`,
            });
            continue;
          }
          this.slurmEnded(cluster, current, record, poll.logs.get(String(row.id)), standingOf(record));
        }
        this.slurmMissing.set(cluster.name, stillMissing);
        const view = { partitions: cluster.lastView?.partitions ?? [], nodes: cluster.lastView?.nodes ?? [], ...poll.view };
        if (JSON.stringify(view) !== JSON.stringify(cluster.lastView)) {
          cluster.lastView = view;
          this.saveSlurmHost(cluster);
        }
      })
      .catch((error: unknown) => {
        if (this.stopped) return;
        // The cluster is unreachable or squeue failed: runs go on there, and are read again next time.
        this.recordObservation(() => this.store.addEvent(null, 'slurm-poll-failed', `${cluster.name}: ${error instanceof Error ? error.message : String(error)}`, Date.now()));
      })
      .finally(() => this.polling.delete(cluster.name));
  }

  /** Where a SLURM run's output is mirrored: the folder of its (only) attempt. */
  private slurmAttemptDir(row: JobRow): string {
    return this.attemptDir(row.id, Math.max(1, row.attempts));
  }

  /** Applies what one poll said of a run: why it waits, that it started, its new output, how it ended. */
  private slurmEnded(cluster: SlurmCluster, row: JobRow, record: SlurmJob | undefined, output: PollAnswer | undefined, standing: RunStanding): void {
    if (standing.kind === 'queued') {
      if (row.state === 'queued' && this.waitingReasons.get(row.id) !== standing.reason) {
        this.waitingReasons.set(row.id, standing.reason);
        this.emitJob(row.id);
      }
      return;
    }
    const ran = standing.kind === 'running' || record?.startTime !== undefined || (output?.log.length ?? 0) > 0;
    if (standing.kind === 'ended' && row.state === 'queued' && !ran) {
      const state: JobState = standing.skipped ? 'skipped' : standing.outcome === 'cancelled' ? 'cancelled' : 'failed';
      this.waitingReasons.delete(row.id);
      this.commitSoon(
        (now) => {
          this.store.updateJob(row.id, { state, reason: standing.description, endedAt: now, exitCode: standing.exitCode, signal: standing.signal });
          this.store.addEvent(row.id, state, standing.description, now);
        },
        () => this.emitJob(row.id),
        { schedule: false },
      );
      return;
    }
    let live = this.live.get(row.id);
    if (!live) {
      // Started: it gets its attempt now, on the cluster, with the time SLURM says it started.
      const dir = this.slurmAttemptDir(row);
      const startedAt = record?.startTime !== undefined ? record.startTime * 1000 : Date.now();
      const allocation = { jobId: row.id, host: cluster.name, cpus: row.plan.resources.cpus ?? DEFAULT_CPUS, memoryBytes: row.plan.resources.memoryBytes ?? 0, gpus: [] };
      live = this.liveAttempt(row, allocation, 1, dir, startedAt);
      live.slurm = cluster;
      this.live.set(row.id, live);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      appendFileSync(attemptFiles(dir).log, '');
      const nodes = standing.kind === 'running' ? standing.nodes : (record?.nodes ?? '');
      this.waitingReasons.delete(row.id);
      this.commitSoon(
        (now) => {
          this.store.insertAttempt({ jobId: row.id, number: 1, host: cluster.name, gpus: [], pid: null, processStart: null, outcome: 'running', exitCode: null, signal: null, startedAt, endedAt: null, dir });
          this.store.updateJob(row.id, { state: 'running', attempts: 1, reason: null, startedAt });
          this.store.addEvent(row.id, 'started', `SLURM job ${row.slurmId} running on ${nodes || cluster.name}`, now);
        },
        () => this.emitJob(row.id),
        { schedule: false },
      );
    }
    const files = attemptFiles(live.dir);
    if (output?.log.length) appendFileSync(files.log, output.log);
    if (output?.metrics.length) appendFileSync(files.metrics, output.metrics);
    this.drain(live);
    const more = (output?.log.length ?? 0) >= REMOTE_READ_LIMIT || (output?.metrics.length ?? 0) >= REMOTE_READ_LIMIT;
    if (standing.kind === 'ended' && !more) {
      this.finish(live, { exitCode: standing.exitCode, signal: standing.signal, outcome: standing.outcome, failure: standing.description, lost: standing.outcome === 'lost' });
    }
  }

  /** The sbatch scripts a submission to a SLURM cluster would hand over, with placeholders for the ids it would get. */
  sbatchPreview(params: SubmitParams): { job: string; script: string }[] {
    const name = params.host ?? (this.slurmClusters.size === 1 ? [...this.slurmClusters.keys()][0]! : undefined);
    const cluster = name === undefined ? undefined : this.slurmClusters.get(name);
    if (!cluster) {
      const known = [...this.slurmClusters.keys()];
      throw new RequestError('invalid-request', known.length ? `name the SLURM cluster with --host (${known.join(', ')})` : 'no SLURM cluster in the pool: add one with `drover hosts add NAME --slurm [--via ALIAS]`');
    }
    const { model, plans } = this.planSubmission({ ...params, host: cluster.name });
    const groups = new Map<string, RunPlan[]>();
    for (const plan of plans) groups.set(plan.job, [...(groups.get(plan.job) ?? []), plan]);
    let runId = 0;
    return [...groups].map(([job, runs]) => {
      const outputDir = cluster.outputDir(0, job) ?? `/SHARED_ROOT/runs/0-${job}`;
      const workdir = cluster.settings.via === undefined ? runs[0]!.workdir : `${cluster.root ?? '/SHARED_ROOT'}/projects/${projectIdOf(runs[0]!.workdir, cluster.name)}/VERSION`;
      try {
        const script = sbatchScript({
          name: `${model.name}.${job}`,
          runs: runs.map((plan) => ({ runId: ++runId, plan, command: slurmCommand(plan) })),
          workdir,
          outputDir,
          dependsOn: [...new Set(runs.flatMap((plan) => plan.needs.map((key) => `<${plans.find((other) => other.key === key)!.job}>`)))],
          ...(runs[0]!.setup !== undefined && { setup: runs[0]!.setup }),
        });
        return { job, script };
      } catch (error) {
        if (error instanceof SbatchError) throw new RequestError('invalid-spec', `${params.specPath ?? 'spec'}: job ${job}: ${error.message}`);
        throw error;
      }
    });
  }

  /**
   * Records a host's state and what it last offered (none yet: a host never reached) and tells
   * clients. Local and SSH hosts alike.
   */
  private saveHost(name: string, kind: HostView['kind'], status: { state: HostView['state']; message?: string | undefined }, inventory?: HostInventory): void {
    const saved = this.recordObservation(() => {
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
      });
      // Each probe is a sample of its GPUs over time, durable with the host's state.
      if (inventory?.gpus.length) this.store.gpuSamples.record(name, inventory.probedAt, inventory.gpus, inventory.probedAt - this.settings.gpuSampleRetentionMs);
    });
    if (!saved) return;
    const view = this.hosts().find((host) => host.name === name);
    if (view) this.emit('hosts', 'drover/event/host', view);
  }

  /**
   * Writes what the daemon saw on its own, outside any request (a host's state, a failed poll,
   * old samples pruned). Should the store refuse it (a full disk), the observation is dropped and
   * said in the daemon's log, once per cause, and the daemon goes on: what was written before is
   * intact, and the next observation is written once there is room. False when dropped.
   */
  private recordObservation(work: () => void): boolean {
    try {
      this.store.transaction(work);
      this.droppedBecause = undefined;
      return true;
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      if (error.message !== this.droppedBecause) console.error(`drover daemon: ${error.message}`);
      this.droppedBecause = error.message;
      return false;
    }
  }

  // Scheduling

  /** Schedules once after the current burst of work (many submissions or exits make one pass). */
  requestSchedule(): void {
    this.commitSoon();
  }

  /**
   * Group commit: the writes asked for while work keeps arriving (submissions, attempts that
   * ended), followed by a scheduling pass, go to disk in one transaction, each in a savepoint of
   * its own so that one failing write fails only its request. `done` runs once the transaction
   * is on disk, so nothing is acknowledged (and no process started) before it is durable.
   */
  private commitSoon(work?: (now: number) => void, done?: (error?: Error) => void, options: { schedule: boolean } = { schedule: true }): void {
    if (this.stopped) {
      done?.(new Error('the daemon is stopping'));
      return;
    }
    if (!this.batch) {
      this.batch = [];
      this.batchOpenedAt = performance.now();
      setImmediate(() => this.commitWhenQuiet());
    }
    this.batchGrew = true;
    this.scheduleWanted ||= options.schedule;
    if (work || done) this.batch.push({ work: work ?? (() => undefined), done: done ?? (() => undefined) });
  }

  /**
   * Commits once a whole turn of the event loop has passed with nothing added to the batch.
   * Clients' requests are handled one per turn, so a burst of them (1,000 pipelined submissions)
   * would otherwise make a commit, a sync and a pass over the whole queue each; an idle daemon
   * waits one empty turn. A batch waits GROUP_COMMIT_MAX_MS at most.
   */
  private commitWhenQuiet(): void {
    if (!this.batch) return;
    if (this.batchGrew && performance.now() - this.batchOpenedAt < GROUP_COMMIT_MAX_MS) {
      this.batchGrew = false;
      setImmediate(() => this.commitWhenQuiet());
      return;
    }
    this.commit();
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
      }, { deferred: true });
    } catch (error) {
      for (const { done } of batch) done(error instanceof Error ? error : new Error(String(error)));
      this.recoverFromFailedCommit();
      return;
    }
    // Answered and carried out once on disk; meanwhile the daemon goes on, and whatever commits
    // before the sync starts shares it. Settled in commit order, each once.
    const settle = (error?: Error) => {
      if (!this.unsettled.delete(settle)) return;
      if (!error) {
        batch.forEach(({ done }, index) => done(failures.get(index)));
        this.carryOut(pass);
        return;
      }
      // Whether it reached the disk is unknown: nothing of it is acknowledged or started, and the
      // attempts it began are settled from what the store and their folders say.
      for (const { done } of batch) done(error);
      for (const start of pass.starting) this.live.delete(start.job.id);
      this.recoverFromFailedCommit();
    };
    this.unsettled.add(settle);
    this.store.durable().then(() => settle(), settle);
  }

  /** Makes every commit durable now and settles it: for a stopping daemon, which cannot wait. */
  private settleNow(): void {
    if (this.unsettled.size === 0) return;
    let error: Error | undefined;
    try {
      this.store.syncNow();
    } catch (failure) {
      error = failure instanceof Error ? failure : new Error(String(failure));
    }
    for (const settle of [...this.unsettled]) settle(error);
  }

  /**
   * Decides what starts, waits or is skipped, and records it, inside the caller's transaction.
   * Processes are started only after that transaction is on disk (see carryOut), so a crash can
   * never leave a process running that the state does not know about.
   */
  private schedulePass(now: number): SchedulePass {
    const pass: SchedulePass = { starting: [], changed: [], again: false };
    // In no particular order: the policy ranks the queue itself.
    const queued = [...this.queue.values()];
    if (queued.length === 0) return pass;
    const states = new Map<number, { state: JobState; key: string }>();
    for (const job of queued) {
      for (const need of job.needs) {
        if (states.has(need)) continue;
        const needed = this.store.job(need);
        // A sweep run stopped early ended as its sweep meant it to: what needs it may go on.
        if (needed) states.set(need, { state: needed.state === 'stopped' ? 'succeeded' : needed.state, key: `${needed.specName}/${needed.key}` });
      }
    }
    const hosts = this.capacities();
    const decisions = schedule({
      now,
      queued: queued.map((job) => this.policyView(job)),
      running: [...this.live.values()].filter((attempt) => !attempt.slurm).map((attempt) => attempt.allocation),
      hosts,
      states,
      // Fair share orders the jobs of different users only.
      ...(queued.some((job) => job.user !== queued[0]!.user) && { recentGpuHours: this.recentGpuHours(now) }),
      ...(this.settings.policy && { options: this.settings.policy }),
    });
    for (const { jobId, reason } of decisions.skip) {
      this.store.updateJob(jobId, { state: 'skipped', reason, endedAt: now });
      this.store.addEvent(jobId, 'skipped', reason, now);
      this.forget(jobId);
      pass.changed.push(jobId);
    }
    for (const [jobId, policyReason] of decisions.waiting) {
      const reason = this.withLeaseHolders(this.queue.get(jobId)!, policyReason);
      if (this.waitingReasons.get(jobId) === reason) continue;
      this.waitingReasons.set(jobId, reason);
      pass.changed.push(jobId);
    }
    for (const allocation of decisions.start) {
      // Still queued: each decision names a job once, and it leaves the queue below.
      const job = this.queue.get(allocation.jobId)!;
      const number = job.attempts + 1;
      const dir = this.attemptDir(job.id, number);
      this.store.insertAttempt({
        jobId: job.id, number, host: allocation.host, gpus: allocation.gpus, pid: null, processStart: null,
        outcome: 'running', exitCode: null, signal: null, startedAt: now, endedAt: null, dir,
      });
      this.store.updateJob(job.id, { state: 'running', attempts: number, reason: null, notBefore: null, ...(job.startedAt === null && { startedAt: now }) });
      this.forget(job.id);
      pass.starting.push({ job, allocation, number, dir });
      // Claimed now, so the rest of this pass (and the next) sees the resources as taken; it is
      // launching from here on, so nothing takes it for a process that went away.
      this.live.set(job.id, { ...this.liveAttempt(job, allocation, number, dir, now), launching: true });
    }
    pass.again = decisions.skip.length > 0;
    this.armRetryTimer(queued, now);
    return pass;
  }

  /**
   * A queued job as the policy takes it. A pass looks at every queued job, so this is made once
   * per row: a job's row is replaced in the queue whenever the job changes.
   */
  private policyView(job: JobRow): QueuedJob {
    let view = this.policyViews.get(job);
    if (!view) {
      view = { id: job.id, plan: job.plan, group: sweepGroup(job), needs: job.needs, notBefore: job.notBefore, user: job.user, submittedAt: job.createdAt, priority: job.priority };
      this.policyViews.set(job, view);
    }
    return view;
  }

  /** Each user's recent GPU-hours (fair share): ended attempts as last read, and the live ones now. */
  private recentGpuHours(now: number): Map<string, number> {
    if (!this.endedGpuUse || now - this.endedGpuUse.readAt > USAGE_REFRESH_MS) {
      // Use older than eight half-lives weighs under 0.4 %.
      this.endedGpuUse = { uses: this.store.gpuUsesEndedSince(now - 8 * DEFAULT_USAGE_HALF_LIFE_MS), readAt: now };
    }
    const live = [...this.live.values()].map((attempt): GpuUse => ({ user: attempt.allocation.user ?? '', gpus: attempt.allocation.gpus.length, startedAt: attempt.allocation.startedAt ?? now, endedAt: null }));
    return recentGpuHours([...this.endedGpuUse.uses, ...live], now);
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
      // A GPU another daemon leased there is as taken as one a foreign process holds.
      const leased = leasedByOthers(offer.gpuLeases, this.daemonId);
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
          foreign: leased.has(gpu.uuid) || offer.foreignProcesses.some(
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
      if (attempt.pid === null && this.store.job(jobId)?.state !== 'running') this.live.delete(jobId);
    }
    clearTimeout(this.recoveryTimer);
    this.recoveryTimer = setTimeout(() => this.readopt(false), RECOVERY_DELAY_MS);
  }

  private reloadQueue(): void {
    this.queue.clear();
    this.waitingReasons.clear();
    for (const row of this.store.jobs({ states: ['queued'] })) if (!this.slurmClusterOf(row)) this.queue.set(row.id, row);
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
    let next = Infinity;
    for (const { notBefore } of queued) if (notBefore !== null && notBefore > now && notBefore < next) next = notBefore;
    clearTimeout(this.retryTimer);
    if (Number.isFinite(next)) this.retryTimer = setTimeout(() => this.requestSchedule(), next - now);
  }

  // Processes

  private liveAttempt(job: JobRow, allocation: Allocation, number: number, dir: string, startedAt: number): LiveAttempt {
    const points: MetricPoint[] = [];
    const keep = (found: MetricPoint[]) => points.push(...found);
    return {
      jobId: job.id, number, dir, pid: null, processStart: null,
      allocation: { ...allocation, group: sweepGroup(job), user: job.user, startedAt, ...(job.plan.timeoutSeconds !== undefined && { timeLimitMs: job.plan.timeoutSeconds * 1000 }) },
      logOffset: 0, metricsOffset: 0, cellsOffset: 0, points,
      outputMetrics: new MetricLineReader(keep), fileMetrics: new MetricLineReader(keep, { parse: parseMetricJson }),
    };
  }

  private launch(job: JobRow, live: LiveAttempt): void {
    if (live.allocation.host !== LOCAL_HOST) {
      void this.launchRemote(job, live);
      return;
    }
    const gpus = this.gpuUuids(live);
    if (gpus.length === 0 || process.platform === 'win32') {
      this.launchLocal(job, live);
      return;
    }
    // Other daemons on this machine (another user's, another home's) must not get these GPUs.
    live.launching = true;
    takeLocalLeases(this.leaseOwner(live), gpus, this.settings.env).then(
      (refused) => {
        if (this.stopped || this.live.get(job.id) !== live) return;
        if (refused) this.leaseRefused(live, refused.held);
        else this.launchLocal(job, live);
      },
      (error: unknown) => {
        live.launching = false;
        if (this.live.get(job.id) === live) this.finish(live, { exitCode: null, signal: null, failure: `could not take the GPU leases: ${error instanceof Error ? error.message : String(error)}` });
      },
    );
  }

  private launchLocal(job: JobRow, live: LiveAttempt): void {
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
    const command = job.plan.command ?? notebookCommand({ notebook: job.plan.notebook!, driver: notebookDriverPath(), events: files.cells, output: files.notebook });
    if (job.plan.notebook !== undefined) Object.assign(env, notebookEnv(job.plan.params));
    if (!existsSync(job.plan.workdir)) {
      this.finish(live, { exitCode: null, signal: null, failure: `could not start: the workdir ${job.plan.workdir} does not exist` });
      return;
    }
    live.launching = true;
    this.launcher.launch(
      { command, cwd: job.plan.workdir, dir, env },
      {
        started: (pid, processStart) => {
          this.started(live, pid, processStart);
          // The leases now last as long as the run, not the daemon.
          const gpus = this.gpuUuids(live);
          if (gpus.length > 0 && process.platform !== 'win32') void runLeaseScript(setLeasesScript(this.leaseOwner(live), gpus, pid), this.settings.env).catch(() => undefined);
        },
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
      const notebook = job.plan.notebook;
      const command =
        job.plan.command ??
        notebookCommand({ notebook: notebook!, driver: `${remoteDir}/${NOTEBOOK_DRIVER}`, events: `${remoteDir}/${REMOTE_FILES.cells}`, output: `${remoteDir}/${REMOTE_FILES.notebook}` });
      const env: Record<string, string> = {
        ...job.plan.env,
        ...(notebook !== undefined && notebookEnv(job.plan.params)),
        CUDA_VISIBLE_DEVICES: live.allocation.gpus.join(','),
        DROVER_RUN_ID: String(job.id),
        DROVER_ATTEMPT: String(live.number),
        DROVER_METRICS: `${remoteDir}/metrics.jsonl`,
        DROVER_WORKDIR_VERSION: version.treeHash,
      };
      const gpus = this.gpuUuids(live);
      // The driver goes with the run, so a host needs only Python with Jupyter, not Drover.
      const files: Record<string, string> = notebook !== undefined ? { [NOTEBOOK_DRIVER]: readFileSync(notebookDriverPath(), 'utf8') } : {};
      const launched = await host.launch({ dir: remoteDir, cwd: version.remoteDir, command, env, files, ...(gpus.length > 0 && { leases: { owner: this.leaseOwner(live), gpus } }) });
      if (this.live.get(job.id) !== live) return;
      if ('held' in launched) {
        this.leaseRefused(live, launched.held);
        return;
      }
      const { pid } = launched;
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

  // Early stopping (see scheduler/early-stop.ts)

  /** After new points of its sweep's judged metric: stops the run if its sweep's rule says it cannot win. */
  private judgeEarlyStop(attempt: LiveAttempt, points: readonly MetricRow[]): void {
    if (attempt.stopping || this.live.get(attempt.jobId) !== attempt) return;
    const job = this.store.job(attempt.jobId);
    const rule = job?.plan.earlyStop;
    if (!job || !rule || !points.some((point) => point.name === rule.metric && point.step !== null)) return;
    const sweep = this.store.jobs({ submissionId: job.submissionId }).filter((other) => other.plan.job === job.plan.job);
    const runs = sweep.map((other) => ({ id: other.id, points: stepSeries(this.store.metrics(other.id), rule.metric) }));
    const verdict = earlyStopVerdict(rule, job.id, runs, attempt.judgedUpTo);
    attempt.judgedUpTo = runs.find((run) => run.id === job.id)?.points.at(-1)?.step ?? attempt.judgedUpTo;
    if (verdict === undefined) return;
    attempt.stoppedEarly = verdict;
    this.commitSoon((now) => this.store.addEvent(job.id, 'stopping-early', verdict, now), undefined, { schedule: false });
    this.stopAttempt(attempt, 'stopped-early');
  }

  /** Notes what a probe saw of the GPUs our runs hold there; a run whose idle flag changed is news. */
  private watchUtilization(inventory: HostInventory): void {
    const now = Date.now();
    for (const attempt of this.live.values()) {
      if (attempt.allocation.host !== inventory.name || attempt.allocation.gpus.length === 0 || attempt.launching) continue;
      const utilization = attempt.allocation.gpus.map((index) => inventory.gpus.find((gpu) => gpu.index === index)?.utilizationPercent);
      if (this.idleGpus.observe(attempt.jobId, utilization, inventory.probedAt, now)) this.emitJob(attempt.jobId);
    }
  }

  // GPU leases (see hosts/gpu-leases.ts)

  private leaseOwner(live: LiveAttempt): LeaseOwner {
    return leaseOwner(this.daemonId, hostname(), live.jobId, live.number);
  }

  /** The UUIDs of an attempt's GPUs, which name their leases. */
  private gpuUuids(live: LiveAttempt): string[] {
    const inventory = this.inventoryOf(live.allocation.host);
    return live.allocation.gpus.flatMap((index) => inventory?.gpus.find((gpu) => gpu.index === index)?.uuid ?? []);
  }

  private inventoryOf(host: string): HostInventory | undefined {
    return host === LOCAL_HOST ? this.host : this.sshHosts.get(host)?.lastInventory;
  }

  /** A job waiting for GPUs says which other daemons hold the ones it could use. */
  private withLeaseHolders(job: JobRow, reason: string): string {
    if (job.plan.resources.gpus.count === 0) return reason;
    const names = job.plan.hosts ?? [LOCAL_HOST, ...this.sshHosts.keys()];
    const holders = describeLeaseHolders(
      names.flatMap((name) => {
        const inventory = this.inventoryOf(name);
        return inventory ? [{ name, gpus: inventory.gpus, leases: leasedByOthers(inventory.gpuLeases, this.daemonId) }] : [];
      }),
    );
    return holders ? `${reason} (${holders})` : reason;
  }

  /**
   * Another daemon took one of the attempt's GPUs first (it had not been seen yet by a probe):
   * the attempt never started, so it is forgotten and the job waits again, saying who holds it.
   */
  private leaseRefused(live: LiveAttempt, held: GpuLease[]): void {
    live.launching = false;
    if (live.allocation.host === LOCAL_HOST && this.host) this.host = { ...this.host, gpuLeases: mergeLeases(this.host.gpuLeases, held) };
    const inventory = this.inventoryOf(live.allocation.host);
    const holders =
      describeLeaseHolders([{ name: live.allocation.host, gpus: inventory?.gpus ?? [], leases: new Map(held.map((lease) => [lease.gpu, lease])) }]) ||
      `its GPUs on ${live.allocation.host} are leased by another Drover`;
    if (live.stopping) {
      this.finish(live, { exitCode: null, signal: null, failure: `not started: ${holders}` });
      return;
    }
    const { jobId, number } = live;
    clearTimeout(live.timeoutTimer);
    this.live.delete(jobId);
    rmSync(live.dir, { recursive: true, force: true });
    this.commitSoon(
      (now) => {
        this.store.deleteAttempt(jobId, number);
        this.store.updateJob(jobId, { state: 'queued', attempts: number - 1, ...(number === 1 && { startedAt: null }) });
        this.store.addEvent(jobId, 'lease-held', `attempt ${number} not started: ${holders}`, now);
        this.queue.set(jobId, this.store.job(jobId)!);
      },
      () => this.emitJob(jobId),
    );
  }

  /**
   * A local run watched again after a restart: its leases may still name the old daemon's pid
   * (it died before pointing them at the run), so they are taken again for the run's own.
   */
  private reassertLocalLeases(live: LiveAttempt): void {
    const gpus = this.gpuUuids(live);
    if (gpus.length === 0 || live.pid === null || process.platform === 'win32') return;
    const { jobId } = live;
    runLeaseScript(takeLeasesScript(this.leaseOwner(live), gpus, String(live.pid)), this.settings.env).then(
      (result) => {
        if (result.code === 0 || this.stopped) return;
        const holders = parseLeaseLines(result.stdout).map((lease) => describeLease(lease)).join('; ');
        this.commitSoon((now) => this.store.addEvent(jobId, 'lease-lost', `its GPU leases were taken over while no daemon watched it${holders ? ` (by ${holders})` : ''}`, now), undefined, { schedule: false });
      },
      () => undefined,
    );
  }

  /** Gives back an ended attempt's leases at once (were this lost, they go stale with its process). */
  private releaseLeases(attempt: LiveAttempt): void {
    const gpus = this.gpuUuids(attempt);
    if (gpus.length === 0) return;
    const owner = this.leaseOwner(attempt);
    if (attempt.allocation.host !== LOCAL_HOST) void this.sshHosts.get(attempt.allocation.host)?.releaseLeases(owner, gpus).catch(() => undefined);
    else if (process.platform !== 'win32') void runLeaseScript(releaseLeasesScript(owner, gpus), this.settings.env).catch(() => undefined);
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

  private stopAttempt(attempt: LiveAttempt, why: NonNullable<LiveAttempt['stopping']>): void {
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
   * Where an attempt's files go (its output, status, metrics): one folder under runs/, rather
   * than one per job holding one per attempt, since each new folder is a file-system inode a
   * short job's start waits for.
   */
  private attemptDir(jobId: number, number: number): string {
    return join(this.paths.runs, `${jobId}-${number}`);
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
      const live = this.liveAttempt(job, allocation, row.number, row.dir, row.startedAt);
      const cluster = this.slurmClusters.get(row.host);
      if (cluster) {
        // SLURM runs it: its polls say how it goes, and enforce its time limit.
        live.slurm = cluster;
        live.logOffset = row.logScanned;
        live.metricsOffset = row.metricsScanned;
        this.live.set(row.jobId, live);
        continue;
      }
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
        if (afterRestart) this.reassertLocalLeases(live);
      }
      live.logOffset = row.logScanned;
      live.metricsOffset = row.metricsScanned;
      live.cellsOffset = fileSize(attemptFiles(row.dir).cells);
      this.live.set(row.jobId, live);
      if (afterRestart) this.store.addEvent(row.jobId, 'readopted', `attempt ${row.number} (pid ${live.pid ?? 'unknown'}) watched again after a daemon restart`, Date.now());
      if (job.cancelRequested) this.stopAttempt(live, 'cancelled');
      else this.armTimeout(live, job, row.startedAt);
      this.checkAttempt(live);
    }
  }

  private pollLive(): void {
    for (const attempt of [...this.live.values()]) if (!attempt.remote && !attempt.slurm) this.checkAttempt(attempt);
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
        cellsOffset: fileSize(files.cells),
        ...(attempt.remote!.pendingSignal && { signal: attempt.remote!.pendingSignal }),
      };
    });
    this.polling.add(host.name);
    const ending: { attempt: LiveAttempt; exitStatus: number }[] = [];
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
          if (answer.cells.length) appendFileSync(files.cells, answer.cells);
          // Delivered, unless a stronger one was decided meanwhile.
          if (asked[index]!.signal === remote.pendingSignal) delete remote.pendingSignal;
          if (answer.pid !== null) attempt.pid = answer.pid;
          // Only once all its output is here: a long log takes several polls.
          const more = answer.log.length >= REMOTE_READ_LIMIT || answer.metrics.length >= REMOTE_READ_LIMIT || answer.cells.length >= REMOTE_READ_LIMIT;
          remote.alive = answer.alive || answer.exitStatus !== null || more;
          if (answer.exitStatus !== null && !more) ending.push({ attempt, exitStatus: answer.exitStatus });
          else this.checkAttempt(attempt);
        });
        return this.settleRemoteEnds(host, ending);
      })
      .catch(() => {
        // The link is down: the attempts go on there, and are read again once it is back.
      })
      .finally(() => this.polling.delete(host.name));
  }

  /**
   * Ended attempts on an SSH host: a notebook run's executed notebook is copied back first (it is
   * rewritten after each cell, so only its last version is fetched), then the status is written
   * down and the attempt settled as a local one.
   */
  private async settleRemoteEnds(host: SshHost, ending: { attempt: LiveAttempt; exitStatus: number }[]): Promise<void> {
    for (const { attempt, exitStatus } of ending) {
      const files = attemptFiles(attempt.dir);
      const job = this.store.job(attempt.jobId);
      if (job?.plan.notebook !== undefined) {
        const notebook = await host.readFile(`${attempt.remote!.dir!}/${REMOTE_FILES.notebook}`).catch(() => undefined);
        if (notebook) writeFileSync(files.notebook, notebook);
      }
      if (this.live.get(attempt.jobId) !== attempt) continue;
      writeWrapperFile(attempt.dir, attempt.pid, exitStatus);
      this.checkAttempt(attempt);
    }
  }

  /** Reads new output and, if the attempt has ended, settles it. */
  private checkAttempt(attempt: LiveAttempt): void {
    // A stopping daemon settles nothing: the next one will.
    if (this.stopped || this.live.get(attempt.jobId) !== attempt) return;
    const status = readExitStatus(attempt.dir);
    if (status) {
      // Its output is all written: finish reads the rest of it.
      this.finish(attempt, { exitCode: status.exitCode, signal: status.signal ?? null });
      return;
    }
    this.drain(attempt);
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
    const cells = readCellEventsFrom(files.cells, attempt.cellsOffset);
    const { events, bytes: cellBytes } = cells;
    if (cellBytes > 0 || final) {
      const offset = attempt.cellsOffset;
      attempt.cellsOffset += cellBytes;
      if (cellBytes > 0 || cells.size > 0) {
        this.emit('cells', 'drover/event/cells', { jobId: attempt.jobId, attempt: attempt.number, offset, nextOffset: attempt.cellsOffset, events, complete: final && attempt.cellsOffset >= cells.size }, attempt.jobId);
      }
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
      // Judged once the points are in the store, beside the other runs' points.
      (error) => {
        if (!error && !final) this.judgeEarlyStop(attempt, points);
      },
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
    this.idleGpus.forget(attempt.jobId);
    this.releaseLeases(attempt);
    // What the command left running in its group (stray background processes) ends with it.
    if (attempt.remote && attempt.pid !== null) this.endRemoteGroup(attempt.remote.host, attempt.pid);
    else if (attempt.pid !== null && groupAlive(attempt.pid)) this.endGroup(attempt.pid);
    const job = this.store.job(attempt.jobId)!;
    const now = Date.now();
    let outcome: AttemptOutcome;
    if (end.outcome) outcome = end.outcome;
    else if (job.cancelRequested) outcome = 'cancelled';
    else if (attempt.stopping === 'timed-out') outcome = 'timed-out';
    else if (attempt.stopping === 'stopped-early') outcome = 'stopped';
    else if (end.exitCode === 0) outcome = 'succeeded';
    else if (end.lost) outcome = 'lost';
    else outcome = 'failed';
    const described = outcome === 'stopped' ? `stopped early: ${attempt.stoppedEarly}` : describeEnd(outcome, end, job);
    const retriesLeft = job.plan.retries - (attempt.number - 1);
    // SLURM runs each task once (see the note in its sbatch script).
    const retry = !attempt.slurm && (outcome === 'failed' || outcome === 'timed-out' || outcome === 'lost') && retriesLeft > 0;
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
          const state: JobState = outcome === 'succeeded' || outcome === 'cancelled' || outcome === 'stopped' ? outcome : 'failed';
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
    this.watchUtilization(inventory);
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
    const idleSince = row.state === 'running' ? this.idleGpus.flaggedSince(row.id, Date.now()) : undefined;
    if (idleSince !== undefined) view.gpusIdleSince = idleSince;
    return view;
  }
}

/** A metric's points that have a step, in step order (the last value reported for a step counts). */
function stepSeries(series: readonly MetricSeries[], name: string): StepValue[] {
  const byStep = new Map<number, number>();
  for (const point of series.find((candidate) => candidate.name === name)?.points ?? []) if (point.step !== null) byStep.set(point.step, point.value);
  return [...byStep].map(([step, value]) => ({ step, value })).sort((a, b) => a.step - b.step);
}

/** The runs that share a sweep's max_parallel: one job of one submission. */
/** What a SLURM task runs. Notebooks need their per-cell driver and its events mirrored, which SLURM clusters do not do yet. */
function slurmCommand(plan: RunPlan): string {
  if (plan.command !== undefined) return plan.command;
  throw new SbatchError(`${plan.notebook} is a notebook, and notebooks do not run on SLURM clusters yet: run it on the local host or an SSH host`);
}

function sweepGroup(job: JobRow): string {
  return `${job.submissionId}:${job.plan.job}`;
}

function describeEnd(outcome: AttemptOutcome, end: AttemptEnd, job: JobRow): string {
  if (outcome === 'succeeded') return 'succeeded';
  if (outcome === 'cancelled') return 'cancelled';
  if (outcome === 'timed-out' && end.failure) return end.failure;
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

/**
 * The whole cell events from `offset`. One event (an output with a large image) may be longer than
 * a log read, so the read grows until it holds a line end or reaches the file's end.
 */
function readCellEventsFrom(file: string, offset: number): { events: CellEvent[]; bytes: number; size: number } {
  for (let limit = LOG_READ_LIMIT; ; limit *= 4) {
    const read = readUtf8(file, offset, limit);
    const { events, bytes } = readCellEvents(read.data);
    if (bytes > 0 || offset + read.bytes >= read.size || limit >= CELL_EVENT_LIMIT) return { events, bytes, size: read.size };
  }
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
