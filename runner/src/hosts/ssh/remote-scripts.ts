/**
 * The shell scripts the daemon runs on SSH hosts. Each is sent on the standard input of a plain
 * `sh -s`, so the user's login shell (bash, zsh, fish, csh) parses nothing but those two words;
 * every value inside a script is quoted for POSIX sh with `shellWord`, so a path, parameter or
 * environment value with quotes, `$(...)`, backticks or newlines stays data.
 */
import { shellWord } from '../../../../common/spec';
import { listLeasesLines, ownLeasesLine, takeLeasesLines, type LeaseOwner } from '../gpu-leases';

/** The remote command line every script runs under. */
export const SCRIPT_RUNNER = 'sh -s';

/** Bytes read from a remote log per attempt and poll: enough for fast writers, small enough to keep polls short. */
export const REMOTE_READ_LIMIT = 256 * 1024;

/** What the attempt's wrapper writes, as on the local host (see detached-process.ts). */
export const REMOTE_FILES = { log: 'output.log', metrics: 'metrics.jsonl', status: 'exit-status', pid: 'pid', cells: 'cells.jsonl', notebook: 'executed.ipynb' } as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Prints the facts the scheduler needs, one `key=value` line each, then the two nvidia-smi
 * answers, the process group of each GPU process and the live GPU leases (`lease=…` lines).
 */
export function probeScript(gpuArgs: readonly string[], processArgs: readonly string[]): string {
  const query = (args: readonly string[]) => `nvidia-smi ${args.map(shellWord).join(' ')}`;
  return [
    'printf "home=%s\\n" "$HOME"',
    'printf "os=%s\\n" "$(uname -sr)"',
    'printf "cpus=%s\\n" "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"',
    "printf \"memkb=%s\\n\" \"$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)\"",
    // Each answer is framed by its exit code and byte count, so output of any shape comes back whole.
    ...[gpuArgs, processArgs].flatMap((args, index) => [
      `out=$(${query(args)} 2>&1); code=$?`,
      `printf "query${index}=%s %s\\n" "$code" "$(printf '%s' "$out" | wc -c | tr -d ' ')"`,
      `printf '%s' "$out"`,
    ]),
    // The process group of each GPU process: a group that is one of ours is not foreign.
    `for pid in $(${query(['--query-compute-apps=pid', '--format=csv,noheader'])} 2>/dev/null); do`,
    '  printf "pgid=%s %s\\n" "$pid" "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d \' \')"',
    'done',
    ...listLeasesLines(),
    'true',
  ].join('\n');
}

/**
 * Starts an attempt detached from the SSH session (its own session via setsid, output to a log
 * on the host, exit status to a file when it ends), and prints its pid, which is its group's.
 * With `leases`, it first takes the leases on those GPUs (see gpu-leases.ts) and, if another
 * daemon holds one, starts nothing: it prints `held …` lines and exits 3.
 */
export function launchScript(options: {
  dir: string;
  cwd: string;
  command: string;
  env: Record<string, string>;
  wrapper: string;
  /** Written into the attempt folder before the command starts (e.g. the notebook driver). */
  files?: Record<string, string>;
  leases?: { owner: LeaseOwner; gpus: string[] };
}): string {
  const { dir, cwd } = options;
  const variables = Object.entries(options.env).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new Error(`not an environment variable name: ${JSON.stringify(name)}`);
    return `export ${name}=${shellWord(value)}`;
  });
  const leased = options.leases?.gpus ?? [];
  return [
    'set -e',
    ...(options.leases ? takeLeasesLines(options.leases.owner, leased) : []),
    `mkdir -p ${shellWord(dir)}`,
    // Files the command needs (the notebook driver), written into the attempt's folder.
    ...Object.entries(options.files ?? {}).map(([name, content]) => {
      if (!/^[\w.-]+$/.test(name)) throw new Error(`not a plain file name: ${JSON.stringify(name)}`);
      return `printf '%s' ${shellWord(content)} > ${shellWord(`${dir}/${name}`)}`;
    }),
    `cd ${shellWord(cwd)}`,
    ...variables,
    `export DROVER_COMMAND=${shellWord(options.command)}`,
    `export DROVER_STATUS_FILE=${shellWord(`${dir}/${REMOTE_FILES.status}`)}`,
    `export DROVER_PID_FILE=${shellWord(`${dir}/${REMOTE_FILES.pid}`)}`,
    `setsid sh -c ${shellWord(options.wrapper)} </dev/null >>${shellWord(`${dir}/${REMOTE_FILES.log}`)} 2>&1 &`,
    'started=$!',
    ...ownLeasesLine(leased, '"$started"'),
    'echo "$started"',
  ].join('\n');
}

/** One attempt as a poll sees it. */
export interface PolledAttempt {
  key: string;
  dir: string;
  logOffset: number;
  metricsOffset: number;
  /** A notebook run's cell events (an empty file for other runs). */
  cellsOffset: number;
  /** Sent to the attempt's process group before looking. */
  signal?: 'TERM' | 'KILL';
}

/**
 * For each attempt: a header line `@@ key pid alive status logBytes metricsBytes cellsBytes`
 * (status `-` while it runs), then exactly logBytes of new output, metricsBytes of new metrics
 * and cellsBytes of new cell events. Whether it
 * is alive is looked at before the status, so "not alive and no status" means it died unreported.
 */
export function pollScript(attempts: readonly PolledAttempt[]): string {
  const lines = [
    'chunk() { size=$(wc -c < "$1" 2>/dev/null | tr -d " "); n=$(( ${size:-0} - $2 )); [ "$n" -gt ' + REMOTE_READ_LIMIT + ' ] && n=' + REMOTE_READ_LIMIT + '; [ "$n" -lt 0 ] && n=0; echo "$n"; }',
  ];
  for (const attempt of attempts) {
    const dir = shellWord(attempt.dir);
    lines.push(
      `d=${dir}`,
      'pid=$(cat "$d/pid" 2>/dev/null || true)',
      // `kill -SIG -PGID`, without `--`: dash's kill does not take it.
      ...(attempt.signal ? [`[ -n "$pid" ] && kill -${attempt.signal} "-$pid" 2>/dev/null`] : []),
      'alive=0; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1',
      // An exited process nobody reaped yet (a zombie) is gone.
      '[ "$alive" = 1 ] && [ "$(sed \'s/.*) //\' "/proc/$pid/stat" 2>/dev/null | cut -c1)" = Z ] && alive=0',
      'st=$(cat "$d/exit-status" 2>/dev/null || true); [ -n "$st" ] || st=-',
      `ln=$(chunk "$d/output.log" ${attempt.logOffset}); mn=$(chunk "$d/metrics.jsonl" ${attempt.metricsOffset}); cn=$(chunk "$d/cells.jsonl" ${attempt.cellsOffset})`,
      `printf '@@ %s %s %s %s %s %s %s\\n' ${shellWord(attempt.key)} "\${pid:-0}" "$alive" "$st" "$ln" "$mn" "$cn"`,
      `[ "$ln" -gt 0 ] && tail -c +${attempt.logOffset + 1} "$d/output.log" | head -c "$ln"`,
      `[ "$mn" -gt 0 ] && tail -c +${attempt.metricsOffset + 1} "$d/metrics.jsonl" | head -c "$mn"`,
      `[ "$cn" -gt 0 ] && tail -c +${attempt.cellsOffset + 1} "$d/cells.jsonl" | head -c "$cn"`,
    );
  }
  lines.push('true');
  return lines.join('\n');
}

export interface PollAnswer {
  pid: number | null;
  alive: boolean;
  exitStatus: number | null;
  log: Buffer;
  metrics: Buffer;
  cells: Buffer;
}

/** Reads what pollScript printed. */
export function parsePoll(output: Buffer): Map<string, PollAnswer> {
  const answers = new Map<string, PollAnswer>();
  let at = 0;
  while (at < output.length) {
    const end = output.indexOf(0x0a, at);
    if (end < 0) break;
    const header = output.subarray(at, end).toString('utf8').split(' ');
    at = end + 1;
    if (header[0] !== '@@' || header.length !== 8) throw new Error(`unreadable poll answer: ${JSON.stringify(header.join(' '))}`);
    const [, key, pid, alive, status, logBytes, metricsBytes, cellsBytes] = header as [string, string, string, string, string, string, string, string];
    const log = output.subarray(at, at + Number(logBytes));
    at += Number(logBytes);
    const metrics = output.subarray(at, at + Number(metricsBytes));
    at += Number(metricsBytes);
    const cells = output.subarray(at, at + Number(cellsBytes));
    at += Number(cellsBytes);
    const exitStatus = /^\d+$/.test(status) ? Number(status) : null;
    answers.set(key, { pid: Number(pid) > 0 ? Number(pid) : null, alive: alive === '1', exitStatus, log, metrics, cells });
  }
  return answers;
}

/** Prints a file's bytes, or fails (exit 1) when there is none. */
export function readFileScript(path: string): string {
  return `cat ${shellWord(path)}`;
}

/** Signals a process group on the host; one that is gone already is no error. */
export function signalScript(pid: number, signal: 'TERM' | 'KILL'): string {
  return `kill -${signal} -${pid} 2>/dev/null; kill -0 -${pid} 2>/dev/null && echo alive || echo gone`;
}

/**
 * Runs a job's setup once per workdir version (and setup command): a marker file in the
 * version's folder says it succeeded. Its output stays on the host beside the marker.
 */
export function setupScript(dir: string, setup: string, marker: string): string {
  const log = `${marker}.log`;
  return [
    `cd ${shellWord(dir)}`,
    `[ -e ${shellWord(marker)} ] && exit 0`,
    `( eval ${shellWord(setup)} ) </dev/null >${shellWord(log)} 2>&1`,
    'code=$?',
    `if [ "$code" -eq 0 ]; then : > ${shellWord(marker)}; else tail -c 2000 ${shellWord(log)}; fi`,
    'exit "$code"',
  ].join('\n');
}
