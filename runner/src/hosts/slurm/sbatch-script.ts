/**
 * Compiles Drover runs into the batch script `sbatch` takes: one script per job of a
 * submission, where a sweep's points become the tasks of one job array (`%max_parallel` caps
 * how many run at once) and a workflow's `needs` become `--dependency=afterok:…` on the SLURM
 * jobs of the upstream runs. Pure: the same runs give the same script, which is what
 * "Preview sbatch" shows before anything is submitted.
 *
 * `#SBATCH` lines are read by sbatch, not by a shell, so only values SLURM itself names
 * (partitions, GRES types, paths Drover chose) go there, and they are checked; everything from
 * the spec that a shell reads (commands, environment, the workdir) is in the script body,
 * quoted with `shellWord`.
 */
import { createHash } from 'node:crypto';
import { shellWord, type RunPlan } from '../../../../common/spec';

/** Where a task's files are on the cluster, below the job's output folder: `<folder>/<task>/output.log`. */
export const TASK_FILES = { log: 'output.log', metrics: 'metrics.jsonl' } as const;

/** What SLURM accepts in a name it defines (partition, QOS, account, GRES type) in an #SBATCH line. */
const SLURM_NAME = /^[A-Za-z0-9_.+-]+$/;
/** Paths that stand in an #SBATCH line as they are (Drover builds them from the cluster's root). */
const DIRECTIVE_PATH = /^\/[A-Za-z0-9_./+@%,:-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class SbatchError extends Error {}

/** One SLURM job: a run, or all points of a sweep (array task i is the run with `sweepIndex` i). */
export interface SbatchJob {
  /** The job's SLURM name (`spec.job`). */
  name: string;
  /** Its runs, in task order; they share the job's resources, timeout and slurm settings. */
  runs: SbatchRun[];
  /** Where the job's commands run, on the cluster's filesystem. */
  workdir: string;
  /** The job's folder on the cluster, for its output: task i writes `<outputDir>/<i>/output.log`. */
  outputDir: string;
  /** SLURM job ids that must complete successfully first (their whole arrays); `<name>` in a preview. */
  dependsOn: string[];
  /** A setup command run once per workdir (guarded by a marker file) before the job's command. */
  setup?: string;
}

export interface SbatchRun {
  /** The Drover run id, given to the command as DROVER_RUN_ID. */
  runId: number;
  plan: RunPlan;
  /** The command line (a notebook's is built by the caller). */
  command: string;
}

/** The script for `sbatch` (given on its standard input). Throws SbatchError for what SLURM could not be told. */
export function sbatchScript(job: SbatchJob): string {
  if (job.runs.length === 0) throw new SbatchError(`${job.name}: no runs to submit`);
  const first = job.runs[0]!.plan;
  const directives: string[] = [];
  const add = (option: string, value?: string | number) => directives.push(`#SBATCH --${option}${value === undefined ? '' : `=${value}`}`);
  add('job-name', slurmName(job.name.replace(/[^A-Za-z0-9_.+-]/g, '_'), 'job name'));
  const array = isArrayJob(job);
  if (array) {
    const parallel = first.maxParallel !== undefined ? `%${first.maxParallel}` : '';
    add('array', `${job.runs.length === 1 ? '0' : `0-${job.runs.length - 1}`}${parallel}`);
  }
  // %a is the array task; a job without an array writes task 0's file.
  add('output', directivePath(`${job.outputDir}/${array ? '%a' : '0'}/${TASK_FILES.log}`, 'output folder'));
  add('open-mode', 'append');
  add('ntasks', 1);
  const resources = first.resources;
  if (resources.cpus !== undefined) add('cpus-per-task', Math.ceil(resources.cpus));
  if (resources.memoryBytes !== undefined) add('mem', `${Math.ceil(resources.memoryBytes / 2 ** 20)}M`);
  if (resources.gpus.count > 0) {
    const type = resources.gpus.type === undefined ? '' : `${slurmName(resources.gpus.type.toLowerCase(), 'GPU type')}:`;
    add('gres', `gpu:${type}${resources.gpus.count}`);
  }
  if (first.timeoutSeconds !== undefined) add('time', slurmTime(first.timeoutSeconds));
  const slurm = first.slurm ?? {};
  if (slurm.partition !== undefined) add('partition', slurmName(slurm.partition, 'partition'));
  if (slurm.qos !== undefined) add('qos', slurmName(slurm.qos, 'qos'));
  if (slurm.account !== undefined) add('account', slurmName(slurm.account, 'account'));
  if (job.dependsOn.length) {
    add('dependency', `afterok:${job.dependsOn.map((id) => (/^<[\w.-]+>$/.test(id) ? id : slurmName(id, 'dependency'))).join(':')}`);
    // A failed upstream run ends this one at once (Drover calls it skipped) instead of leaving it pending forever.
    add('kill-on-invalid-dep', 'yes');
  }

  const notes: string[] = [];
  if (resources.gpus.memoryBytes !== undefined) notes.push('# The GPU memory asked for has no sbatch option: the GRES type chooses the GPU.');
  if (first.retries > 0) notes.push(`# retries: ${first.retries} is Drover's; SLURM runs each task once.`);

  const body = [
    `task=\${SLURM_ARRAY_TASK_ID:-0}`,
    `dir=${shellWord(job.outputDir)}/"$task"`,
    'export DROVER_ATTEMPT=1',
    `export DROVER_METRICS="$dir"/${TASK_FILES.metrics}`,
    `cd ${shellWord(job.workdir)} || exit 1`,
  ];
  const taskLines = (run: SbatchRun): string[] => [
    `export DROVER_RUN_ID=${run.runId}`,
    ...Object.entries(run.plan.env).map(([name, value]) => {
      if (!ENV_NAME.test(name)) throw new SbatchError(`${job.name}: not an environment variable name: ${JSON.stringify(name)}`);
      return `export ${name}=${shellWord(value)}`;
    }),
    `command=${shellWord(run.command)}`,
  ];
  if (array) {
    body.push('case "$task" in');
    job.runs.forEach((run, index) => body.push(`  ${index})`, ...taskLines(run).map((line) => `    ${line}`), '    ;;'));
    body.push('  *) echo "drover: no run for array task $task" >&2; exit 1 ;;', 'esac');
  } else {
    body.push(...taskLines(job.runs[0]!));
  }
  if (job.setup !== undefined) {
    // Once per workdir and setup command; array tasks that start together take turns.
    const marker = `.drover-setup-${createHash('sha256').update(job.setup).digest('hex').slice(0, 12)}`;
    body.push(
      `if [ ! -e ${shellWord(marker)} ]; then`,
      `  flock ${shellWord(`${marker}.lock`)} sh -c ${shellWord(`[ -e ${shellWord(marker)} ] || { ( eval ${shellWord(job.setup)} ) </dev/null && : > ${shellWord(marker)}; }`)} || { echo "drover: setup failed" >&2; exit 1; }`,
      'fi',
    );
  }
  body.push('exec sh -c "$command"');
  return `${['#!/bin/sh', ...directives, ...notes, ...body].join('\n')}\n`;
}

/** Whether the job is a job array (a sweep, even of one point): its runs are then named `<id>_<task>`. */
export function isArrayJob(job: Pick<SbatchJob, 'runs'>): boolean {
  return job.runs.length > 1 || job.runs[0]?.plan.sweepIndex !== undefined;
}

/** The folders the job's tasks write to, which must exist before SLURM opens their output. */
export function taskDirs(job: Pick<SbatchJob, 'outputDir' | 'runs'>): string[] {
  return job.runs.map((_, index) => `${job.outputDir}/${index}`);
}

/** A timeout as SLURM's `--time`: whole minutes, rounded up (SLURM's limits are minutes). */
export function slurmTime(seconds: number): string {
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  return days > 0 ? `${days}-${pad(hours)}:${pad(rest)}:00` : `${hours}:${pad(rest)}:00`;
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

function slurmName(value: string, what: string): string {
  if (!SLURM_NAME.test(value)) throw new SbatchError(`the ${what} ${JSON.stringify(value)} is not a name SLURM takes (letters, digits, _ . + -)`);
  return value;
}

function directivePath(value: string, what: string): string {
  if (!DIRECTIVE_PATH.test(value)) throw new SbatchError(`the ${what} ${JSON.stringify(value)} must be an absolute path of letters, digits and _ . / + @ % , : - (sbatch reads it unquoted)`);
  return value;
}
