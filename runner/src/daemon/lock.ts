import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { isAlive, processStartTime } from '../local/detached-process';

/** Another daemon already owns this home. */
export class AlreadyRunning extends Error {
  constructor(readonly pid: number) {
    super(`a Drover daemon is already running (pid ${pid})`);
  }
}

/**
 * Takes the daemon's lock file, created exclusively with our pid and start time in it. A lock
 * left by a daemon that died is taken over, also when its pid now belongs to another process (as
 * after a reboot): the start time tells them apart. One held by a live daemon is not.
 */
export function acquireLock(file: string): () => void {
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      // Two lines: the start time may hold spaces (macOS's `ps -o lstart`).
      writeSync(fd, `${process.pid}\n${processStartTime(process.pid) ?? ''}\n`);
      closeSync(fd);
      return () => {
        try {
          if (lockHolder(file).pid === process.pid) unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = lockHolder(file);
    // A lock written before start times were kept names a pid alone: that pid decides.
    if (holder.pid > 0 && holder.pid !== process.pid && isAlive(holder.pid, holder.start)) throw new AlreadyRunning(holder.pid);
    unlinkSync(file);
  }
  throw new Error(`could not take the lock ${file}`);
}

/** Who the lock names: a pid (0 when unreadable) and, unless an older daemon wrote it, its start time. */
function lockHolder(file: string): { pid: number; start: string | null } {
  const [pid, start] = readFileSync(file, 'utf8').split('\n');
  const number = Number(pid?.trim());
  return { pid: Number.isInteger(number) && number > 0 ? number : 0, start: start?.trim() || null };
}
