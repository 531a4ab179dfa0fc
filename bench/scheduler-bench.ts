/**
 * Scheduler benchmark: Drover's policy (runner/src/scheduler/policy.ts, the module the daemon
 * runs) replayed over a public GPU cluster trace in a discrete-event simulator, against FIFO and
 * against SJF that knows every true duration, on the same input, in one run; then the time of
 * one scheduling decision with 10,000 pending jobs over 1,000 GPUs. Run with `npm run bench`.
 *
 * The trace: Alibaba cluster-trace-gpu-v2023, from "Beware of Fragmentation: Scheduling
 * GPU-Sharing Workloads with Fragmentation Gradient Descent", Weng et al., USENIX ATC '23. It is
 * read from `../shared/traces/` beside the repository (or $DROVER_TRACES) and never copied in;
 * without it the replay is skipped with a message, and the decision timing still runs.
 *
 * See bench/README.md for the replay's method (window, scaling, time limits) and its metrics.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { RunPlan } from '../common/spec';
import { recentGpuHours } from '../runner/src/scheduler/fair-share';
import { chooseGpus, freeCapacity, requestOf, take, type Allocation, type HostCapacity } from '../runner/src/scheduler/placement';
import { DEFAULT_POLICY, schedule, type Decisions, type QueuedJob, type RunningJob, type SchedulingInput } from '../runner/src/scheduler/policy';
import { checkStarvationBound, simulate, type Policy, type SimulatedJob, type SimulationResult, type StarvationCheck } from '../runner/src/scheduler/simulator';
import { check, latency, ms, progress, runSync, table, verdict } from './report';

const ROOT = resolve(__dirname, '..', '..');
const TRACE_DIR = process.env['DROVER_TRACES'] ?? resolve(ROOT, '..', 'shared', 'traces');
const TRACE_FILE = 'openb_pod_list_default.csv';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const HOUR = 3_600_000;

/** Users over-estimate: each job's time limit is its true duration times this. */
const OVER_ESTIMATE = 3;
/**
 * Arrivals are compressed so that, were nothing ever queued, the jobs would keep this part of the
 * pool's GPUs busy over the arrival window (GPU-time inside the window; the long tail of
 * durations runs on past it).
 */
const OFFERED_LOAD = 0.9;
/** The first arrivals of the trace are long-lived services created over four months; the window starts after them. */
const WINDOW_START = 2_000;

/** A host like the trace's most common 8-GPU node (G2: 96 CPUs, 384 GiB). */
function traceHost(index: number): HostCapacity {
  return {
    name: `node${index}`, usable: true, cpus: 96, memoryBytes: 384 * GiB,
    gpus: Array.from({ length: 8 }, (_, gpu) => ({ index: gpu, name: 'G2', memoryTotalBytes: 32 * GiB, foreign: false })),
  };
}

interface TraceTask {
  name: string;
  cpus: number;
  memoryBytes: number;
  gpus: number;
  /** seconds */
  arrival: number;
  duration: number;
}

interface Pool {
  label: string;
  hosts: number;
  /** How many arrivals, from WINDOW_START. */
  arrivals: number;
}

const POOLS: Pool[] = [
  { label: '8 hosts × 8 GPUs', hosts: 8, arrivals: 2_000 },
  { label: '64 hosts × 8 GPUs', hosts: 64, arrivals: Infinity },
];

function readTrace(file: string): { tasks: TraceTask[]; censored: number } {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const columns = header!.split(',');
  const at = (name: string) => {
    const index = columns.indexOf(name);
    check(index >= 0, `${file} has no column ${name}`);
    return index;
  };
  const [name, cpu, memory, gpus, created, deleted, scheduled] = ['name', 'cpu_milli', 'memory_mib', 'num_gpu', 'creation_time', 'deletion_time', 'scheduled_time'].map(at) as number[];
  const rows = lines.map((line) => line.split(','));
  const end = Math.max(...rows.map((row) => Number(row[deleted!])));
  const tasks: TraceTask[] = [];
  let censored = 0;
  for (const row of rows) {
    // Still running when the trace ended: its true duration is unknown.
    if (Number(row[deleted!]) === end) {
      censored++;
      continue;
    }
    const arrival = Number(row[created!]);
    const started = row[scheduled!] === '' ? arrival : Number(row[scheduled!]);
    tasks.push({
      name: row[name!]!, cpus: Number(row[cpu!]) / 1000, memoryBytes: Number(row[memory!]) * MiB, gpus: Number(row[gpus!]), arrival,
      duration: Math.max(1, Number(row[deleted!]) - started),
    });
  }
  tasks.sort((a, b) => a.arrival - b.arrival || (a.name < b.name ? -1 : 1));
  return { tasks, censored };
}

/** The window's tasks as simulated jobs, arrivals compressed to the offered load, in ms. */
function jobsFor(tasks: readonly TraceTask[], pool: Pool): { jobs: SimulatedJob[]; compression: number; dropped: number } {
  const host = traceHost(0);
  const window = tasks.slice(WINDOW_START, WINDOW_START + pool.arrivals);
  const fits = window.filter((task) => task.cpus <= host.cpus && task.memoryBytes <= host.memoryBytes);
  const first = fits[0]!.arrival;
  const span = fits.at(-1)!.arrival - first;
  // The busy fraction falls as the window stretches: bisect for the compression that gives the load.
  const busy = (compression: number) => {
    const window = compression * span;
    const inside = fits.reduce((sum, task) => sum + task.gpus * Math.max(0, Math.min(task.duration, window - (task.arrival - first) * compression)), 0);
    return inside / (pool.hosts * 8 * window);
  };
  let low = 1e-6;
  let high = 100;
  for (let step = 0; step < 100; step++) {
    const middle = Math.sqrt(low * high);
    if (busy(middle) > OFFERED_LOAD) low = middle;
    else high = middle;
  }
  const compression = Math.sqrt(low * high);
  const jobs = fits.map((task, index): SimulatedJob => {
    const plan: RunPlan = {
      key: task.name, job: task.name, params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority: 0, needs: [],
      resources: { gpus: { count: task.gpus }, cpus: task.cpus, memoryBytes: task.memoryBytes },
      timeoutSeconds: Math.ceil(task.duration * OVER_ESTIMATE),
    };
    return { id: index + 1, arrival: Math.round((task.arrival - first) * compression * 1000), duration: task.duration * 1000, plan };
  });
  return { jobs, compression, dropped: window.length - fits.length };
}

// ---------------------------------------------------------------------------------------------
// The baselines: simple list schedulers over the same capacity model, first fit.

function listScheduler(order: (queued: QueuedJob[]) => QueuedJob[], strict: boolean): Policy {
  return (input: SchedulingInput): Decisions => {
    const free = new Map(input.hosts.map((host) => [host.name, freeCapacity(host, [])]));
    for (const run of input.running) take(free.get(run.host)!, run);
    const start: Allocation[] = [];
    for (const job of order(input.queued)) {
      const request = requestOf(job.plan);
      let placed: Allocation | undefined;
      for (const host of input.hosts) {
        const left = free.get(host.name)!;
        if (left.cpus < request.cpus || left.memoryBytes < request.memoryBytes || left.gpus.size < request.gpus.count) continue;
        const gpus = chooseGpus(left.gpus.values(), request.gpus);
        if (gpus) {
          placed = { jobId: job.id, host: host.name, cpus: request.cpus, memoryBytes: request.memoryBytes, gpus };
          break;
        }
      }
      if (!placed) {
        if (strict) break;
        continue;
      }
      start.push(placed);
      take(free.get(placed.host)!, placed);
    }
    return { start, waiting: new Map(), skip: [] };
  };
}

const fifo = listScheduler((queued) => [...queued].sort((a, b) => a.submittedAt! - b.submittedAt! || a.id - b.id), true);

function sjfOracle(jobs: readonly SimulatedJob[]): Policy {
  const duration = new Map(jobs.map((job) => [job.id, job.duration]));
  return listScheduler((queued) => [...queued].sort((a, b) => duration.get(a.id)! - duration.get(b.id)! || a.id - b.id), false);
}

// ---------------------------------------------------------------------------------------------
// Metrics

interface Outcome {
  avgJctH: number;
  queueP50H: number;
  queueP99H: number;
  maxWaitH: number;
  makespanH: number;
  /** Busy GPU-time over GPU-time, within the arrival window and over the makespan. */
  windowUtilization: number;
  utilization: number;
  decisions: number;
  wallS: number;
}

function outcome(result: SimulationResult, jobs: readonly SimulatedJob[], gpus: number, wallS: number): Outcome {
  check(result.neverStarted.length === 0, `${result.neverStarted.length} jobs never started`);
  check(result.runs.length === jobs.length, 'every job ran once');
  const waits = result.runs.map((run) => run.start - run.arrival);
  const first = Math.min(...result.runs.map((run) => run.arrival));
  const last = Math.max(...result.runs.map((run) => run.end));
  const work = result.runs.reduce((sum, run) => sum + run.gpus.length * (run.end - run.start), 0);
  const windowEnd = Math.max(...jobs.map((job) => job.arrival));
  const windowWork = result.runs.reduce((sum, run) => sum + run.gpus.length * Math.max(0, Math.min(run.end, windowEnd) - Math.max(run.start, first)), 0);
  const queue = latency(waits);
  return {
    avgJctH: result.runs.reduce((sum, run) => sum + run.end - run.arrival, 0) / result.runs.length / HOUR,
    queueP50H: queue.p50 / HOUR,
    queueP99H: queue.p99 / HOUR,
    maxWaitH: Math.max(...waits) / HOUR,
    makespanH: (last - first) / HOUR,
    windowUtilization: windowWork / (gpus * (windowEnd - first)),
    utilization: work / (gpus * (last - first)),
    decisions: result.decisions,
    wallS,
  };
}

const hours = (value: number): string => (value >= 10 ? value.toFixed(1) : value.toFixed(2));

function replay(tasks: readonly TraceTask[], pool: Pool): { drover: Outcome; fifo: Outcome; sjf: Outcome; promises: { kept: number; made: number }; starvation: StarvationCheck } {
  const { jobs, compression, dropped } = jobsFor(tasks, pool);
  const hosts = Array.from({ length: pool.hosts }, (_, index) => traceHost(index));
  const gpus = pool.hosts * 8;
  const work = jobs.reduce((sum, job) => sum + job.plan.resources.gpus.count * job.duration, 0);
  console.log(
    `\n${pool.label}: ${jobs.length.toLocaleString('en-US')} arrivals (trace tasks ${WINDOW_START}–${WINDOW_START + jobs.length + dropped - 1} by creation time` +
      `${dropped ? `, ${dropped} larger than a host left out` : ''}), ${(work / HOUR).toFixed(0)} GPU-hours, arrival times × ${compression.toFixed(4)}, window ${hours(jobs.at(-1)!.arrival / HOUR)} h`,
  );
  const run = (name: string, policy: Policy, observe?: Parameters<typeof simulate>[3]) => {
    progress(`${pool.label}: ${name}…`);
    const started = process.hrtime.bigint();
    const result = simulate(jobs, hosts, policy, observe);
    return { result, outcome: outcome(result, jobs, gpus, Number(process.hrtime.bigint() - started) / 1e9) };
  };
  // The guarantee the bound rests on, checked as it runs: the job first in line starts by the time reserved for it.
  const promises = { kept: 0, made: 0 };
  let promise: { jobId: number; at: number } | undefined;
  const { result: droverResult, outcome: drover } = run('Drover', schedule, {
    observe: (now, decisions) => {
      for (const start of decisions.start) {
        if (start.jobId !== promise?.jobId) continue;
        if (now <= promise.at) promises.kept++;
      }
      const reservation = decisions.reservation;
      if (!reservation) promise = undefined;
      else if (reservation.jobId !== promise?.jobId) {
        promise = { jobId: reservation.jobId, at: reservation.at };
        promises.made++;
      }
    },
  });
  const fifoOutcome = run('FIFO', fifo).outcome;
  const sjf = run('SJF-oracle', sjfOracle(jobs)).outcome;
  const rows = [
    ['Drover', drover],
    ['FIFO', fifoOutcome],
    ['SJF-oracle', sjf],
  ] as const;
  console.log(
    table(
      ['policy', 'avg JCT h', 'queue p50 h', 'queue p99 h', 'max wait h', 'makespan h', 'GPU util (window)', 'GPU util (makespan)', 'decisions', 'sim s'],
      rows.map(([name, o]) => [
        name, hours(o.avgJctH), hours(o.queueP50H), hours(o.queueP99H), hours(o.maxWaitH), hours(o.makespanH), o.windowUtilization.toFixed(3), o.utilization.toFixed(3), String(o.decisions), o.wallS.toFixed(1),
      ]),
    ),
  );
  return { drover, fifo: fifoOutcome, sjf, promises, starvation: checkStarvationBound(droverResult, jobs, hosts, DEFAULT_POLICY) };
}

// ---------------------------------------------------------------------------------------------
// One decision, 10,000 pending jobs over 1,000 GPUs

function decisionTiming(): void {
  const hosts = Array.from({ length: 125 }, (_, index) => traceHost(index));
  // Half of the hosts have A100s, so typed requests narrow the choice.
  for (const host of hosts.slice(0, 62)) for (const gpu of host.gpus) gpu.name = 'NVIDIA A100-SXM4-80GB';
  let seed = 7;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const now = 1_000 * HOUR;
  const users = Array.from({ length: 20 }, (_, index) => `user${index}`);
  const plan = (gpus: number, type: string | undefined, cpus: number): RunPlan => ({
    key: 'j', job: 'j', params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority: pick([0, 0, 0, 1, 2]), needs: [],
    resources: { gpus: { count: gpus, ...(type && gpus > 0 && { type }) }, cpus, memoryBytes: cpus * 4 * GiB },
    timeoutSeconds: pick([600, 3_600, 4 * 3_600, 24 * 3_600]),
  });
  const queued: QueuedJob[] = Array.from({ length: 10_000 }, (_, index) => ({
    id: index + 1, plan: plan(pick([0, 1, 1, 1, 1, 1, 2, 4, 8]), pick([undefined, undefined, 'A100']), pick([2, 4, 8, 12])),
    group: String(index + 1), needs: [], notBefore: null, user: pick(users), submittedAt: now - Math.floor(random() * 48 * HOUR),
  }));

  // Steady state: the pool full but for a few GPUs, so most jobs wait (the daemon's usual case).
  const running: RunningJob[] = [];
  let id = 100_000;
  for (const host of hosts) {
    let gpu = 0;
    while (gpu < 8 - (host.name.endsWith('0') ? 1 : 0)) {
      const count = Math.min(pick([1, 1, 2, 4]), 8 - gpu);
      running.push({ jobId: id++, host: host.name, cpus: 11 * count, memoryBytes: 32 * GiB * count, gpus: Array.from({ length: count }, (_, i) => gpu + i), group: 'r', user: pick(users), startedAt: now - Math.floor(random() * 4 * HOUR), timeLimitMs: pick([1, 4, 24]) * HOUR });
      gpu += count;
    }
  }
  const usage = recentGpuHours(running.map((run) => ({ user: run.user!, gpus: run.gpus.length, startedAt: run.startedAt!, endedAt: null })), now);
  const time = (input: SchedulingInput, reps: number) => {
    const samples: number[] = [];
    const cpuSamples: number[] = [];
    let started = 0;
    for (let rep = 0; rep < reps + 20; rep++) {
      const cpu = process.cpuUsage();
      const begin = process.hrtime.bigint();
      const decisions = schedule({ ...input, now: input.now + rep });
      const elapsed = Number(process.hrtime.bigint() - begin) / 1e6;
      const used = process.cpuUsage(cpu);
      if (rep >= 20) {
        samples.push(elapsed);
        cpuSamples.push((used.user + used.system) / 1000);
      }
      started = decisions.start.length;
      check(decisions.start.length + decisions.waiting.size + decisions.skip.length === input.queued.length, 'every job is decided');
    }
    return { ...latency(samples), min: Math.min(...samples), cpu: latency(cpuSamples), started };
  };
  const base = { now, queued, hosts, states: new Map(), recentGpuHours: usage };
  const steady = time({ ...base, running }, process.argv.includes('--decision-only') ? 5 : 200);
  const empty = time({ ...base, running: [] }, 50);
  const gpus = hosts.length * 8;
  console.log(
    `\nOne decision: ${queued.length.toLocaleString('en-US')} pending jobs (20 users, priorities 0–2, 1/3 asking for A100), ${hosts.length} hosts × 8 = ${gpus} GPUs` +
      ` (load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs: other work on the machine inflates wall times; CPU time counts only this process's own)`,
  );
  console.log(
    table(
      ['pool', 'runs', 'started', 'wall min ms', 'wall p50 ms', 'wall p99 ms', 'CPU p50 ms', 'CPU p99 ms', 'n'],
      [
        ['nearly full (steady state)', String(running.length), String(steady.started), ms(steady.min), ms(steady.p50), ms(steady.p99), ms(steady.cpu.p50), ms(steady.cpu.p99), String(steady.n)],
        ['empty (a burst fills it)', '0', String(empty.started), ms(empty.min), ms(empty.p50), ms(empty.p99), ms(empty.cpu.p50), ms(empty.cpu.p99), String(empty.n)],
      ],
    ),
  );
  console.log(
    `target: one decision under 5 ms at ${queued.length.toLocaleString('en-US')} × ${gpus} — wall p50 ${ms(steady.p50)} ms, p99 ${ms(steady.p99)} ms (steady), p99 ${ms(empty.p99)} ms (empty pool): ${verdict(steady.p99 < 5 && empty.p99 < 5)}`,
  );
}

function main(): void {
  console.log('Scheduler benchmark');
  const file = join(TRACE_DIR, TRACE_FILE);
  if (process.argv.includes('--decision-only')) {
    decisionTiming();
    return;
  }
  if (!existsSync(file)) {
    console.log(`trace: skipped — ${file} is not there (Alibaba cluster-trace-gpu-v2023; see bench/README.md). Set DROVER_TRACES to its folder to replay it.`);
  } else {
    const { tasks, censored } = readTrace(file);
    console.log(
      `Trace: Alibaba cluster-trace-gpu-v2023 (Weng et al., "Beware of Fragmentation", USENIX ATC '23), ${TRACE_FILE}: ${tasks.length.toLocaleString('en-US')} tasks` +
        ` (${censored} still running at the trace's end left out: their durations are unknown).` +
        `\nEach job asks its num_gpu as whole GPUs, its CPUs and memory; time limit = true duration × ${OVER_ESTIMATE}; one user, priority 0; arrivals compressed to an offered load of ${OFFERED_LOAD}.` +
        `\nDrover: the daemon's policy with its defaults (aging one level per ${DEFAULT_POLICY.agingMs / HOUR} h, EASY backfill by time limit, best fit). FIFO: strict order, first fit. SJF-oracle: shortest true duration first, first fit, skipping what does not fit.`,
    );
    const results = POOLS.map((pool) => ({ pool, ...replay(tasks, pool) }));
    console.log('');
    for (const { pool, drover, fifo: f, sjf, promises, starvation } of results) {
      const line = `avg JCT vs FIFO ${(f.avgJctH / drover.avgJctH).toFixed(2)}x, vs SJF-oracle ${(sjf.avgJctH / drover.avgJctH).toFixed(2)}x, utilization ${drover.windowUtilization.toFixed(2)} (FIFO ${f.windowUtilization.toFixed(2)})`;
      // The headline is the small pool's; the large pool's line says which it is.
      console.log(pool === POOLS[0] ? `trace: ${line}` : `trace (${pool.label}): ${line}`);
      console.log(
        `  ${pool.label}: JCT ≥ 1.5× better than FIFO: ${verdict(f.avgJctH / drover.avgJctH >= 1.5)}; utilization ≥ FIFO's: ${verdict(drover.windowUtilization >= f.windowUtilization - 1e-9)};` +
          ` no starvation: once the jobs queued before it have started, a job starts by the time the first host empties by its runs' time limits:` +
          ` ${verdict(starvation.met && promises.kept === promises.made)} (${starvation.jobs.toLocaleString('en-US')} jobs; worst ${hours(starvation.worstH)} h after the jobs ahead started, bound there ${hours(starvation.worstBoundH)} h, loosest bound ${hours(starvation.loosestH)} h;` +
          ` first in line started by its reservation ${promises.kept}/${promises.made};` +
          ` max wait ${hours(drover.maxWaitH)} h, ${drover.maxWaitH > f.maxWaitH ? 'longer than' : 'within'} FIFO's ${hours(f.maxWaitH)} h)`,
      );
    }
  }
  decisionTiming();
}

runSync(main);
