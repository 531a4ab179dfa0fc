import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The files of one attempt, in its own folder (a notebook run adds its cell events and the executed notebook). */
export function attemptFiles(dir: string) {
  return {
    log: join(dir, 'output.log'), status: join(dir, 'exit-status'), metrics: join(dir, 'metrics.jsonl'), pid: join(dir, 'pid'),
    cells: join(dir, 'cells.jsonl'), notebook: join(dir, 'executed.ipynb'),
  };
}

/**
 * The wrapper every attempt runs under: it runs the command in a subshell and, when it ends,
 * writes its exit status to a file, so the status survives the daemon. A status line is one
 * small write ending in a newline; a reader takes only a complete line. A trap with an action
 * keeps the wrapper alive through SIGTERM without passing an ignored signal on to the command;
 * SIGKILL ends both, and then there is no status to write. Everything the wrapper needs comes in
 * environment variables, so nothing is ever quoted.
 */
export const WRAPPER = [
  // The pid first: should the daemon die before it records it, a restart still finds the process.
  'printf \'%s\\n\' "$$" > "$DROVER_PID_FILE"',
  "trap ':' TERM INT HUP",
  '(eval "$DROVER_COMMAND") </dev/null',
  'printf \'%s\\n\' "$?" > "$DROVER_STATUS_FILE"',
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
      env: { ...options.env, DROVER_COMMAND: command, DROVER_STATUS_FILE: files.status, DROVER_PID_FILE: files.pid },
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

/** The exit status the wrapper wrote, if the command has ended. */
export function readExitStatus(dir: string): { exitCode: number; signal?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(attemptFiles(dir).status, 'utf8');
  } catch {
    return undefined;
  }
  if (!text.endsWith('\n')) return undefined;
  const code = Number(text.trim());
  if (!Number.isInteger(code)) return undefined;
  // The shell reports death by signal N as 128 + N.
  if (code > 128 && code < 160) return { exitCode: code, signal: signalName(code - 128) };
  return { exitCode: code };
}

/** The pid the wrapper wrote for itself, if it got that far. */
export function readWrapperPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(attemptFiles(dir).pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The process group of a process (Linux; elsewhere undefined). */
export function processGroupOf(pid: number): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

/** The kernel's start time of a process: with the pid, it tells a process from a later one that reused the pid. */
export function processStartTime(pid: number): string | null {
  try {
    if (process.platform === 'linux') {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name, which may itself hold spaces and parentheses.
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
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
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
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
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
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
