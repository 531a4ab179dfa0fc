import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { processRunning } from '../local/detached-process';

/** Another daemon already owns this home. */
export class AlreadyRunning extends Error {
  constructor(readonly pid: number) {
    super(`a Drover daemon is already running (pid ${pid})`);
  }
}

/**
 * Takes the daemon's lock file, created exclusively with our pid in it. A lock left by a
 * daemon that died is taken over; one held by a live process is not.
 */
export function acquireLock(file: string): () => void {
  for (let tries = 0; tries < 3; tries++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processRunning(holder)) throw new AlreadyRunning(holder);
    unlinkSync(file);
  }
  throw new Error(`could not take the lock ${file}`);
}
