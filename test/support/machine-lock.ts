import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A machine-wide lock for a test bed that only one process may run at a time: a `flock` child
 * holds it until its stdin closes, which also happens when this process dies, however it dies,
 * so a crashed run never leaves it taken. `what` names the test bed in errors.
 */
export function lockMachine(file: string, what: string, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  return new Promise((resolvePromise, reject) => {
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const child = spawn('flock', ['--exclusive', '--wait', seconds, file, 'sh', '-c', 'echo locked && exec cat >/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once('data', () => {
      child.stdout.destroy();
      child.stderr.destroy();
      // Held for the test bed's life without keeping this process alive.
      child.unref();
      (child.stdin as unknown as { unref(): void }).unref();
      resolvePromise(child);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const why = code === 1 ? `another process's ${what} held ${file} for ${seconds} s` : `flock exited ${code}: ${stderr.trim()}`;
      reject(new Error(`cannot start the ${what}: ${why}`));
    });
  });
}

/** Lets go of a lock taken with lockMachine. */
export function unlockMachine(lock: ChildProcess | undefined): void {
  if (!lock) return;
  lock.stdin?.destroy();
  if (lock.pid === undefined) return;
  try {
    process.kill(lock.pid, 'SIGTERM');
  } catch {
    // Gone already.
  }
}

/**
 * For a mocha `before`: skips the suite, saying why, when a test bed cannot run here (`reason`
 * from its `unavailable()`).
 */
export function skipUnlessAvailable(context: Mocha.Context, what: string, reason: string | undefined): void {
  if (!reason) return;
  console.log(`      skipped: ${what} cannot run here: ${reason}`);
  context.skip();
}
