import type { Database } from 'node-sqlite3-wasm';
import { addMetricTiers } from './metric-tiers';

/** SQL, or (for work SQL alone does slowly) a function of the database, run in the step's transaction. */
export type Migration = string | ((db: Database) => void);

/**
 * Versioned schema migrations, applied in order inside one transaction each. Never edit a
 * released step: add a new one. `PRAGMA user_version` records how many have run.
 */
export const MIGRATIONS: readonly Migration[] = [
  `
  CREATE TABLE submissions (
    id INTEGER PRIMARY KEY,
    spec_name TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    submission_id INTEGER NOT NULL REFERENCES submissions(id),
    key TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    needs TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    exit_code INTEGER,
    signal TEXT
  );
  CREATE INDEX jobs_by_state ON jobs(state, priority DESC, id);
  CREATE INDEX jobs_by_submission ON jobs(submission_id);
  CREATE TABLE attempts (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    number INTEGER NOT NULL,
    host TEXT NOT NULL,
    gpus TEXT NOT NULL,
    pid INTEGER,
    process_start TEXT,
    outcome TEXT NOT NULL,
    exit_code INTEGER,
    signal TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    dir TEXT NOT NULL,
    log_scanned INTEGER NOT NULL DEFAULT 0,
    metrics_scanned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, number)
  );
  CREATE INDEX attempts_by_outcome ON attempts(outcome);
  CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    job_id INTEGER,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
  );
  CREATE INDEX events_by_job ON events(job_id);
  CREATE TABLE metrics (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    name TEXT NOT NULL,
    step INTEGER,
    value REAL NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX metrics_by_job ON metrics(job_id, name);
  CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    os TEXT NOT NULL,
    cpus INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    driver_version TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE gpus (
    host TEXT NOT NULL REFERENCES hosts(name),
    idx INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    memory_total_bytes INTEGER NOT NULL,
    memory_used_bytes INTEGER NOT NULL,
    utilization INTEGER,
    foreign_pids TEXT NOT NULL,
    PRIMARY KEY (host, idx)
  );
  `,
  // The workdir version (tree hash) an attempt on an SSH host ran, for its record.
  `
  ALTER TABLE attempts ADD COLUMN workdir_version TEXT;
  `,
  // Who submitted each submission (fair share and GPU quotas), and recent GPU use found fast.
  `
  ALTER TABLE submissions ADD COLUMN user TEXT NOT NULL DEFAULT '';
  CREATE INDEX attempts_by_end ON attempts(ended_at);
  `,
  // SLURM clusters: a pool entry's settings (login node, shared root), and the SLURM job a run was handed to.
  `
  ALTER TABLE hosts ADD COLUMN settings TEXT;
  ALTER TABLE jobs ADD COLUMN slurm_id TEXT;
  `,
  // Specs that run on a cron schedule, with the last time fired: written in the same transaction
  // as the submission that time started, so a time never starts two runs.
  `
  CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    catch_up TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_tick INTEGER NOT NULL,
    last_submission_id INTEGER
  );
  `,
  // GPU utilization and memory over time, one row per GPU per host probe (see gpu-samples.ts).
  // Keyed for the reads: one GPU's samples in a time range, and pruning a GPU's oldest.
  `
  CREATE TABLE gpu_samples (
    host TEXT NOT NULL,
    idx INTEGER NOT NULL,
    at INTEGER NOT NULL,
    utilization INTEGER,
    memory_used_bytes INTEGER NOT NULL,
    PRIMARY KEY (host, idx, at)
  ) WITHOUT ROWID;
  `,
  // Metrics pre-aggregated in tiers of buckets, so a chart of a long run reads a few thousand rows.
  addMetricTiers,
];
