import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { DaemonClient } from '../../common/node/daemon-client';
import type { DaemonRequests } from '../../common/protocol';
import { daemonScript } from '../../runner/src/cli/daemon-connection';

export const ROOT = resolve(__dirname, '../../..');
export const FIXTURE_BIN = join(ROOT, 'test/fixtures/bin');
export const FIXTURE_GPUS = join(ROOT, 'test/fixtures/gpus');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A private Drover home for one test: its own daemon, state and runs, with fast timings, and
 * optionally the nvidia-smi fixture on PATH standing in for GPUs.
 */
export class DaemonHarness {
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(options: { gpus?: string; env?: NodeJS.ProcessEnv } = {}) {
    if (!existsSync(join(ROOT, 'dist/daemon.js'))) throw new Error('dist/daemon.js is missing: run `npm run build` first');
    this.home = mkdtempSync(join(tmpdir(), 'drover-home-'));
    this.env = {
      ...process.env,
      DROVER_HOME: this.home,
      DROVER_POLL_MS: '50',
      DROVER_RETRY_BACKOFF_MS: '100',
      DROVER_KILL_GRACE_MS: '500',
      DROVER_HOST_PROBE_MS: '60000',
      // Each test's GPUs are its own (the fixture's GPUs have the same UUIDs everywhere).
      DROVER_GPU_LEASE_DIR: join(this.home, 'gpu-leases'),
      ...(options.gpus ? { PATH: `${FIXTURE_BIN}${delimiter}${process.env['PATH']}`, DROVER_FAKE_GPUS: join(FIXTURE_GPUS, options.gpus) } : {}),
      ...options.env,
    };
  }

  /** Runs the drover CLI as a user would, in `cwd`. */
  cli(args: string[], cwd = ROOT, extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin/drover.js'), ...args], { cwd, env: { ...this.env, ...extraEnv } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
    });
  }

  /** A protocol client, starting the daemon if needed. */
  client(): Promise<DaemonClient> {
    return DaemonClient.connect({ client: 'test', env: this.env, startWith: daemonScript() });
  }

  /** One request on a connection of its own. */
  async request<M extends keyof DaemonRequests>(method: M, params: DaemonRequests[M]['params']): Promise<DaemonRequests[M]['result']> {
    const client = await this.client();
    try {
      return await client.request(method, params);
    } finally {
      client.close();
    }
  }

  /** Stops the daemon (if running), kills whatever its runs left, and removes the home. */
  async dispose(): Promise<void> {
    await this.cli(['daemon', 'stop']);
    rmSync(this.home, { recursive: true, force: true });
  }
}

/** Waits until `check` holds (polling), failing with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolveDelay) => setTimeout(resolveDelay, 25));
  }
}
