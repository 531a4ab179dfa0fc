import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { stringify } from 'yaml';
import { FINAL_STATES, type CellEventsChunk, type HostView, type JobView, type LogChunk, type SubmitParams, type SubmitResult } from '../../../common/protocol';
import { analyzeSpec, formatElapsed, formatGib, formatMetricValue, formatSize, parseDuration, parseGpuRequest, parseSize, shellWord, type ResourceRequest } from '../../../common/spec';
import { DaemonUnavailable, type DaemonClient } from '../../../common/node/daemon-client';
import { connectDaemon } from './daemon-connection';
import { CliError, EXIT, formatTable, plural, type CommandOutput } from './output';
import { REDACTED } from '../records/reproduction';
import { parseOverrides, readSpecText } from './spec-commands';

/**
 * Connects, starting the daemon if it is not running (on demand, for reading as for submitting:
 * after a reboot or a `drover daemon stop`, `drover ps` finds the runs, and queued ones go on),
 * runs `work`, and always disconnects.
 */
async function withDaemon<T>(work: (client: DaemonClient) => Promise<T>): Promise<T> {
  const client = await connectDaemon(true);
  try {
    return await work(client);
  } finally {
    client.close();
  }
}

export async function submitCommand(
  files: string[],
  options: { params: string[]; host?: string; wait: boolean; json: boolean; previewSbatch?: boolean },
  out: CommandOutput,
): Promise<number> {
  const params = readSubmission(files, options);
  if (!options.previewSbatch && analyzeSpec(params.specText, params.specPath).model?.schedule) {
    out.stderr(`note: this runs it once now; \`drover schedule add ${params.specPath}\` runs it on its schedule`);
  }
  return withDaemon((client) => (options.previewSbatch ? previewSbatch(client, params, options, out) : submitAndReport(client, params, options, out)));
}

/** What `drover submit` and `drover schedule add` send: the one spec file named, with -p and --host. */
function readSubmission(files: string[], options: { params: string[]; host?: string }): SubmitParams {
  if (files.length !== 1) throw new CliError('name exactly one spec file', EXIT.usage);
  const file = files[0]!;
  const specText = readSpecText(file);
  const overrides = parseOverrides(options.params);
  return { specText, specPath: file, cwd: process.cwd(), overrides, env: stringEnv(), user: userInfo().username, ...onHost(options.host) };
}

/** `drover schedule [list] | add SPEC | remove NAME`. */
export async function scheduleCommand(args: string[], options: { params: string[]; host?: string; json: boolean }, out: CommandOutput): Promise<number> {
  const [action = 'list', ...rest] = args;
  if (action === 'add') {
    const params = readSubmission(rest, options);
    return withDaemon(async (client) => {
      const schedule = await client.request('drover/schedules/add', params);
      if (options.json) out.stdout(JSON.stringify(schedule, null, 2));
      else out.stdout(`scheduled ${schedule.name} (${schedule.cron}): ${schedule.nextTick !== undefined ? `next run ${formatTime(schedule.nextTick)}` : 'it never fires again'}`);
      return EXIT.ok;
    });
  }
  if (action === 'remove' && rest.length === 1) {
    return withDaemon(async (client) => {
      const { removed } = await client.request('drover/schedules/remove', { name: rest[0]! });
      if (!removed) throw new CliError(`no schedule named '${rest[0]}' (drover schedule list shows them)`, EXIT.invalid);
      out.stdout(`removed the schedule ${rest[0]}; runs it started are left as they are`);
      return EXIT.ok;
    });
  }
  if (action !== 'list' || rest.length) throw new CliError('drover schedule [list | add SPEC | remove NAME]', EXIT.usage);
  return withDaemon(async (client) => {
    const schedules = await client.request('drover/schedules', {});
    if (options.json) {
      out.stdout(JSON.stringify(schedules, null, 2));
      return EXIT.ok;
    }
    if (schedules.length === 0) {
      out.stdout('no schedules: `drover schedule add SPEC` registers a spec that has a `schedule:`');
      return EXIT.ok;
    }
    const rows = schedules.map((schedule) => [
      schedule.name,
      schedule.cron,
      schedule.nextTick !== undefined ? formatTime(schedule.nextTick) : 'never',
      schedule.lastTick !== undefined ? `${formatTime(schedule.lastTick)}${schedule.lastSubmissionId !== undefined ? ` (submission ${schedule.lastSubmissionId})` : ''}` : '-',
      schedule.specPath ?? '-',
    ]);
    out.stdout(formatTable(['NAME', 'SCHEDULE', 'NEXT', 'LAST', 'SPEC'], rows));
    return EXIT.ok;
  });
}

/** The environment a run was submitted with, in a line: the whole of it is in `show --json`. */
function describeEnv(env: Record<string, string>): string {
  const names = Object.keys(env);
  const redacted = names.filter((name) => env[name] === REDACTED).length;
  return `${plural(names.length, 'variable')} as submitted${redacted ? `, ${redacted} redacted (names that look secret)` : ''}; drover show --json ${names.length === 1 ? 'has it' : 'lists them'}`;
}

/** A time in the user's zone, as cron reads schedules: 2026-01-10 02:00:00. */
function formatTime(ms: number): string {
  const date = new Date(ms);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** "Preview sbatch": prints the scripts a submission to a SLURM cluster would hand over, and submits nothing. */
async function previewSbatch(client: DaemonClient, params: SubmitParams, options: { json: boolean }, out: CommandOutput): Promise<number> {
  const { scripts } = await client.request('drover/sbatchPreview', params);
  if (options.json) out.stdout(JSON.stringify(scripts, null, 2));
  else out.stdout(scripts.map(({ job, script }) => `# ---- ${job}: sbatch < this (run ids and upstream job ids are placeholders until submitted)\n${script}`).join('\n'));
  return EXIT.ok;
}

/**
 * `drover run -- python train.py`: an ad-hoc job, written as a one-job spec. A lone `.ipynb`
 * path is a notebook job, run cell by cell (`-p NAME=VALUE` fills its `parameters` cell).
 */
export async function runCommand(
  argv: string[],
  options: { gpus?: string; cpus?: string; mem?: string; name?: string; timeout?: string; retries?: string; host?: string; params?: string[]; wait: boolean; json: boolean; previewSbatch?: boolean },
  out: CommandOutput,
): Promise<number> {
  if (argv.length === 0) throw new CliError('name a command to run, after --: drover run --gpus 1 -- python train.py', EXIT.usage);
  const notebook = argv.length === 1 && argv[0]!.endsWith('.ipynb') ? argv[0]! : undefined;
  // Checked here, as a spec file is: a run of a notebook that is not there could only fail.
  if (notebook !== undefined && !existsSync(notebook)) throw new CliError(`cannot read '${notebook}': no such file or directory`, EXIT.noInput);
  if (options.params?.length && !notebook) throw new CliError('-p sets a notebook\'s parameters: pass them to a command as its own arguments', EXIT.usage);
  const resources: Record<string, unknown> = {};
  if (options.gpus !== undefined) {
    const gpus = /^\d+$/.test(options.gpus) ? Number(options.gpus) : options.gpus;
    const parsed = parseGpuRequest(gpus);
    if (!parsed.ok) throw new CliError(`--gpus: ${parsed.message}`, EXIT.usage);
    resources['gpus'] = gpus;
  }
  if (options.cpus !== undefined) {
    const cpus = Number(options.cpus);
    if (!(cpus > 0)) throw new CliError(`--cpus takes a number above 0, not '${options.cpus}'`, EXIT.usage);
    resources['cpus'] = cpus;
  }
  if (options.mem !== undefined) {
    const memory = parseSize(options.mem);
    if (!memory.ok) throw new CliError(`--mem: ${memory.message}`, EXIT.usage);
    resources['memory'] = options.mem;
  }
  const command = argv.length === 1 ? argv[0]! : argv.map(shellWord).join(' ');
  const spec: Record<string, unknown> = { name: options.name ?? defaultRunName(argv), ...(notebook ? { notebook } : { run: command }), resources };
  if (options.params?.length) spec['params'] = parseOverrides(options.params);
  if (options.timeout !== undefined) {
    const timeout = parseDuration(options.timeout);
    if (!timeout.ok) throw new CliError(`--timeout: ${timeout.message}`, EXIT.usage);
    spec['timeout'] = options.timeout;
  }
  if (options.retries !== undefined) {
    // The spec's limits (0 to 100), checked here so that the message names the option rather than a line of the spec made from it.
    if (!/^\d+$/.test(options.retries) || Number(options.retries) > 100) throw new CliError(`--retries takes a whole number from 0 to 100, not '${options.retries}'`, EXIT.usage);
    spec['retries'] = Number(options.retries);
  }
  const params: SubmitParams = { specText: stringify(spec), cwd: process.cwd(), env: stringEnv(), user: userInfo().username, ...onHost(options.host) };
  return withDaemon((client) => (options.previewSbatch ? previewSbatch(client, params, options, out) : submitAndReport(client, params, options, out)));
}

function onHost(host: string | undefined): Pick<SubmitParams, 'host'> {
  return host === undefined ? {} : { host };
}

async function submitAndReport(
  client: DaemonClient,
  params: SubmitParams,
  options: { wait: boolean; json: boolean },
  out: CommandOutput,
): Promise<number> {
  let follower: RunFollower | undefined;
  if (options.wait) {
    // Subscribed before submitting, so no event of the new runs is missed.
    follower = new RunFollower(client, out, { prefix: true, json: options.json });
    await client.request('drover/subscribe', { topics: ['jobs', 'logs', 'cells'] });
  }
  const result: SubmitResult = await client.request('drover/submit', params);
  if (!options.wait) {
    if (options.json) out.stdout(JSON.stringify(result, null, 2));
    else {
      const name = result.jobs[0]?.specName ?? 'spec';
      out.stdout(`submitted ${name}: ${plural(result.jobs.length, 'run')} (${describeIds(result.jobs.map((job) => job.id))})`);
    }
    return EXIT.ok;
  }
  out.stderr(`submitted ${result.jobs[0]?.specName}: ${plural(result.jobs.length, 'run')}; following until they end (Ctrl-C stops following, not the runs)`);
  const finals = await follower!.follow(result.jobs);
  if (options.json) out.stdout(JSON.stringify(finals, null, 2));
  else if (finals.length > 1) out.stderr(summarizeEnds(finals));
  return exitCodeOf(finals);
}

/** How a sweep's or workflow's runs ended, in a line: '3 runs: 2 succeeded, 1 failed (sw[1] #2)'. */
function summarizeEnds(jobs: JobView[]): string {
  const byState = new Map<string, JobView[]>(FINAL_STATES.map((state) => [state, []]));
  for (const job of jobs) byState.set(job.state, [...(byState.get(job.state) ?? []), job]);
  const parts = [...byState].filter(([, those]) => those.length > 0).map(([state, those]) => {
    const named = state === 'succeeded' || state === 'stopped' ? '' : ` (${those.slice(0, 5).map((job) => `${job.key} #${job.id}`).join(', ')}${those.length > 5 ? `, and ${those.length - 5} more` : ''})`;
    return `${those.length} ${state}${named}`;
  });
  return `${plural(jobs.length, 'run')}: ${parts.join(', ')}`;
}

/** A single run's own exit code; for several, 0 only when all succeeded (or were stopped early: a sweep's normal end). */
function exitCodeOf(jobs: JobView[]): number {
  if (jobs.length === 1) {
    const [job] = jobs;
    if (job!.state === 'succeeded') return 0;
    if (job!.exitCode !== undefined && job!.exitCode !== 0) return job!.exitCode;
    return 1;
  }
  return jobs.every((job) => job.state === 'succeeded' || job.state === 'stopped') ? 0 : 1;
}

/**
 * Follows runs to their end, streaming their logs (prefixed with the run's name when there are
 * several) and reporting state changes. Log chunks carry byte offsets, so a gap (a chunk sent
 * before we subscribed, or a dropped notification) is filled from the daemon.
 */
class RunFollower {
  private readonly offsets = new Map<string, number>();
  private readonly jobs = new Map<number, JobView>();
  private readonly partial = new Map<number, string>();
  /** When each notebook cell started, by run and cell, for its duration. */
  private readonly cellStarts = new Map<string, number>();
  private pending = Promise.resolve();
  private resolveDone: (() => void) | undefined;

  constructor(
    private readonly client: DaemonClient,
    private readonly out: CommandOutput,
    private readonly options: { prefix: boolean; json: boolean },
  ) {
    client.on('drover/event/job', (job) => this.serially(() => this.onJob(job)));
    client.on('drover/event/log', (chunk) => this.serially(() => this.onLog(chunk)));
    client.on('drover/event/cells', (chunk) => this.serially(() => this.onCells(chunk)));
  }

  async follow(jobs: JobView[]): Promise<JobView[]> {
    for (const job of jobs) {
      if (this.jobs.has(job.id)) continue;
      this.jobs.set(job.id, job);
      if (job.state !== 'queued') this.report(job);
    }
    const done = new Promise<void>((resolve) => (this.resolveDone = resolve));
    // Catch up on what happened between submitting and now.
    for (const job of jobs) this.serially(async () => this.onJob(await this.client.request('drover/job', { id: job.id })));
    const closed = this.client.closed().then(() => {
      throw new DaemonUnavailable('the daemon went away; the runs go on: see drover ps');
    });
    await Promise.race([done, closed]);
    await this.pending;
    return [...this.jobs.values()];
  }

  private serially(work: () => void | Promise<void>): void {
    this.pending = this.pending.then(work).catch((error: unknown) => this.out.stderr(`drover: ${error instanceof Error ? error.message : String(error)}`));
  }

  private async onJob(job: JobView): Promise<void> {
    const known = this.jobs.get(job.id);
    if (!known) return;
    if (known.state !== job.state || known.attempts !== job.attempts) this.report(job);
    this.jobs.set(job.id, job);
    if (FINAL_STATES.includes(job.state)) await this.drainLog(job.id, job.attempts);
    if (this.resolveDone && [...this.jobs.values()].every((each) => FINAL_STATES.includes(each.state))) this.resolveDone();
  }

  private report(job: JobView): void {
    if (this.options.json) return;
    const name = job.key;
    const where = job.host ? ` on ${job.host}${job.gpus?.length ? ` (GPU ${job.gpus.join(',')})` : ''}` : '';
    const detail = job.state === 'running' ? `running${where}${job.attempts > 1 ? `, attempt ${job.attempts}` : ''}` : `${job.state}${job.reason ? `: ${job.reason}` : ''}`;
    this.out.stderr(`[${name}] ${detail}`);
  }

  /** A notebook run's progress, one line per cell start and end, beside its output. */
  private onCells(chunk: CellEventsChunk): void {
    const job = this.jobs.get(chunk.jobId);
    if (!job || this.options.json) return;
    for (const event of chunk.events) {
      if (event.event !== 'start' && event.event !== 'finish') continue;
      const cell = event.injected ? `cell ${event.cell} (injected parameters)` : `cell ${event.cell}`;
      if (event.event === 'start') {
        this.cellStarts.set(`${chunk.jobId}:${event.cell}:${event.injected ?? false}`, event.time);
        this.out.stderr(`[${job.key}] ${cell} running`);
      } else {
        const started = this.cellStarts.get(`${chunk.jobId}:${event.cell}:${event.injected ?? false}`);
        const took = started === undefined ? '' : ` in ${formatElapsed(event.time - started)}`;
        this.out.stderr(`[${job.key}] ${cell} ${event.status === 'ok' ? 'done' : 'failed'}${took}`);
      }
    }
  }

  private async onLog(chunk: LogChunk): Promise<void> {
    if (!this.jobs.has(chunk.jobId)) return;
    const key = `${chunk.jobId}:${chunk.attempt}`;
    const offset = this.offsets.get(key) ?? 0;
    if (chunk.offset > offset) await this.fetch(chunk.jobId, chunk.attempt, chunk.offset);
    const at = this.offsets.get(key) ?? 0;
    if (chunk.offset + chunk.bytes <= at) return;
    const skip = at - chunk.offset;
    this.print(chunk.jobId, skip > 0 ? Buffer.from(chunk.data).subarray(skip).toString() : chunk.data);
    this.offsets.set(key, chunk.offset + chunk.bytes);
  }

  /** Reads an attempt's log from where we are up to `until` (or to its end). */
  private async fetch(jobId: number, attempt: number, until = Infinity): Promise<void> {
    const key = `${jobId}:${attempt}`;
    for (;;) {
      const offset = this.offsets.get(key) ?? 0;
      if (offset >= until) return;
      const chunk = await this.client.request('drover/logs', { id: jobId, attempt, offset });
      if (chunk.bytes === 0) return;
      this.print(jobId, chunk.data);
      this.offsets.set(key, offset + chunk.bytes);
    }
  }

  private async drainLog(jobId: number, attempts: number): Promise<void> {
    for (let attempt = 1; attempt <= attempts; attempt++) await this.fetch(jobId, attempt);
    const rest = this.partial.get(jobId);
    if (rest) this.emitLine(jobId, rest);
    this.partial.delete(jobId);
  }

  private print(jobId: number, data: string): void {
    if (this.options.json || data === '') return;
    if (!this.options.prefix || this.jobs.size === 1) {
      process.stdout.write(data);
      return;
    }
    // Prefix whole lines only, so runs writing at once stay readable.
    const text = (this.partial.get(jobId) ?? '') + data;
    const lines = text.split('\n');
    this.partial.set(jobId, lines.pop()!);
    for (const line of lines) this.emitLine(jobId, line);
  }

  private emitLine(jobId: number, line: string): void {
    const job = this.jobs.get(jobId)!;
    process.stdout.write(`[${job.key}] ${line}\n`);
  }
}

export async function psCommand(options: { all: boolean; json: boolean }, out: CommandOutput): Promise<number> {
  return withDaemon(async (client) => {
    const jobs = await client.request('drover/jobs', options.all ? {} : { states: ['queued', 'running'] });
    if (options.json) out.stdout(JSON.stringify(jobs, null, 2));
    else if (jobs.length === 0) out.stdout('nothing queued or running');
    else out.stdout(jobTable(jobs, true));
    return EXIT.ok;
  });
}

export async function runsCommand(options: { limit: string | undefined; json: boolean }, out: CommandOutput): Promise<number> {
  const limit = options.limit === undefined ? 50 : Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit takes a whole number above 0, not '${options.limit}'`, EXIT.usage);
  return withDaemon(async (client) => {
    const jobs = await client.request('drover/jobs', { limit });
    if (options.json) out.stdout(JSON.stringify(jobs, null, 2));
    else if (jobs.length === 0) out.stdout('no runs yet');
    else out.stdout(jobTable(jobs, false));
    return EXIT.ok;
  });
}

export async function showCommand(ids: string[], options: { json: boolean }, out: CommandOutput): Promise<number> {
  const id = singleId(ids);
  return withDaemon(async (client) => {
    const job = await client.request('drover/job', { id });
    if (options.json) {
      out.stdout(JSON.stringify(job, null, 2));
      return EXIT.ok;
    }
    const lines: [string, string][] = [
      ['run', `${job.id}  ${job.specName}${job.key === job.specName ? '' : `/${job.key}`}`],
      ['state', `${job.state}${job.reason ? ` (${job.reason})` : ''}`],
      ['submitted at', formatTime(job.createdAt)],
      ...(job.startedAt !== undefined ? [['started', formatTime(job.startedAt)] as [string, string]] : []),
      ...(job.endedAt !== undefined ? [['ended', `${formatTime(job.endedAt)}${job.startedAt !== undefined ? ` (ran ${formatElapsed(job.endedAt - job.startedAt)})` : ''}`] as [string, string]] : []),
      [job.command !== undefined ? 'command' : 'notebook', job.command ?? job.notebook ?? ''],
      ['params', Object.entries(job.params).map(([name, value]) => `${name}=${value}`).join(' ') || '-'],
      ['resources', describeResources(job.resources)],
      ['workdir', job.record.workdir],
      ['git', job.record.git ? `${job.record.git.commit.slice(0, 12)}${job.record.git.dirty ? ` (dirty, diff ${job.record.git.diffHash?.slice(0, 12) ?? '?'})` : ''}${job.record.git.branch ? ` on ${job.record.git.branch}` : ''}` : 'not a git work tree'],
      // The record's host is this machine's; a run on an SSH host names its host on its attempt line.
      ['submitted on', job.record.host ? `${job.record.host.name} (${job.record.host.os}${job.record.host.gpuModels.length ? `, ${job.record.host.gpuModels.join(', ')}` : ''}${job.record.host.driverVersion ? `, driver ${job.record.host.driverVersion}` : ''})` : '-'],
      ['spec', job.record.specPath ?? '(ad hoc)'],
      ['env', describeEnv(job.record.env)],
    ];
    if (job.record.targetHost !== undefined) lines.push(['pinned to', `${job.record.targetHost} (--host)`]);
    for (const attempt of job.attemptList) {
      const end = attempt.endedAt ? `${attempt.outcome}${attempt.exitCode !== undefined ? `, exit ${attempt.exitCode}` : ''}${attempt.signal ? `, ${attempt.signal}` : ''}, ${formatElapsed(attempt.endedAt - attempt.startedAt)}` : 'running';
      const version = attempt.workdirVersion ? ` (workdir ${attempt.workdirVersion.slice(0, 12)})` : '';
      lines.push([`attempt ${attempt.number}`, `${end} on ${attempt.host}${version}${attempt.gpus.length ? ` GPU ${attempt.gpus.join(',')}` : ''}; log ${attempt.logPath}`]);
      if (attempt.notebookPath) lines.push(['  executed', attempt.notebookPath]);
    }
    const width = Math.max(...lines.map(([label]) => label.length));
    out.stdout(lines.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n'));
    return EXIT.ok;
  });
}

export async function logsCommand(ids: string[], options: { follow: boolean; attempt: string | undefined }, out: CommandOutput): Promise<number> {
  const id = singleId(ids);
  if (options.attempt !== undefined && !/^[1-9]\d*$/.test(options.attempt)) throw new CliError(`--attempt takes an attempt number (1, 2, …), not '${options.attempt}'`, EXIT.usage);
  return withDaemon(async (client) => {
    const job = await client.request('drover/job', { id });
    if (options.attempt !== undefined && Number(options.attempt) > job.attempts) {
      throw new CliError(`run ${id} has ${job.attempts === 0 ? 'not started yet' : plural(job.attempts, 'attempt')}: there is no attempt ${options.attempt}`, EXIT.invalid);
    }
    if (options.follow && !FINAL_STATES.includes(job.state)) {
      const follower = new RunFollower(client, out, { prefix: false, json: false });
      await client.request('drover/subscribe', { topics: ['jobs', 'logs'], jobIds: [id] });
      const [final] = await follower.follow([job]);
      return exitCodeOf([final!]);
    }
    const attempt = options.attempt === undefined ? job.attempts : Number(options.attempt);
    if (attempt === 0) {
      out.stderr(`run ${id} has not started${job.reason ? `: ${job.reason}` : ''}`);
      return EXIT.ok;
    }
    let offset = 0;
    for (;;) {
      const chunk = await client.request('drover/logs', { id, attempt, offset });
      if (chunk.bytes === 0) break;
      process.stdout.write(chunk.data);
      offset += chunk.bytes;
    }
    return EXIT.ok;
  });
}

export async function cancelCommand(ids: string[], options: { json: boolean }, out: CommandOutput): Promise<number> {
  if (ids.length === 0) throw new CliError('name the runs to cancel: drover cancel ID...', EXIT.usage);
  const numbers = ids.map((id) => singleId([id]));
  return withDaemon(async (client) => {
    const { cancelled } = await client.request('drover/cancel', { ids: numbers });
    const already = numbers.filter((id) => !cancelled.includes(id));
    if (options.json) {
      out.stdout(JSON.stringify({ cancelled, alreadyEnded: already }, null, 2));
      return EXIT.ok;
    }
    if (cancelled.length) out.stdout(`cancelling ${plural(cancelled.length, 'run')} (${describeIds(cancelled)})`);
    if (already.length) out.stdout(`already ended: ${plural(already.length, 'run')} (${describeIds(already)})`);
    return EXIT.ok;
  });
}

/** `drover hosts [add|remove ALIAS]`: the pool, or a change to it. */
export async function hostsCommand(args: string[], options: { json: boolean; slurm?: boolean; via?: string; workdirRoot?: string }, out: CommandOutput): Promise<number> {
  const [action, alias, ...extra] = args;
  if (action !== undefined) {
    if ((action !== 'add' && action !== 'remove') || alias === undefined || extra.length) {
      throw new CliError('drover hosts [add ALIAS | add NAME --slurm [--via ALIAS] [--workdir-root PATH] | remove NAME]: ALIAS is a Host of your SSH config', EXIT.usage);
    }
    if (!options.slurm && (options.via !== undefined || options.workdirRoot !== undefined)) throw new CliError('--via and --workdir-root are for a SLURM cluster: add --slurm', EXIT.usage);
    return withDaemon(async (client) => {
      if (action === 'remove') {
        const { removed } = await client.request('drover/hosts/remove', { alias });
        out.stdout(removed ? `removed ${alias} from the pool` : `${alias} was not in the pool`);
        return EXIT.ok;
      }
      const slurm = options.slurm ? { ...(options.via !== undefined && { via: options.via }), ...(options.workdirRoot !== undefined && { workdirRoot: options.workdirRoot }) } : undefined;
      const host = await client.request('drover/hosts/add', { alias, ...(slurm && { slurm }) });
      const reached = await waitForHost(client, alias, host);
      if (options.json) out.stdout(JSON.stringify(reached, null, 2));
      else out.stdout(`added ${alias}: ${describeHostState(reached)}`);
      return reached.state === 'unreachable' ? EXIT.unavailable : EXIT.ok;
    });
  }
  return withDaemon(async (client) => {
    const hosts = await client.request('drover/hosts', {});
    if (options.json) {
      out.stdout(JSON.stringify(hosts, null, 2));
      return EXIT.ok;
    }
    const rows: string[][] = [];
    for (const host of hosts) {
      rows.push([host.name, describeHostState(host), host.state === 'connecting' ? '' : `${host.cpus} CPUs, ${formatGib(host.memoryBytes)} GiB`, host.gpus.length ? plural(host.gpus.length, 'GPU') : 'no GPUs']);
      for (const partition of host.slurm?.partitions ?? []) {
        rows.push([`  partition ${partition.name}${partition.default ? ' (default)' : ''}`, partition.state, `nodes ${partition.nodes}`, `time limit ${partition.timeLimit}`]);
      }
      for (const node of host.slurm?.nodes ?? []) {
        rows.push([`  node ${node.name}`, node.state, `${node.cpusAllocated}/${node.cpus} CPUs, ${node.memoryAllocatedMiB}/${node.memoryMiB} MiB`, node.gres ? `${node.gres}, used ${node.gresUsed || 'none'}` : 'no GRES']);
      }
      for (const job of host.slurm?.jobs ?? []) {
        if (['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING'].includes(job.state)) rows.push([`  job ${job.id}`, job.state, job.name, job.state === 'PENDING' ? job.reason : job.nodes]);
      }
      for (const gpu of host.gpus) {
        const holder = gpu.jobId !== undefined ? `run ${gpu.jobId}` : gpu.foreignPids.length ? `busy: pid ${gpu.foreignPids.join(', ')} (not Drover's)` : 'free';
        rows.push([`  GPU ${gpu.index}`, holder, gpu.name, `${formatGib(gpu.memoryUsedBytes)} / ${formatGib(gpu.memoryTotalBytes)} GiB${gpu.utilizationPercent !== null ? `, ${gpu.utilizationPercent}%` : ''}`]);
      }
    }
    out.stdout(formatTable(['HOST', 'STATE', 'CAPACITY', 'GPUS'], rows));
    return EXIT.ok;
  });
}

function describeHostState(host: HostView): string {
  if (host.kind === 'slurm' && host.state === 'up') return `up, SLURM${host.slurm?.via ? ` via ${host.slurm.via}` : ''}`;
  if (host.state === 'up') return host.gpus.length ? `up, ${plural(host.gpus.length, 'GPU')}` : 'up, no GPUs';
  return `${host.state}${host.message ? ` (${host.message})` : ''}`;
}

/** A host just added is reached in the background: wait a little for the first answer, to report it. */
async function waitForHost(client: DaemonClient, alias: string, host: HostView): Promise<HostView> {
  const deadline = Date.now() + 15_000;
  while (host.state === 'connecting' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    host = (await client.request('drover/hosts', {})).find((candidate) => candidate.name === alias) ?? host;
  }
  return host;
}

export async function metricsCommand(ids: string[], options: { json: boolean }, out: CommandOutput): Promise<number> {
  const id = singleId(ids);
  return withDaemon(async (client) => {
    const series = await client.request('drover/metrics', { id });
    if (options.json) out.stdout(JSON.stringify(series, null, 2));
    else if (series.length === 0) out.stdout(`run ${id} has reported no metrics`);
    else {
      const rows = series.map(({ name, points }) => {
        const values = points.map((point) => point.value);
        const last = points.at(-1)!;
        return [name, String(points.length), `${formatMetricValue(last.value)}${last.step !== null ? ` @ step ${last.step}` : ''}`, formatMetricValue(Math.min(...values)), formatMetricValue(Math.max(...values))];
      });
      out.stdout(formatTable(['METRIC', 'POINTS', 'LAST', 'MIN', 'MAX'], rows));
    }
    return EXIT.ok;
  });
}

function jobTable(jobs: JobView[], pending: boolean): string {
  const now = Date.now();
  const rows = jobs.map((job) => [
    String(job.id),
    job.key === job.specName ? job.specName : `${job.specName}/${job.key}`,
    job.state,
    job.host ? `${job.host}${job.gpus?.length ? `:${job.gpus.join(',')}` : ''}` : '-',
    job.startedAt ? formatElapsed((job.endedAt ?? now) - job.startedAt) : '-',
    [pending ? (job.state === 'queued' ? (job.reason ?? 'waiting to be scheduled') : describeResources(job.resources)) : (job.reason ?? (job.exitCode !== undefined ? `exit ${job.exitCode}` : '')), idleNote(job, now)]
      .filter(Boolean)
      .join(' · '),
  ]);
  return formatTable(['ID', 'RUN', 'STATE', 'WHERE', 'TIME', pending ? 'WHY PENDING / RESOURCES' : 'NOTE'], rows);
}

/** "GPUs idle 12m05s": a running run whose GPUs have done nothing for the daemon's idle time. */
function idleNote(job: JobView, now: number): string {
  return job.gpusIdleSince !== undefined ? `GPUs idle ${formatElapsed(now - job.gpusIdleSince)}` : '';
}

function describeResources(resources: ResourceRequest): string {
  const parts = [`${resources.cpus ?? 1} CPU`];
  if (resources.gpus.count > 0) parts.push(`${resources.gpus.type ? `${resources.gpus.type}:` : ''}${resources.gpus.count} GPU`);
  if (resources.memoryBytes !== undefined) parts.push(formatSize(resources.memoryBytes));
  return parts.join(', ');
}

/** Run ids in a line however many: consecutive ones as ranges, 'ids 1–3, 7, 9–12', at most 10 of those. */
function describeIds(ids: readonly number[]): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let end = i;
    while (end + 1 < sorted.length && sorted[end + 1] === sorted[end]! + 1) end++;
    ranges.push(end === i ? String(sorted[i]) : `${sorted[i]}–${sorted[end]}`);
    i = end + 1;
  }
  const shown = ranges.length > 10 ? `${ranges.slice(0, 10).join(', ')} and ${ranges.length - 10} more` : ranges.join(', ');
  return `${sorted.length === 1 ? 'id' : 'ids'} ${shown}`;
}

function singleId(ids: string[]): number {
  if (ids.length !== 1) throw new CliError('name one run id', EXIT.usage);
  const id = Number(ids[0]);
  if (!Number.isInteger(id) || id < 1) throw new CliError(`'${ids[0]}' is not a run id (see drover ps)`, EXIT.usage);
  return id;
}

function defaultRunName(argv: string[]): string {
  const script = argv.find((arg) => /\.(py|sh|ipynb)$/.test(arg)) ?? argv[0]!;
  return script.split('/').pop()!.replace(/\.(py|sh|ipynb)$/, '') || 'run';
}


function stringEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  return env;
}
