import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files of one attempt, in its own folder (a notebook run adds its cell events and the
 * executed notebook). `wrapper` holds what the wrapper wrote: its pid on the first line and,
 * once the command ended, its exit status on the second (one file rather than two, as each new
 * file is an inode a short job's start waits for).
 */
export function attemptFiles(dir: string) {
  return {
    log: join(dir, 'output.log'), wrapper: join(dir, 'wrapper'), metrics: join(dir, 'metrics.jsonl'),
    cells: join(dir, 'cells.jsonl'), notebook: join(dir, 'executed.ipynb'),
  };
}

/** Where attempts an earlier Drover started have their pid and exit status (two files). */
const EARLIER_FILES = { pid: 'pid', status: 'exit-status' } as const;

/**
 * The wrapper every attempt runs under: it runs the command in a subshell and, when it ends,
 * appends its exit status to a file, so the status survives the daemon. A status line is one
 * small write ending in a newline; a reader takes only a complete line. A trap with an action
 * keeps the wrapper alive through SIGTERM without passing an ignored signal on to the command;
 * SIGKILL ends both, and then there is no status to write. Everything the wrapper needs comes in
 * environment variables, so nothing is ever quoted. The pid and status files may be one file
 * (here) or two (on SSH hosts).
 */
export const WRAPPER = [
  // The pid first: should the daemon die before it records it, a restart still finds the process.
  // Unwritten (a full disk), the command does not run: its status, appended later, would be read
  // as the pid, and the daemon, finding no status, reports the attempt lost.
  'printf \'%s\\n\' "$$" > "$DROVER_PID_FILE" || exit 125',
  "trap ':' TERM INT HUP",
  '(eval "$DROVER_COMMAND") </dev/null',
  'printf \'%s\\n\' "$?" >> "$DROVER_STATUS_FILE"',
].join('\n');

export interface Launched {
  child: ChildProcess;
  pid: number;
  /** What identifies this process among all that ever had its pid (its start time). */
  processStart: string | null;
}

/**
 * Starts a command in a new session and process group, detached from the daemon, with its
 * stdout and stderr appended to the attempt's log.
 */
export function launchDetached(command: string, options: { dir: string; cwd: string; env: Record<string, string> }): Launched {
  const files = attemptFiles(options.dir);
  const log = openSync(files.log, 'a');
  try {
    const child = spawn('/bin/sh', ['-c', WRAPPER], {
      cwd: options.cwd,
      env: { ...options.env, DROVER_COMMAND: command, DROVER_PID_FILE: files.wrapper, DROVER_STATUS_FILE: files.wrapper },
      stdio: ['ignore', log, log],
      detached: true,
    });
    if (child.pid === undefined) {
      // Its error event says the same, later: heard, so that it does not end this process.
      child.once('error', () => undefined);
      throw new Error(`could not start /bin/sh in ${options.cwd}`);
    }
    child.unref();
    return { child, pid: child.pid, processStart: processStartTime(child.pid) };
  } finally {
    closeSync(log);
  }
}

/** The complete lines the wrapper wrote: pid, then exit status (an earlier wrapper's two files read as one). */
function wrapperLines(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync(attemptFiles(dir).wrapper, 'utf8');
  } catch {
    text = readOr(join(dir, EARLIER_FILES.pid)) + readOr(join(dir, EARLIER_FILES.status));
  }
  return text.split('\n').slice(0, -1);
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Writes what the wrapper of an attempt run elsewhere (an SSH host) wrote there. */
export function writeWrapperFile(dir: string, pid: number | null, exitStatus: number): void {
  writeFileSync(attemptFiles(dir).wrapper, `${pid ?? 0}\n${exitStatus}\n`);
}

/** The exit status the wrapper wrote, if the command has ended. */
export function readExitStatus(dir: string): { exitCode: number; signal?: string } | undefined {
  const status = wrapperLines(dir)[1];
  if (status === undefined) return undefined;
  const code = Number(status.trim());
  if (!Number.isInteger(code)) return undefined;
  // The shell reports death by signal N as 128 + N.
  if (code > 128 && code < 160) return { exitCode: code, signal: signalName(code - 128) };
  return { exitCode: code };
}

/** The pid the wrapper wrote for itself, if it got that far. */
export function readWrapperPid(dir: string): number | undefined {
  const pid = Number(wrapperLines(dir)[0]?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * The fields of a /proc stat file (`/proc/PID/stat`, or a thread's) that follow the command
 * name, which may itself hold spaces and parentheses: the state first, then the parent's pid,
 * the process group, the session… (Linux; throws where there is no such file).
 */
export function procStatFields(file: string): string[] {
  const stat = readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The process group of a process (Linux; elsewhere undefined). */
export function processGroupOf(pid: number): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return Number(procStatFields(`/proc/${pid}/stat`)[2]);
  } catch {
    return undefined;
  }
}

/** The kernel's start time of a process: with the pid, it tells a process from a later one that reused the pid. */
export function processStartTime(pid: number): string | null {
  try {
    if (process.platform === 'linux') {
      return procStatFields(`/proc/${pid}/stat`)[19] ?? null;
    }
    return execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Whether a process exists and has not exited. A zombie (exited, not yet reaped, as happens
 * where the system's init does not reap orphans) counts as gone.
 */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    const state = procStatFields(`/proc/${pid}/stat`)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Whether the process that was started as (pid, start) is still running. */
export function isAlive(pid: number, start: string | null): boolean {
  return processRunning(pid) && (start === null || processStartTime(pid) === start);
}

/** Signals a whole process group; a group that is already gone is not an error. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Whether any process of the group is still running (zombies aside, on Linux). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  return groupMembers(pgid).length > 0;
}

/** The running (not zombie) processes of a group, from /proc. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = procStatFields(`/proc/${entry}/stat`);
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') members.push(Number(entry));
    } catch {
      // Gone between listing and reading.
    }
  }
  return members;
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM' };

function signalName(number: number): string {
  return SIGNALS[number] ?? `signal ${number}`;
}
