/**
 * Runner daemon benchmark: how fast Drover's daemon takes, starts and finishes 1,000 trivial
 * jobs, side by side with a floor and a peer, as ratios. Run with `npm run bench`.
 *
 * Contenders (each runs 1,000 jobs of `true`):
 *   - floor         sequential `child_process.spawn('/bin/true')`, each awaited: what one process
 *                   start costs from Node, with no queue, no bookkeeping and no durability.
 *   - task-spooler  `tsp` (Debian package task-spooler) with as many slots as the daemon has
 *                   CPUs, in a private TS_SOCKET/TMPDIR. Its own records have one-second
 *                   precision, so start times come from the job itself: a second pass runs
 *                   `date +%s%N` instead of `true` and its output is the start stamp.
 *   - Drover        a fresh daemon (bin/drover-daemon.js, default settings) in a temporary
 *                   DROVER_HOME; 1,000 `drover/submit` requests, pipelined, each a one-job spec.
 *   - launch path   Drover's launcher and wrapper alone, as the daemon drives them (as many jobs
 *                   in flight as there are slots), with no daemon, store or client: the ceiling
 *                   the daemon's throughput cannot pass on this machine.
 *
 * For each 1,000-job run the whole machine's processor time is read too (/proc/stat, Linux), per
 * job: on a machine whose cores are all busy, it is what throughput is divided by.
 *
 * Each also runs 50 jobs one at a time on an idle queue (submit, wait until it ends, next): the
 * submit→start latency with no backlog, the number the "< 2× floor" target is about. Under the
 * 1,000-job burst, submit→start is mostly time spent waiting in the queue behind other jobs.
 *
 * Correctness is asserted (every job of every contender ran and exited 0): a failed assertion,
 * or a phase that runs past 5 minutes, exits non-zero. The targets are a report, not a test.
 * A missing `tsp` is reported (with how to install it), not a failure.
 */
import { execFile, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { FINAL_STATES, type JobView } from '../common/protocol';
import { DaemonClient, untilReady } from '../common/node/daemon-client';
import { procStatFields, readExitStatus } from '../runner/src/local/detached-process';
import { LauncherClient } from '../runner/src/local/launcher-client';
import { daemonPaths } from '../common/node/daemon-paths';
import { BenchAssertion, check, latency, ms, progress, table, verdict, type Latency } from './report';

const JOBS = 1_000;
const IDLE_JOBS = 50;
/** Job slots for task-spooler: the daemon's local host has one per CPU, and each job takes one. */
const SLOTS = os.availableParallelism();
const PHASE_LIMIT_MS = 5 * 60_000;
const TARGET_LATENCY_RATIO = 2;
const TARGET_THROUGHPUT_RATIO = 1;
const IDLE_SETTLE_MS = 2_000;
const IDLE_WINDOW_MS = 5_000;

const DAEMON_BIN = path.resolve(__dirname, '..', '..', 'bin', 'drover-daemon.js');
const DAEMON_BUNDLE = path.resolve(__dirname, '..', '..', 'dist', 'daemon.js');

/** Wall-clock time in ms since the epoch, with sub-millisecond resolution. */
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Failures, limits and cleanup



/** Runs one phase, failing it when it takes longer than PHASE_LIMIT_MS. */
async function phase<T>(name: string, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchAssertion(`${name}: did not finish within ${PHASE_LIMIT_MS / 60_000} min; aborted`)), PHASE_LIMIT_MS);
  });
  try {
    return await Promise.race([run(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What to undo when the bench ends, or stops early (Ctrl-C, an assertion): each runs once,
 * synchronously. The contenders' folders go only at the end: on ext4 without a journal, a new
 * file's inode is looked for past every inode deleted in the last minute or so, so deleting
 * task-spooler's 2,000 files just before Drover's phase would make each file Drover creates
 * cost more (after 5,000 deletions, Drover's launcher and wrappers took about 1.5 times the
 * processor time they take otherwise).
 */
const cleanups = new Map<string, () => void>();

function runCleanups(): void {
  for (const [name, cleanup] of [...cleanups].reverse()) {
    cleanups.delete(name);
    try {
      cleanup();
    } catch {
      // best effort: the rest still runs
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

const rate = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const ratio = (value: number): string => `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}×`;


/** One contender's results; undefined cells print as "—". */
interface Row {
  name: string;
  enqueueRate?: number;
  loaded?: Latency;
  idle?: Latency;
  totalMs?: number;
  throughput?: number;
  /** Processor time of the whole machine (every core) per job of the 1,000, in ms. */
  cpuPerJobMs?: number;
  /** The peer's version, or why it is missing. */
  note?: string;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Exit {
  code: number | null;
  stdout: string;
}

/** Runs a program to its end; never rejects on a non-zero exit (the caller checks). */
function runProgram(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Exit> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error && typeof error.code === 'string') return reject(error); // could not start (ENOENT…)
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout });
    });
  });
}

/** Spawns a program with no pipes and resolves with its exit code: the cheapest start from Node. */
function spawnToExit(file: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

/**
 * Clock ticks the whole machine spent busy so far (user, nice, system, irq, softirq over every
 * core, from /proc/stat); undefined where there is no /proc/stat.
 */
function machineBusyTicks(): number | undefined {
  try {
    const [user, nice, system, , , irq, softirq] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return user! + nice! + system! + irq! + softirq!;
  } catch {
    return undefined;
  }
}

/** Measures the machine's processor time over a run of JOBS jobs: call at the start, then the result at the end. */
function machineCpuPerJob(): () => number | undefined {
  const before = machineBusyTicks();
  return () => {
    const after = machineBusyTicks();
    return before === undefined || after === undefined ? undefined : ((after - before) / clockTicks() / JOBS) * 1000;
  };
}

// ---------------------------------------------------------------------------------------------
// Floor: sequential spawn of /bin/true

async function benchFloor(): Promise<Row> {
  const samples: number[] = [];
  let failures = 0;
  const cpu = machineCpuPerJob();
  const t0 = performance.now();
  for (let i = 0; i < JOBS; i++) {
    const start = performance.now();
    if ((await spawnToExit('/bin/true')) !== 0) failures++;
    samples.push(performance.now() - start);
  }
  const totalMs = performance.now() - t0;
  const cpuPerJobMs = cpu();
  check(failures === 0, `floor: ${failures} of ${JOBS} runs of /bin/true did not exit 0`);
  const spawnLatency = latency(samples);
  return { name: 'floor (spawn→exit)', loaded: spawnLatency, idle: spawnLatency, totalMs, throughput: JOBS / (totalMs / 1000), cpuPerJobMs };
}

// ---------------------------------------------------------------------------------------------
// task-spooler

/** `tsp -V`'s first line, or undefined when tsp is not installed. */
function tspVersion(): string | undefined {
  const result = spawnSync('tsp', ['-V'], { encoding: 'utf8' });
  if (result.error) return undefined;
  return `${result.stdout}${result.stderr}`.split('\n')[0]!.trim() || 'tsp';
}

interface TspJob {
  id: number;
  state: string;
  output: string;
  exitLevel?: number;
}

/** A private task-spooler server: its own socket and output folder, never the user's queue. */
class TaskSpooler {
  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly dir: string) {
    const env: NodeJS.ProcessEnv = { ...process.env, TS_SOCKET: path.join(dir, 'socket'), TMPDIR: dir, TS_SLOTS: String(SLOTS), TS_MAXFINISHED: String(JOBS + IDLE_JOBS + 10) };
    for (const name of ['TS_ONFINISH', 'TS_ENV', 'TS_SAVELIST', 'TS_MAILTO', 'TS_MAXCONN']) delete env[name];
    this.env = env;
  }

  async run(args: string[]): Promise<Exit> {
    return runProgram('tsp', args, this.env);
  }

  /** Starts the server with SLOTS slots and checks it has them. */
  async start(): Promise<void> {
    cleanups.set('tsp', () => this.killSync());
    await this.run(['-S', String(SLOTS)]);
    const slots = (await this.run(['-S'])).stdout.trim();
    check(slots === String(SLOTS), `task-spooler: expected ${SLOTS} slots, it reports '${slots}'`);
  }

  async enqueue(command: string[]): Promise<number> {
    const { code, stdout } = await this.run(command);
    const id = Number(stdout.trim());
    check(code === 0 && Number.isInteger(id), `task-spooler: enqueueing failed (exit ${code}, said '${stdout.trim()}')`);
    return id;
  }

  async list(): Promise<TspJob[]> {
    const { stdout } = await this.run(['-l']);
    const jobs: TspJob[] = [];
    for (const line of stdout.split('\n').slice(1)) {
      // ID State Output E-Level Times(r/u/s) Command; E-Level and Times only once finished.
      const match = /^(\d+)\s+(\S+)\s+(\S+)\s+(?:(-?\d+)\s+\S+\/\S+\/\S+\s+)?/.exec(line);
      if (!match) continue;
      jobs.push({ id: Number(match[1]), state: match[2]!, output: match[3]!, ...(match[4] !== undefined && { exitLevel: Number(match[4]) }) });
    }
    return jobs;
  }

  /** Waits until every job in the list has finished, blocking in `tsp -w` rather than polling. */
  async waitAll(lastId: number): Promise<TspJob[]> {
    await this.run(['-w', String(lastId)]);
    for (;;) {
      const jobs = await this.list();
      const pending = jobs.filter((job) => job.state !== 'finished');
      if (pending.length === 0) return jobs;
      for (const job of pending) await this.run(['-w', String(job.id)]);
    }
  }

  /** The start stamp a `date +%s%N` job wrote, in epoch ms. */
  stamp(outputFile: string): number {
    const text = fs.readFileSync(outputFile, 'utf8').trim();
    check(/^\d+$/.test(text), `task-spooler: unexpected output '${text}' in ${outputFile}`);
    const ns = BigInt(text);
    return Number(ns / 1_000n) / 1_000;
  }

  killSync(): void {
    spawnSync('tsp', ['-K'], { env: this.env, stdio: 'ignore' });
  }

  async kill(): Promise<void> {
    await this.run(['-K']);
    cleanups.delete('tsp');
  }
}

function checkTspJobs(jobs: TspJob[], ids: number[], what: string): Map<number, TspJob> {
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const bad = ids.filter((id) => byId.get(id)?.state !== 'finished' || byId.get(id)?.exitLevel !== 0);
  check(bad.length === 0, `task-spooler ${what}: ${bad.length} of ${ids.length} jobs did not finish with exit 0 (first: ${bad.slice(0, 5).join(', ')})`);
  return byId;
}

async function benchTaskSpooler(): Promise<Row> {
  const version = tspVersion();
  if (!version) return { name: 'task-spooler', note: 'tsp not found on PATH: install it (Debian/Ubuntu: apt-get install task-spooler; Homebrew: brew install task-spooler) to compare' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-tsp-'));
  cleanups.set('tsp-dir', () => fs.rmSync(dir, { recursive: true, force: true }));
  const tsp = new TaskSpooler(dir);
  try {
    // Pass 1: 1,000 `true` jobs: enqueue rate, total time, throughput.
    await tsp.start();
    progress(`  task-spooler: enqueueing ${JOBS} jobs…`);
    const cpu = machineCpuPerJob();
    const t0 = now();
    const ids: number[] = [];
    for (let i = 0; i < JOBS; i++) ids.push(await tsp.enqueue(['true']));
    const enqueuedAt = now();
    progress('  task-spooler: waiting for the jobs to finish…');
    const finished = await tsp.waitAll(ids.at(-1)!);
    const totalMs = now() - t0;
    const cpuPerJobMs = cpu();
    checkTspJobs(finished, ids, 'throughput pass');
    await tsp.kill();

    // Pass 2: the same burst of `date +%s%N` jobs: each job's output is its start time.
    await tsp.start();
    progress(`  task-spooler: ${JOBS} stamping jobs…`);
    const sentAt = new Map<number, number>();
    let lastId = -1;
    for (let i = 0; i < JOBS; i++) {
      const sent = now();
      lastId = await tsp.enqueue(['date', '+%s%N']);
      sentAt.set(lastId, sent);
    }
    const stamped = checkTspJobs(await tsp.waitAll(lastId), [...sentAt.keys()], 'latency pass');
    const loaded = [...sentAt].map(([id, sent]) => tsp.stamp(stamped.get(id)!.output) - sent);

    // Idle: one job at a time.
    progress(`  task-spooler: ${IDLE_JOBS} jobs one at a time…`);
    const idle: number[] = [];
    for (let i = 0; i < IDLE_JOBS; i++) {
      const sent = now();
      const id = await tsp.enqueue(['date', '+%s%N']);
      const waited = await tsp.run(['-w', String(id)]);
      check(waited.code === 0, `task-spooler idle job ${id} exited ${waited.code}`);
      idle.push(tsp.stamp((await tsp.run(['-o', String(id)])).stdout.trim()) - sent);
    }
    await tsp.kill();
    return {
      name: 'task-spooler',
      enqueueRate: JOBS / ((enqueuedAt - t0) / 1000),
      loaded: latency(loaded),
      idle: latency(idle),
      totalMs,
      throughput: JOBS / (totalMs / 1000),
      cpuPerJobMs,
      note: version,
    };
  } finally {
    runCleanupsNamed('tsp');
  }
}

function runCleanupsNamed(...names: string[]): void {
  for (const name of names) {
    const cleanup = cleanups.get(name);
    cleanups.delete(name);
    cleanup?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Drover

/** Job events as the client sees them: when each job was first seen running, and its end. */
class JobTracker {
  readonly runningAt = new Map<number, number>();
  readonly final = new Map<number, { view: JobView; at: number }>();
  private waiter: { done: () => boolean; resolve: () => void } | undefined;

  onEvent(view: JobView): void {
    const at = now();
    if (view.state === 'running' && !this.runningAt.has(view.id)) this.runningAt.set(view.id, at);
    if (FINAL_STATES.includes(view.state) && !this.final.has(view.id)) this.final.set(view.id, { view, at });
    if (this.waiter?.done()) {
      this.waiter.resolve();
      this.waiter = undefined;
    }
  }

  until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => (this.waiter = { done, resolve }));
  }
}

interface DaemonProcess {
  pid: number;
  exited: Promise<void>;
  kill: () => void;
}

/** Starts bin/drover-daemon.js on `home` and waits for its `ready` line. */
async function startDaemon(env: NodeJS.ProcessEnv, logFile: string): Promise<DaemonProcess> {
  check(fs.existsSync(DAEMON_BUNDLE), `${DAEMON_BUNDLE} is missing: build first (npm run build)`);
  const log = fs.openSync(logFile, 'a', 0o600);
  const child = spawn(process.execPath, [DAEMON_BIN], { stdio: ['ignore', 'pipe', log], env });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  cleanups.set('daemon', kill);
  const started = await untilReady(child, 15_000);
  if (!started.ready) {
    throw new BenchAssertion(started.exitCode === null ? `the daemon did not say ready within 15 s; see ${logFile}` : `the daemon exited (${started.exitCode}) before it was ready: ${started.said ?? fs.readFileSync(logFile, 'utf8').trim()}`);
  }
  return { pid: child.pid!, exited, kill };
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const fields = procStatFields(`/proc/${pid}/stat`);
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * Processor time, in clock ticks, of the daemon (in all, and its main thread, which does every
 * commit and answer) and of its launcher (itself, and the wrappers it started and reaped).
 * Where the kernel does not list a process's children, the launcher's part is missing.
 */
interface BurstTicks {
  daemon: number;
  mainThread: number;
  launcher?: { pid: number; self: number; reaped: number };
}

function burstTicks(daemonPid: number): BurstTicks {
  const main = procStatFields(`/proc/${daemonPid}/task/${daemonPid}/stat`);
  const ticks: BurstTicks = { daemon: cpuTicks(daemonPid), mainThread: Number(main[11]) + Number(main[12]) };
  try {
    const children = fs.readFileSync(`/proc/${daemonPid}/task/${daemonPid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    const launcher = children.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('drover-launcher'));
    if (launcher) {
      const fields = procStatFields(`/proc/${launcher}/stat`);
      ticks.launcher = { pid: launcher, self: Number(fields[11]) + Number(fields[12]), reaped: Number(fields[13]) + Number(fields[14]) };
    }
  } catch {
    // No children file (a kernel without CONFIG_PROC_CHILDREN), or a child that just ended: the daemon's part alone.
  }
  return ticks;
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

function clockTicks(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(result.stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
}

interface DroverResult {
  row: Row;
  /** startedAt − createdAt, the daemon's own clock. */
  daemonLoaded: Latency;
  daemonIdle: Latency;
  missingRunning: number;
  rssKiB: number;
  peakRssKiB: number;
  idleCpuPercent: number;
  /** Processor time spent during the burst, in seconds (see BurstTicks). */
  burstCpu: { daemon: number; mainThread: number; launcher?: number; wrappers?: number; wallMs: number };
}

async function benchDrover(): Promise<DroverResult> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-home-'));
  cleanups.set('drover-home', () => fs.rmSync(home, { recursive: true, force: true }));
  const workdir = path.join(home, 'work');
  fs.mkdirSync(workdir);
  // Default settings: no DROVER_* tuning inherited from the caller's environment.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DROVER_')));
  env['DROVER_HOME'] = home;
  let client: DaemonClient | undefined;
  try {
    const daemon = await startDaemon(env, daemonPaths(home).daemonLog);
    client = await DaemonClient.connect({ env, client: 'drover-bench' });
    check(client.daemon.pid === daemon.pid, `connected to daemon pid ${client.daemon.pid}, started ${daemon.pid}`);
    const tracker = new JobTracker();
    client.on('drover/event/job', (view) => tracker.onEvent(view));
    await client.request('drover/subscribe', { topics: ['jobs'] });
    const submit = async (name: string): Promise<number> => {
      const result = await client!.request('drover/submit', { specText: `name: ${name}\nrun: "true"\n`, cwd: workdir });
      check(result.jobs.length === 1, `submit ${name}: expected 1 job, got ${result.jobs.length}`);
      return result.jobs[0]!.id;
    };

    // The burst: 1,000 submits, pipelined.
    progress(`  Drover: submitting ${JOBS} jobs…`);
    const sentAt: number[] = [];
    const ackAt: number[] = [];
    const ids: number[] = [];
    const ticksBefore = burstTicks(daemon.pid);
    const cpu = machineCpuPerJob();
    const t0 = now();
    const acks: Promise<void>[] = [];
    for (let i = 0; i < JOBS; i++) {
      sentAt.push(now());
      acks.push(submit(`t${i}`).then((id) => {
        ackAt[i] = now();
        ids[i] = id;
      }));
    }
    await Promise.all(acks);
    const enqueueMs = Math.max(...ackAt) - t0;
    progress('  Drover: waiting for the jobs to finish…');
    await tracker.until(() => ids.every((id) => tracker.final.has(id)));
    const totalMs = Math.max(...ids.map((id) => tracker.final.get(id)!.at)) - t0;
    const cpuPerJobMs = cpu();
    const ticksAfter = burstTicks(daemon.pid);
    const seconds = (ticks: number) => ticks / clockTicks();
    // A launcher started again during the burst would make its numbers meaningless.
    const sameLauncher = ticksBefore.launcher && ticksBefore.launcher.pid === ticksAfter.launcher?.pid;
    const burstCpu = {
      daemon: seconds(ticksAfter.daemon - ticksBefore.daemon),
      mainThread: seconds(ticksAfter.mainThread - ticksBefore.mainThread),
      ...(sameLauncher && {
        launcher: seconds(ticksAfter.launcher!.self - ticksBefore.launcher!.self),
        wrappers: seconds(ticksAfter.launcher!.reaped - ticksBefore.launcher!.reaped),
      }),
      wallMs: totalMs,
    };
    const notSucceeded = ids.filter((id) => tracker.final.get(id)!.view.state !== 'succeeded');
    check(
      notSucceeded.length === 0,
      `Drover: ${notSucceeded.length} of ${JOBS} jobs did not succeed: ${notSucceeded.slice(0, 5).map((id) => `#${id} ${tracker.final.get(id)!.view.state} (${tracker.final.get(id)!.view.reason ?? ''})`).join('; ')}`,
    );
    const loaded: number[] = [];
    let missingRunning = 0;
    ids.forEach((id, i) => {
      const running = tracker.runningAt.get(id);
      if (running === undefined) missingRunning++;
      else loaded.push(running - sentAt[i]!);
    });
    const daemonSide = (jobIds: number[]): Latency =>
      latency(jobIds.map((id) => {
        const { view } = tracker.final.get(id)!;
        check(view.startedAt !== undefined, `Drover: job #${id} succeeded without a startedAt`);
        return view.startedAt - view.createdAt;
      }));

    // Idle: one job at a time.
    progress(`  Drover: ${IDLE_JOBS} jobs one at a time…`);
    const idle: number[] = [];
    const idleIds: number[] = [];
    for (let i = 0; i < IDLE_JOBS; i++) {
      const sent = now();
      const id = await submit(`idle${i}`);
      await tracker.until(() => tracker.final.has(id));
      check(tracker.final.get(id)!.view.state === 'succeeded', `Drover: idle job #${id} ${tracker.final.get(id)!.view.state}`);
      const running = tracker.runningAt.get(id);
      if (running === undefined) missingRunning++;
      else idle.push(running - sent);
      idleIds.push(id);
    }

    // The daemon at rest, still serving a subscribed client.
    progress('  Drover: measuring the idle daemon…');
    await sleep(IDLE_SETTLE_MS);
    const rssKiB = statusKiB(daemon.pid, 'VmRSS');
    const peakRssKiB = statusKiB(daemon.pid, 'VmHWM');
    const ticks0 = cpuTicks(daemon.pid);
    const window0 = performance.now();
    await sleep(IDLE_WINDOW_MS);
    const idleCpuPercent = ((cpuTicks(daemon.pid) - ticks0) / clockTicks() / ((performance.now() - window0) / 1000)) * 100;

    // The daemon may exit before its answer arrives: its going away is the answer.
    client.request('drover/shutdown', {}).catch(() => undefined);
    const stopped = await Promise.race([daemon.exited.then(() => true), sleep(10_000).then(() => false)]);
    check(stopped, 'Drover: the daemon did not exit within 10 s of drover/shutdown');
    cleanups.delete('daemon');
    return {
      row: { name: 'Drover', enqueueRate: JOBS / (enqueueMs / 1000), loaded: latency(loaded), idle: latency(idle), totalMs, throughput: JOBS / (totalMs / 1000), cpuPerJobMs },
      daemonLoaded: daemonSide(ids),
      daemonIdle: daemonSide(idleIds),
      missingRunning,
      rssKiB,
      peakRssKiB,
      idleCpuPercent,
      burstCpu,
    };
  } finally {
    client?.close();
    runCleanupsNamed('daemon');
  }
}

// ---------------------------------------------------------------------------------------------
// Drover's launch path alone

/**
 * The launcher and the wrappers it starts, driven as the daemon drives them: SLOTS jobs of `true`
 * in flight, the next one asked for as soon as one ends, each in its own attempt folder.
 */
async function benchLaunchPath(): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-launch-'));
  cleanups.set('launch-dir', () => fs.rmSync(dir, { recursive: true, force: true }));
  const launcher = new LauncherClient();
  cleanups.set('launcher', () => launcher.close());
  launcher.start();
  // One launch first, so that the launcher's own start is not counted.
  await new Promise<void>((resolve, reject) => launcher.launch({ command: 'true', cwd: dir, dir: path.join(dir, 'warm'), env: {} }, { started: () => undefined, failed: (message) => reject(new BenchAssertion(`launch path: ${message}`)), exited: resolve }));
  progress(`  launch path: ${JOBS} jobs…`);
  let next = 0;
  const ended: string[] = [];
  const cpu = machineCpuPerJob();
  const t0 = now();
  await new Promise<void>((resolve, reject) => {
    const launchNext = (): void => {
      const attemptDir = path.join(dir, String(next++));
      launcher.launch({ command: 'true', cwd: dir, dir: attemptDir, env: {} }, {
        started: () => undefined,
        failed: (message) => reject(new BenchAssertion(`launch path: ${message}`)),
        exited: () => {
          ended.push(attemptDir);
          if (ended.length === JOBS) resolve();
          else if (next < JOBS) launchNext();
        },
      });
    };
    for (let slot = 0; slot < Math.min(SLOTS, JOBS); slot++) launchNext();
  });
  const totalMs = now() - t0;
  const cpuPerJobMs = cpu();
  runCleanupsNamed('launcher');
  const failed = ended.filter((attemptDir) => readExitStatus(attemptDir)?.exitCode !== 0);
  check(failed.length === 0, `launch path: ${failed.length} of ${JOBS} jobs did not record exit 0 (first: ${failed[0]})`);
  return { name: 'launch path alone', totalMs, throughput: JOBS / (totalMs / 1000), cpuPerJobMs };
}

// ---------------------------------------------------------------------------------------------
// Report

/** The file system type of the mount that holds `dir` (where fsyncs land), from /proc/mounts. */
function fileSystemOf(dir: string): string {
  try {
    let best = { point: '', type: 'unknown' };
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, point, type] = line.split(' ');
      if (point && type && (dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length >= best.point.length) best = { point, type };
    }
    return `${best.type} (${best.point})`;
  } catch {
    return 'unknown';
  }
}

const cellOr = (value: number | undefined, format: (v: number) => string): string => (value === undefined ? '—' : format(value));

function rowCells(row: Row): string[] {
  if (row.throughput === undefined) return [row.name, 'missing', '—', '—', '—', '—', '—', '—'];
  return [
    row.name,
    cellOr(row.enqueueRate, rate),
    cellOr(row.loaded?.p50, ms),
    cellOr(row.loaded?.p99, ms),
    cellOr(row.idle?.p50, ms),
    cellOr(row.totalMs, (v) => (v / 1000).toFixed(2)),
    rate(row.throughput),
    cellOr(row.cpuPerJobMs, ms),
  ];
}

const resultTable = (rows: Row[]): string => table(['', 'enqueue jobs/s', 'submit→start p50 ms', 'p99 ms', 'idle p50 ms', 'total s', 'jobs/s', 'CPU ms/job'], rows.map(rowCells));

/** The phases that finished, shown even when a later one fails. */
const completed: Row[] = [];


async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(`Drover runner benchmark: ${JOBS.toLocaleString('en-US')} trivial jobs (\`true\`), ${SLOTS} slots (one per CPU, as the daemon's local host has)`);
  console.log(`node ${process.version} · ${cpu} · ${os.cpus().length} cores · temp dir ${os.tmpdir()} on ${fileSystemOf(os.tmpdir())} · ${new Date().toISOString()}\n`);

  progress(`  floor: ${JOBS} spawns of /bin/true…`);
  const floor = await phase('floor', benchFloor);
  completed.push(floor);
  const tsp = await phase('task-spooler', benchTaskSpooler);
  completed.push(tsp);
  const drover = await phase('Drover', benchDrover);
  completed.push(drover.row);
  // After Drover, so that its 1,000 folders do not slow the files Drover creates (see cleanups).
  const launchPath = await phase('launch path', benchLaunchPath);
  progress('');

  console.log(resultTable([floor, tsp, drover.row, launchPath]));
  console.log(`
  floor: spawn→exit of /bin/true, sequential; "submit→start" is the whole run of the process.
  enqueue jobs/s: task-spooler, a sequential loop of \`tsp true\` (one client process per job);
    Drover, ${JOBS.toLocaleString('en-US')} pipelined drover/submit requests, until the last is acknowledged.
  submit→start, under the burst: enqueue call → the job's start (task-spooler: the stamp its
    \`date +%s%N\` job printed; Drover: the 'running' job event reaching the client). Includes
    time queued behind the other jobs, so it grows with the backlog.
  idle p50: the same, for ${IDLE_JOBS} jobs submitted one at a time, each waited for.
  total s: first enqueue → last job finished; jobs/s = ${JOBS.toLocaleString('en-US')} / total.
  CPU ms/job: the whole machine's processor time (every core, this process included) over the
    ${JOBS.toLocaleString('en-US')}-job run, per job. ${SLOTS} cores allow at most ${SLOTS} × 1,000 / (CPU ms/job) jobs/s.
  launch path alone: Drover's launcher starting each job's wrapper, ${SLOTS} in flight, with no daemon:
    the most the daemon could reach here if its own work cost nothing.`);
  if (tsp.note) console.log(`${tsp.loaded ? '' : '\n'}  task-spooler: ${tsp.note}`);

  console.log('\nDrover submit→start, two clocks (ms)');
  console.log(
    table(
      ['', 'p50', 'p99', 'n'],
      [
        ['burst, client: send → running event', ms(drover.row.loaded!.p50), ms(drover.row.loaded!.p99), String(drover.row.loaded!.n)],
        ['burst, daemon: startedAt − createdAt', ms(drover.daemonLoaded.p50), ms(drover.daemonLoaded.p99), String(drover.daemonLoaded.n)],
        ['idle, client: send → running event', ms(drover.row.idle!.p50), ms(drover.row.idle!.p99), String(drover.row.idle!.n)],
        ['idle, daemon: startedAt − createdAt', ms(drover.daemonIdle.p50), ms(drover.daemonIdle.p99), String(drover.daemonIdle.n)],
      ],
    ),
  );
  if (drover.missingRunning > 0) console.log(`  (${drover.missingRunning} jobs reached the client with no 'running' event; left out of the client-side numbers)`);

  const floorP50 = floor.loaded!.p50;
  const burstRatio = drover.row.loaded!.p50 / floorP50;
  const idleRatio = drover.row.idle!.p50 / floorP50;
  console.log('\nTargets');
  console.log(`  Drover p50 submit→start / floor p50 (target < ${TARGET_LATENCY_RATIO}×), idle queue: ${ratio(idleRatio)} ${verdict(idleRatio < TARGET_LATENCY_RATIO)}`);
  console.log(`  Drover p50 submit→start / floor p50 (target < ${TARGET_LATENCY_RATIO}×), under the ${JOBS.toLocaleString('en-US')}-job burst: ${ratio(burstRatio)} ${verdict(burstRatio < TARGET_LATENCY_RATIO)}`);
  if (tsp.throughput !== undefined) {
    const throughputRatio = drover.row.throughput! / tsp.throughput;
    console.log(`  Drover throughput / task-spooler throughput (target > ${TARGET_THROUGHPUT_RATIO}×): ${ratio(throughputRatio)} ${verdict(throughputRatio > TARGET_THROUGHPUT_RATIO)}`);
  } else {
    console.log(`  Drover throughput / task-spooler throughput (target > ${TARGET_THROUGHPUT_RATIO}×): n/a (task-spooler missing)`);
  }
  const burst = drover.burstCpu;
  const share = (seconds: number) => `${((seconds * 1000) / burst.wallMs * 100).toFixed(0)}%`;
  console.log(`\nProcessor time of the ${JOBS.toLocaleString('en-US')}-job burst (${(burst.wallMs / 1000).toFixed(2)} s; ${SLOTS} cores give ${((SLOTS * burst.wallMs) / 1000).toFixed(2)} s):`);
  console.log(`  daemon ${burst.daemon.toFixed(2)} s, of which its main thread ${burst.mainThread.toFixed(2)} s (on a processor ${share(burst.mainThread)} of the burst; it also waits there for each commit's sync)`);
  if (burst.launcher !== undefined) console.log(`  launcher ${burst.launcher.toFixed(2)} s; the jobs' wrappers (sh, and the command) ${burst.wrappers!.toFixed(2)} s`);
  console.log(`\nDrover daemon, idle after the run: RSS ${(drover.rssKiB / 1024).toFixed(1)} MiB (peak ${(drover.peakRssKiB / 1024).toFixed(1)} MiB), CPU ${drover.idleCpuPercent.toFixed(2)}% over ${IDLE_WINDOW_MS / 1000} s`);
  console.log('Every Drover state change above (submitted, running, succeeded) is durable before the daemon reports it: SQLite in WAL mode, the log synced (fdatasync) before any answer or process start.');
  console.log('task-spooler keeps its queue in memory only (lost when its server dies); the floor keeps nothing.');
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    runCleanups();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  () => {
    runCleanups();
    process.exit(0);
  },
  (error: unknown) => {
    progress('');
    runCleanups();
    if (completed.length) console.log(`${resultTable(completed)}\n(the phases that finished before the failure)`);
    if (error instanceof BenchAssertion) {
      console.error(`\nbench assertion failed: ${error.message}`);
      process.exit(1);
    }
    console.error(error);
    process.exit(1);
  },
);
