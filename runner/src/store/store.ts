import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { Database, type BindValues, type RunResult, type SQLiteValue, type Statement } from 'node-sqlite3-wasm';
import { FINAL_STATES, type AttemptOutcome, type HostView, type JobState, type MetricSeries, type MetricsParams, type MetricSummary, type RunRecord, type SubmitParams } from '../../../common/protocol';
import type { RunPlan } from '../../../common/spec';
import type { GpuUse } from '../scheduler/fair-share';
import { MetricTiers, type SeriesWindow } from './metric-tiers';
import { GpuSamples } from './gpu-samples';
import { MIGRATIONS } from './migrations';

/** A state file that cannot be used, with what to do about it. Nothing is changed when it is thrown. */
export class StoreError extends Error {}

/**
 * SQLite gave up the whole transaction (it does on a full disk): none of it was written, and the
 * work that came before in the same transaction is gone too, so the caller must not go on.
 */
export class TransactionLost extends StoreError {}

export interface JobRow {
  id: number;
  submissionId: number;
  specName: string;
  /** Who submitted it ('' for submissions from before users were recorded). */
  user: string;
  key: string;
  plan: RunPlan;
  state: JobState;
  priority: number;
  needs: number[];
  reason: string | null;
  attempts: number;
  notBefore: number | null;
  cancelRequested: boolean;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  signal: string | null;
  /** On a SLURM cluster: the SLURM job (`12`) or array task (`11_3`) it was handed to. */
  slurmId: string | null;
}

export interface AttemptRow {
  jobId: number;
  number: number;
  host: string;
  gpus: number[];
  pid: number | null;
  processStart: string | null;
  outcome: AttemptOutcome;
  exitCode: number | null;
  signal: string | null;
  startedAt: number;
  endedAt: number | null;
  /** The attempt's folder: output.log, exit-status, metrics.jsonl. */
  dir: string;
  /** Bytes of output.log and metrics.jsonl already read for metrics (so a restart reads on from there). */
  logScanned: number;
  metricsScanned: number;
  /** The synced workdir's tree hash, for an attempt on an SSH host. */
  workdirVersion: string | null;
}

/** A registered schedule: what to submit (as a client asked it) and when it last fired. */
export interface ScheduleRow {
  name: string;
  cron: string;
  catchUp: 'once' | 'none';
  params: SubmitParams;
  createdAt: number;
  lastTick: number;
  lastSubmissionId: number | null;
}

export interface MetricRow {
  jobId: number;
  attempt: number;
  name: string;
  step: number | null;
  value: number;
  at: number;
}

type Row = Record<string, SQLiteValue>;

/** Syncs quicker than this on average are made at once rather than on a thread; slower ones send those of the next OFF_THREAD_SYNCS_MS to a thread. */
const QUICK_SYNC_MS = 5;
const OFF_THREAD_SYNCS_MS = 10_000;

/** How many prepared statements are kept. */
const STATEMENT_CACHE_SIZE = 64;

/** How many ended jobs keep their plans in memory (see Store.endedPlans). */
const ENDED_PLANS_KEPT = 256;
/** The log's size at which a commit checkpoints it into the database file. */
const CHECKPOINT_BYTES = 4 * 1024 * 1024;

/** Every column but the plan, which is read once per job and kept (it never changes). */
const JOB_COLUMNS = `jobs.id, jobs.submission_id, jobs.key, jobs.state, jobs.priority, jobs.needs, jobs.reason, jobs.attempts, jobs.not_before,
  jobs.cancel_requested, jobs.created_at, jobs.started_at, jobs.ended_at, jobs.exit_code, jobs.signal, jobs.slurm_id, submissions.spec_name, submissions.user`;

/**
 * The daemon's state, in one SQLite file. Only the daemon opens it (exclusive locking, which
 * also lets WAL work without shared memory); every change is a transaction, synced to disk.
 *
 * The store syncs the write-ahead log itself rather than letting SQLite do it, because SQLite
 * through WebAssembly can only fsync synchronously, stalling the daemon for every commit. A
 * `transaction` is still on disk when it returns; a `deferred` one is on disk once `durable()`
 * resolves, and one sync covers every commit made before it starts (group commit). That sync
 * is made at once while syncs are quick, and off the event loop on a disk where they are slow. Checkpoints, which move the log into the database file, are ours too, made
 * with SQLite's syncs on: the log is only reset after the database file is on disk.
 */
export class Store {
  /** The plans of live jobs (a plan never changes; read once per job, or kept from its insert). */
  private readonly plans = new Map<number, RunPlan>();
  /** The plans of the jobs that ended last, oldest first: the views sent as a job ends read its plan once more. */
  private readonly endedPlans = new Map<number, RunPlan>();
  private readonly tiers: MetricTiers;
  /** Prepared statements by their SQL: preparing one costs more than running it once. */
  private readonly statements = new Map<string, Statement>();
  /** The write-ahead log, opened once it exists (the first commit creates it). */
  private wal: number | undefined;
  private syncing: Promise<void> | undefined;
  /** The sync that starts once `syncing` ends, shared by everyone who committed meanwhile. */
  private nextSync: Promise<void> | undefined;
  /** GPU utilization over time (its own module; written in the host probes' transactions). */
  readonly gpuSamples: GpuSamples;
  /** How long syncs made at once take, on average (ms), and until when syncs go to a thread after they got slow (see durable). */
  private syncMs = 0;
  private syncOffThreadUntil = 0;

  private constructor(
    private readonly db: Database,
    private readonly file: string,
  ) {
    this.tiers = new MetricTiers(db);
    this.gpuSamples = new GpuSamples(db);
  }

  static open(file: string): Store {
    let db: Database;
    try {
      db = new Database(file);
    } catch (error) {
      throw new StoreError(`cannot open the state file ${file}: ${describe(error)}; check that its folder exists and is writable`);
    }
    let store: Store | undefined;
    try {
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.exec('PRAGMA journal_mode = WAL');
      // The store syncs the log itself and checkpoints itself (see the class comment).
      db.exec('PRAGMA synchronous = OFF');
      db.exec('PRAGMA wal_autocheckpoint = 0');
      db.exec('PRAGMA foreign_keys = ON');
      store = new Store(db, file);
      store.migrate(file);
      return store;
    } catch (error) {
      // The store's prepared statements must go first, or the close fails and keeps the file locked.
      if (store) store.close();
      else db.close();
      if (error instanceof StoreError) throw error;
      const reason = describe(error);
      if (/not a database|malformed|corrupt/i.test(reason)) {
        throw new StoreError(`the state file ${file} is damaged (${reason}); it was left as it is: move it aside to start afresh, or restore a backup`);
      }
      if (/readonly|read-only|permission|EACCES|EROFS/i.test(reason)) {
        throw new StoreError(`the state file ${file} cannot be written (${reason}); make its folder writable`);
      }
      throw new StoreError(`cannot use the state file ${file}: ${reason}`);
    }
  }

  private migrate(file: string): void {
    const version = Number(this.db.get('PRAGMA user_version')!['user_version']);
    if (version > MIGRATIONS.length) {
      throw new StoreError(`the state file ${file} was written by a newer Drover (schema ${version}, this one knows ${MIGRATIONS.length}); upgrade Drover`);
    }
    for (let step = version; step < MIGRATIONS.length; step++) {
      this.transaction(() => {
        const migration = MIGRATIONS[step]!;
        if (typeof migration === 'string') this.db.exec(migration);
        else migration(this.db);
        this.db.exec(`PRAGMA user_version = ${step + 1}`);
      });
    }
  }

  close(): void {
    // Statements still open would keep the close (and its checkpoint) from happening.
    for (const statement of this.statements.values()) finalizeQuietly(statement);
    this.statements.clear();
    if (this.db.isOpen) {
      this.tiers.close();
      // Closing checkpoints the log into the database file and deletes it: with SQLite's syncs.
      this.db.exec('PRAGMA synchronous = FULL');
      this.db.close();
    }
    const wal = this.wal;
    this.wal = undefined;
    // A sync under way still needs the descriptor: it succeeds, the close having synced all.
    if (wal !== undefined) void (this.syncing ?? Promise.resolve()).catch(() => undefined).then(() => closeSync(wal));
  }

  /**
   * Runs `work` atomically: all of its changes reach the disk together, or none do. On return
   * they are on disk; with `deferred`, once `durable()` resolves.
   */
  transaction<T>(work: () => T, options: { deferred?: boolean } = {}): T {
    if (this.db.inTransaction) return work();
    this.run('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = work();
      this.run('COMMIT');
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      // Rolled-back jobs' ids are given out again: their plans must not outlive them.
      this.forgetPlans();
      this.tiers.forget();
      throw this.explain(error);
    }
    const wal = this.openWal();
    if (wal === undefined || (fstatSync(wal).size > CHECKPOINT_BYTES && this.checkpoint())) return result;
    if (!options.deferred) this.syncNow();
    return result;
  }

  /**
   * Resolves once every transaction committed so far is on disk. A quick sync is made at once:
   * handing it to a thread and back costs two thread switches and a turn of the event loop,
   * which on a busy machine take longer than the sync itself. Once syncs take long on average
   * (a slow disk), those of the next while go to a thread, so that the daemon goes on meanwhile.
   */
  durable(): Promise<void> {
    if (!this.syncing && performance.now() >= this.syncOffThreadUntil) {
      const started = performance.now();
      try {
        this.syncNow();
      } catch (error) {
        return Promise.reject(error as Error);
      }
      const now = performance.now();
      // An average, so that one sync slowed by a busy machine (not the disk) changes nothing.
      this.syncMs += (now - started - this.syncMs) / 8;
      if (this.syncMs > QUICK_SYNC_MS) this.syncOffThreadUntil = now + OFF_THREAD_SYNCS_MS;
      return Promise.resolve();
    }
    if (!this.syncing) return this.startSync();
    this.nextSync ??= this.syncing.then(() => {
      this.nextSync = undefined;
      return this.startSync();
    });
    return this.nextSync;
  }

  /** Puts every transaction committed so far on disk before returning. */
  syncNow(): void {
    if (this.wal === undefined) return;
    try {
      fdatasyncSync(this.wal);
    } catch (error) {
      throw this.explain(error, true);
    }
  }

  private startSync(): Promise<void> {
    const wal = this.wal;
    if (wal === undefined) return Promise.resolve();
    const syncing = new Promise<void>((resolve, reject) => fdatasync(wal, (error) => (error ? reject(this.explain(error, true)) : resolve())));
    this.syncing = syncing;
    const settled = () => {
      if (this.syncing === syncing) this.syncing = undefined;
    };
    syncing.then(settled, settled);
    return syncing;
  }

  private openWal(): number | undefined {
    if (this.wal === undefined) {
      try {
        this.wal = openSync(`${this.file}-wal`, 'r+');
      } catch {
        return undefined;
      }
    }
    return this.wal;
  }

  /**
   * Moves the log into the database file with SQLite's syncs on, then empties the log. False
   * if it could not (the log stays, and is tried again at a later commit).
   */
  private checkpoint(): boolean {
    this.db.exec('PRAGMA synchronous = FULL');
    try {
      const row = this.db.get('PRAGMA wal_checkpoint(TRUNCATE)');
      return row?.['busy'] === 0;
    } catch {
      return false;
    } finally {
      this.db.exec('PRAGMA synchronous = OFF');
    }
  }

  /** Runs `work` inside the current transaction so that, if it throws, only its changes are undone. */
  savepoint<T>(work: () => T): T {
    this.run('SAVEPOINT work');
    try {
      const result = work();
      this.run('RELEASE work');
      return result;
    } catch (error) {
      this.forgetPlans();
      this.tiers.forget();
      if (!this.db.inTransaction) throw this.explain(error, true);
      this.db.exec('ROLLBACK TO work');
      this.db.exec('RELEASE work');
      throw error;
    }
  }

  /** A failure in words a user can act on; `lost` when SQLite abandoned the whole transaction. */
  private explain(error: unknown, lost = false): Error {
    if (error instanceof StoreError) return error;
    const reason = describe(error);
    // Through WebAssembly a full disk may surface as a plain I/O error: the free space tells.
    if (/full/i.test(reason) || (/I\/O error/i.test(reason) && diskFull(this.file))) {
      return new TransactionLost(`the disk holding ${this.file} is full: this change was not recorded (what was recorded before is intact); free some space and try again`);
    }
    if (lost) return new TransactionLost(`the state file ${this.file} refused a change (${reason}); it was not recorded`);
    return error instanceof Error ? error : new Error(reason);
  }

  // Statements

  private run(sql: string, values?: BindValues): RunResult {
    return this.withStatement(sql, (statement) => statement.run(values));
  }

  /** Every row. The statement is run to its end, so it holds no read transaction afterwards. */
  private all(sql: string, values?: BindValues): Row[] {
    return this.withStatement(sql, (statement) => statement.all(values) as Row[]);
  }

  /** The first row (the queries here ask for one row at most), or null. */
  private get(sql: string, values?: BindValues): Row | null {
    return this.all(sql, values)[0] ?? null;
  }

  private withStatement<T>(sql: string, work: (statement: Statement) => T): T {
    let statement = this.statements.get(sql);
    if (!statement) {
      // Statements built from a filter or a list of names vary: only so many are kept.
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        const [oldest, dropped] = this.statements.entries().next().value as [string, Statement];
        this.statements.delete(oldest);
        finalizeQuietly(dropped);
      }
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    try {
      return work(statement);
    } catch (error) {
      // A statement that failed reports that failure again when next reset: it is made afresh.
      this.statements.delete(sql);
      finalizeQuietly(statement);
      throw error;
    }
  }

  // Submissions and jobs

  insertSubmission(specName: string, user: string, record: RunRecord, now: number): number {
    return Number(this.run('INSERT INTO submissions (spec_name, user, record, created_at) VALUES (?, ?, ?, ?)', [specName, user, JSON.stringify(record), now]).lastInsertRowid);
  }

  submissionRecord(id: number): RunRecord | undefined {
    const row = this.get('SELECT record FROM submissions WHERE id = ?', [id]) as Row | null;
    return row ? (JSON.parse(String(row['record'])) as RunRecord) : undefined;
  }

  updateSubmissionRecord(id: number, record: RunRecord): void {
    this.run('UPDATE submissions SET record = ? WHERE id = ?', [JSON.stringify(record), id]);
  }

  insertJob(job: { submissionId: number; plan: RunPlan; state: JobState; needs: number[]; reason?: string }, now: number): number {
    const plan = JSON.stringify(job.plan);
    const result = this.run(
      'INSERT INTO jobs (submission_id, key, plan, state, priority, needs, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [job.submissionId, job.plan.key, plan, job.state, job.plan.priority, JSON.stringify(job.needs), job.reason ?? null, now],
    );
    const id = Number(result.lastInsertRowid);
    // As it will be read back: a copy of what was stored, not the caller's object.
    this.plans.set(id, JSON.parse(plan) as RunPlan);
    return id;
  }

  /** Sets which jobs a job needs (after all of a submission's jobs have ids). */
  setNeeds(id: number, needs: number[]): void {
    this.run('UPDATE jobs SET needs = ? WHERE id = ?', [JSON.stringify(needs), id]);
  }

  job(id: number): JobRow | undefined {
    const row = this.get(`SELECT ${JOB_COLUMNS} FROM jobs JOIN submissions ON submissions.id = jobs.submission_id WHERE jobs.id = ?`, [id]) as Row | null;
    return row ? this.jobFromRow(row) : undefined;
  }

  /** Jobs in scheduling order: higher priority first, then first come, first served. */
  jobs(filter: { states?: readonly JobState[]; submissionId?: number; limit?: number } = {}): JobRow[] {
    const where: string[] = [];
    const values: SQLiteValue[] = [];
    if (filter.states) {
      where.push(`jobs.state IN (${filter.states.map(() => '?').join(', ')})`);
      values.push(...filter.states);
    }
    if (filter.submissionId !== undefined) {
      where.push('jobs.submission_id = ?');
      values.push(filter.submissionId);
    }
    const order = filter.limit !== undefined ? 'ORDER BY jobs.id DESC LIMIT ?' : 'ORDER BY jobs.priority DESC, jobs.id';
    if (filter.limit !== undefined) values.push(filter.limit);
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs JOIN submissions ON submissions.id = jobs.submission_id ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ${order}`;
    return (this.all(sql, values) as Row[]).map((row) => this.jobFromRow(row));
  }

  private jobFromRow(row: Row): JobRow {
    return {
      id: Number(row['id']),
      submissionId: Number(row['submission_id']),
      specName: String(row['spec_name']),
      user: String(row['user']),
      key: String(row['key']),
      plan: this.plan(Number(row['id']), String(row['state']) as JobState),
      state: String(row['state']) as JobState,
      priority: Number(row['priority']),
      needs: JSON.parse(String(row['needs'])) as number[],
      reason: row['reason'] === null ? null : String(row['reason']),
      attempts: Number(row['attempts']),
      notBefore: nullableNumber(row['not_before']),
      cancelRequested: Number(row['cancel_requested']) === 1,
      createdAt: Number(row['created_at']),
      startedAt: nullableNumber(row['started_at']),
      endedAt: nullableNumber(row['ended_at']),
      exitCode: nullableNumber(row['exit_code']),
      signal: row['signal'] === null ? null : String(row['signal']),
      slurmId: row['slurm_id'] === null || row['slurm_id'] === undefined ? null : String(row['slurm_id']),
    };
  }

  private plan(id: number, state: JobState): RunPlan {
    let plan = this.plans.get(id) ?? this.endedPlans.get(id);
    if (!plan) {
      plan = JSON.parse(String(this.get('SELECT plan FROM jobs WHERE id = ?', [id])!['plan'])) as RunPlan;
      if (FINAL_STATES.includes(state)) this.keepEndedPlan(id, plan);
      else this.plans.set(id, plan);
    }
    return plan;
  }

  updateJob(id: number, changes: Partial<Pick<JobRow, 'state' | 'reason' | 'priority' | 'attempts' | 'notBefore' | 'cancelRequested' | 'startedAt' | 'endedAt' | 'exitCode' | 'signal' | 'slurmId'>>): void {
    const columns: Record<string, string> = {
      state: 'state', reason: 'reason', priority: 'priority', attempts: 'attempts', notBefore: 'not_before', cancelRequested: 'cancel_requested',
      startedAt: 'started_at', endedAt: 'ended_at', exitCode: 'exit_code', signal: 'signal', slurmId: 'slurm_id',
    };
    const sets: string[] = [];
    const values: SQLiteValue[] = [];
    for (const [field, value] of Object.entries(changes)) {
      sets.push(`${columns[field]} = ?`);
      values.push(typeof value === 'boolean' ? Number(value) : (value as SQLiteValue | undefined) ?? null);
    }
    if (sets.length === 0) return;
    this.run(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ?`, [...values, id]);
    // Ended jobs are seldom read again: only the last few keep their plans.
    if (changes.state && FINAL_STATES.includes(changes.state)) {
      const plan = this.plans.get(id);
      this.plans.delete(id);
      if (plan) this.keepEndedPlan(id, plan);
    }
  }

  private keepEndedPlan(id: number, plan: RunPlan): void {
    this.endedPlans.set(id, plan);
    if (this.endedPlans.size > ENDED_PLANS_KEPT) this.endedPlans.delete(this.endedPlans.keys().next().value!);
  }

  private forgetPlans(): void {
    this.plans.clear();
    this.endedPlans.clear();
  }

  /** Forgets a job with all it recorded; a submission left without jobs goes too. */
  deleteJob(id: number): void {
    const submissionId = nullableNumber(this.get('SELECT submission_id FROM jobs WHERE id = ?', [id])?.['submission_id'] as SQLiteValue | undefined);
    for (const table of ['attempts', 'metrics', 'events']) this.run(`DELETE FROM ${table} WHERE job_id = ?`, [id]);
    this.tiers.delete(id);
    this.run('DELETE FROM jobs WHERE id = ?', [id]);
    this.plans.delete(id);
    this.endedPlans.delete(id);
    if (submissionId !== null && !this.get('SELECT 1 FROM jobs WHERE submission_id = ? LIMIT 1', [submissionId])) {
      this.run('DELETE FROM submissions WHERE id = ?', [submissionId]);
    }
  }

  // Attempts

  insertAttempt(attempt: Omit<AttemptRow, 'logScanned' | 'metricsScanned' | 'workdirVersion'>): void {
    this.run(
      'INSERT INTO attempts (job_id, number, host, gpus, pid, process_start, outcome, exit_code, signal, started_at, ended_at, dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [attempt.jobId, attempt.number, attempt.host, JSON.stringify(attempt.gpus), attempt.pid, attempt.processStart, attempt.outcome, attempt.exitCode, attempt.signal, attempt.startedAt, attempt.endedAt, attempt.dir],
    );
  }

  updateAttempt(
    jobId: number,
    number: number,
    changes: Partial<Pick<AttemptRow, 'pid' | 'processStart' | 'outcome' | 'exitCode' | 'signal' | 'endedAt' | 'logScanned' | 'metricsScanned' | 'workdirVersion'>>,
  ): void {
    const columns: Record<string, string> = {
      workdirVersion: 'workdir_version',
      pid: 'pid', processStart: 'process_start', outcome: 'outcome', exitCode: 'exit_code', signal: 'signal', endedAt: 'ended_at',
      logScanned: 'log_scanned', metricsScanned: 'metrics_scanned',
    };
    const sets: string[] = [];
    const values: SQLiteValue[] = [];
    for (const [field, value] of Object.entries(changes)) {
      sets.push(`${columns[field]} = ?`);
      values.push((value as SQLiteValue | undefined) ?? null);
    }
    if (sets.length === 0) return;
    this.run(`UPDATE attempts SET ${sets.join(', ')} WHERE job_id = ? AND number = ?`, [...values, jobId, number]);
  }

  /** Forgets an attempt that never started (its GPUs turned out to be leased by another daemon). */
  deleteAttempt(jobId: number, number: number): void {
    this.run('DELETE FROM attempts WHERE job_id = ? AND number = ?', [jobId, number]);
  }

  attempts(jobId: number): AttemptRow[] {
    return (this.all('SELECT * FROM attempts WHERE job_id = ? ORDER BY number', [jobId]) as Row[]).map(attemptFromRow);
  }

  attempt(jobId: number, number: number): AttemptRow | undefined {
    const row = this.get('SELECT * FROM attempts WHERE job_id = ? AND number = ?', [jobId, number]) as Row | null;
    return row ? attemptFromRow(row) : undefined;
  }

  /** GPUs held by attempts that ended at or after `since`, with their users (for fair share). */
  gpuUsesEndedSince(since: number): GpuUse[] {
    const rows = this.all(
      `SELECT submissions.user, attempts.gpus, attempts.started_at, attempts.ended_at FROM attempts
       JOIN jobs ON jobs.id = attempts.job_id JOIN submissions ON submissions.id = jobs.submission_id
       WHERE attempts.ended_at >= ? AND attempts.gpus != '[]'`,
      [since],
    ) as Row[];
    return rows.map((row) => ({ user: String(row['user']), gpus: (JSON.parse(String(row['gpus'])) as number[]).length, startedAt: Number(row['started_at']), endedAt: Number(row['ended_at']) }));
  }

  runningAttempts(): AttemptRow[] {
    return (this.all("SELECT * FROM attempts WHERE outcome = 'running' ORDER BY job_id") as Row[]).map(attemptFromRow);
  }

  // Events and metrics

  addEvent(jobId: number | null, kind: string, message: string, now: number): void {
    this.run('INSERT INTO events (job_id, at, kind, message) VALUES (?, ?, ?, ?)', [jobId, now, kind, message]);
  }

  events(jobId: number): { at: number; kind: string; message: string }[] {
    return (this.all('SELECT at, kind, message FROM events WHERE job_id = ? ORDER BY id', [jobId]) as Row[]).map((row) => ({
      at: Number(row['at']),
      kind: String(row['kind']),
      message: String(row['message']),
    }));
  }

  /** Records points, and adds them to the metrics' tiers in the same transaction. */
  addMetrics(points: readonly MetricRow[]): void {
    if (points.length === 0) return;
    const rowids = points.map((point) => Number(this.run('INSERT INTO metrics (job_id, attempt, name, step, value, at) VALUES (?, ?, ?, ?, ?, ?)', [point.jobId, point.attempt, point.name, point.step, point.value, point.at]).lastInsertRowid));
    this.tiers.add(points, rowids);
  }

  /** A run's metric names in the order they first reported (the first is its key metric); only `names` when given. */
  metricNames(jobId: number, names?: readonly string[]): string[] {
    return this.tiers.names(jobId, names);
  }

  /** One metric's points within `range` for a chart of `maxPoints`: all of them, or a sample that keeps each part's extremes (see MetricTiers). */
  metricWindow(jobId: number, name: string, range: MetricsParams['range'], maxPoints: number): SeriesWindow {
    return this.tiers.window(jobId, name, range, maxPoints);
  }

  /** Each metric's count, last, lowest and highest value for these runs (see MetricTiers.summaries). */
  metricSummaries(jobIds: readonly number[]): MetricSummary[] {
    return this.tiers.summaries(jobIds);
  }

  /** The run's metrics, in the order they were reported; only `names` when given. */
  metrics(jobId: number, names?: readonly string[]): MetricSeries[] {
    const series: MetricSeries[] = [];
    for (const name of this.metricNames(jobId, names)) {
      // In the index's order (job, name, rowid), which is the order the points came in, attempt by
      // attempt: no sort, and no name copied per row.
      const rows = this.all('SELECT step, value, at FROM metrics INDEXED BY metrics_by_job WHERE job_id = ? AND name = ? ORDER BY rowid', [jobId, name]) as Row[];
      const points = rows.map((row) => ({ step: row['step'] === null ? null : Number(row['step']), value: Number(row['value']), at: Number(row['at']) }));
      series.push({ name, points, total: points.length });
    }
    return series;
  }

  // Schedules

  /** Adds or replaces a schedule; a replaced one starts counting its times afresh from `lastTick`. */
  saveSchedule(schedule: ScheduleRow): void {
    this.run(
      `INSERT INTO schedules (name, cron, catch_up, params, created_at, last_tick, last_submission_id) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET cron = excluded.cron, catch_up = excluded.catch_up, params = excluded.params, last_tick = excluded.last_tick`,
      [schedule.name, schedule.cron, schedule.catchUp, JSON.stringify(schedule.params), schedule.createdAt, schedule.lastTick, schedule.lastSubmissionId],
    );
  }

  schedules(): ScheduleRow[] {
    return (this.all('SELECT * FROM schedules ORDER BY name') as Row[]).map(scheduleFromRow);
  }

  schedule(name: string): ScheduleRow | undefined {
    const row = this.get('SELECT * FROM schedules WHERE name = ?', [name]) as Row | null;
    return row ? scheduleFromRow(row) : undefined;
  }

  /** Notes that a schedule's time was dealt with: fired (with the submission it started) or skipped. */
  setScheduleTick(name: string, tick: number, submissionId: number | null): void {
    this.run('UPDATE schedules SET last_tick = ?, last_submission_id = COALESCE(?, last_submission_id) WHERE name = ?', [tick, submissionId, name]);
  }

  removeSchedule(name: string): boolean {
    return this.run('DELETE FROM schedules WHERE name = ?', [name]).changes > 0;
  }

  // Hosts

  saveHost(host: Omit<HostView, 'gpus'> & { gpus: Omit<HostView['gpus'][number], 'jobId'>[] }): void {
    this.run(
      `INSERT INTO hosts (name, kind, state, message, os, cpus, memory_bytes, driver_version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, state = excluded.state, message = excluded.message, os = excluded.os, cpus = excluded.cpus,
         memory_bytes = excluded.memory_bytes, driver_version = excluded.driver_version, updated_at = excluded.updated_at`,
      [host.name, host.kind, host.state, host.message ?? null, host.os, host.cpus, host.memoryBytes, host.driverVersion ?? null, host.updatedAt],
    );
    this.run('DELETE FROM gpus WHERE host = ?', [host.name]);
    for (const gpu of host.gpus) {
      this.run('INSERT INTO gpus (host, idx, uuid, name, memory_total_bytes, memory_used_bytes, utilization, foreign_pids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        host.name, gpu.index, gpu.uuid, gpu.name, gpu.memoryTotalBytes, gpu.memoryUsedBytes, gpu.utilizationPercent, JSON.stringify(gpu.foreignPids),
      ]);
    }
  }

  /** A pool entry's own settings (a SLURM cluster's login node and shared root), as JSON. */
  setHostSettings(name: string, settings: object | null): void {
    this.run('UPDATE hosts SET settings = ? WHERE name = ?', [settings === null ? null : JSON.stringify(settings), name]);
  }

  hostSettings(name: string): unknown {
    const row = this.get('SELECT settings FROM hosts WHERE name = ?', [name]) as Row | null;
    return row && row['settings'] !== null && row['settings'] !== undefined ? (JSON.parse(String(row['settings'])) as unknown) : undefined;
  }

  removeHost(name: string): boolean {
    this.run('DELETE FROM gpus WHERE host = ?', [name]);
    this.gpuSamples.forgetHost(name);
    return this.run('DELETE FROM hosts WHERE name = ?', [name]).changes > 0;
  }

  hosts(): HostView[] {
    const gpus = this.all('SELECT * FROM gpus ORDER BY host, idx') as Row[];
    return (this.all('SELECT * FROM hosts ORDER BY name') as Row[]).map((row) => {
      const host: HostView = {
        name: String(row['name']),
        kind: String(row['kind']) as HostView['kind'],
        state: String(row['state']) as HostView['state'],
        os: String(row['os']),
        cpus: Number(row['cpus']),
        memoryBytes: Number(row['memory_bytes']),
        gpus: gpus
          .filter((gpu) => gpu['host'] === row['name'])
          .map((gpu) => ({
            index: Number(gpu['idx']),
            uuid: String(gpu['uuid']),
            name: String(gpu['name']),
            memoryTotalBytes: Number(gpu['memory_total_bytes']),
            memoryUsedBytes: Number(gpu['memory_used_bytes']),
            utilizationPercent: gpu['utilization'] === null ? null : Number(gpu['utilization']),
            foreignPids: JSON.parse(String(gpu['foreign_pids'])) as number[],
          })),
        updatedAt: Number(row['updated_at']),
      };
      if (row['message'] !== null) host.message = String(row['message']);
      if (row['driver_version'] !== null) host.driverVersion = String(row['driver_version']);
      return host;
    });
  }
}

function scheduleFromRow(row: Row): ScheduleRow {
  return {
    name: String(row['name']),
    cron: String(row['cron']),
    catchUp: String(row['catch_up']) === 'none' ? 'none' : 'once',
    params: JSON.parse(String(row['params'])) as SubmitParams,
    createdAt: Number(row['created_at']),
    lastTick: Number(row['last_tick']),
    lastSubmissionId: nullableNumber(row['last_submission_id'] as SQLiteValue),
  };
}

function attemptFromRow(row: Row): AttemptRow {
  return {
    jobId: Number(row['job_id']),
    number: Number(row['number']),
    host: String(row['host']),
    gpus: JSON.parse(String(row['gpus'])) as number[],
    pid: nullableNumber(row['pid']),
    processStart: row['process_start'] === null ? null : String(row['process_start']),
    outcome: String(row['outcome']) as AttemptOutcome,
    exitCode: nullableNumber(row['exit_code']),
    signal: row['signal'] === null ? null : String(row['signal']),
    startedAt: Number(row['started_at']),
    endedAt: nullableNumber(row['ended_at']),
    dir: String(row['dir']),
    logScanned: Number(row['log_scanned']),
    metricsScanned: Number(row['metrics_scanned']),
    workdirVersion: row['workdir_version'] === null || row['workdir_version'] === undefined ? null : String(row['workdir_version']),
  };
}

/** Whether the disk holding `file` has (next to) no room left for a database page. */
function diskFull(file: string): boolean {
  try {
    const stats = statfsSync(dirname(file));
    return stats.bavail * stats.bsize < 64 * 1024;
  } catch {
    return false;
  }
}

/** Finalizing a statement whose last run failed reports that failure again: it was already handled. */
function finalizeQuietly(statement: Statement): void {
  try {
    statement.finalize();
  } catch {
    // see above
  }
}

function nullableNumber(value: SQLiteValue | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
