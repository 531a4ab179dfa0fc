import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { Store, StoreError } from '../store/store';
import { Daemon, type DaemonSettings } from './daemon';
import { acquireLock, AlreadyRunning } from './lock';
import { daemonPaths, droverHome } from '../../../common/node/daemon-paths';
import { LEAN_OPTIMIZING_FLAGS } from '../../../common/node/v8-budgets';
import { DAEMON_EXIT } from '../../../common/protocol';
import { serve, Subscribers } from './server';
import { DROVER_VERSION } from '../version';


function settingsFrom(env: NodeJS.ProcessEnv): DaemonSettings {
  const number = (name: string, fallback: number) => {
    const value = Number(env[name]);
    return env[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return {
    env,
    retryBackoffMs: number('DROVER_RETRY_BACKOFF_MS', 5_000),
    killGraceMs: number('DROVER_KILL_GRACE_MS', 10_000),
    pollMs: number('DROVER_POLL_MS', 100),
    hostProbeMs: number('DROVER_HOST_PROBE_MS', 15_000),
    slurmPollMs: number('DROVER_SLURM_POLL_MS', 2_000),
    idleGpuMs: number('DROVER_IDLE_GPU_MS', 10 * 60_000),
    gpuSampleRetentionMs: number('DROVER_GPU_SAMPLE_DAYS', 7) * 24 * 3600_000,
    ...(env['DROVER_SSH_CONFIG'] && { sshConfigPath: env['DROVER_SSH_CONFIG'] }),
    ...(env['DROVER_GPU_QUOTAS'] && { policy: { gpuQuotas: gpuQuotasFrom(env['DROVER_GPU_QUOTAS']) } }),
  };
}

/** `DROVER_GPU_QUOTAS=alice=8,bob=4,*=2`: the GPUs each user may hold at once (`*`: everyone not named). */
function gpuQuotasFrom(value: string): Record<string, number> {
  const quotas: Record<string, number> = {};
  for (const entry of value.split(',')) {
    const match = /^\s*([^\s=]+)\s*=\s*(\d+)\s*$/.exec(entry);
    if (!match) fail(`DROVER_GPU_QUOTAS is a list of USER=GPUS (e.g. alice=8,*=2), not '${value}'`, DAEMON_EXIT.badState);
    quotas[match[1]!] = Number(match[2]);
  }
  return quotas;
}

/** `DROVER_LISTEN_TCP=HOST:PORT` asks for a TCP listener as well (port 0: any free one). */
function tcpSetting(value: string | undefined): { host: string; port: number } | Error | undefined {
  if (!value) return undefined;
  const match = /^(.+):(\d+)$/.exec(value.trim());
  if (!match || Number(match[2]) > 65535) return new Error(`DROVER_LISTEN_TCP is HOST:PORT (e.g. 127.0.0.1:7707), not '${value}'`);
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

/** The token TCP clients must show: made once, random, readable by this user alone. */
function readOrCreateToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    const token = randomBytes(32).toString('hex');
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  }
}

/**
 * Ends a daemon that cannot start. The message goes to stdout, where the client that started
 * the daemon reads it (`error …`), and to stderr, the daemon's log.
 */
function fail(message: string, code: number): never {
  console.log(`error ${message}`);
  console.error(`drover daemon: ${message}`);
  process.exit(code);
}

/**
 * The daemon process: takes the lock, opens the state, serves, and prints `ready` on stdout when
 * it does. After that it never writes to stdout, which its starter stops reading.
 */
export async function run(): Promise<void> {
  // A fresh daemon compiles its hot code (and SQLite's) while its first burst of work runs: with
  // these budgets, 1,000 short jobs cost it 10-15% less processor time.
  setFlagsFromString(LEAN_OPTIMIZING_FLAGS);
  const paths = daemonPaths(droverHome());
  let release: () => void;
  try {
    mkdirSync(paths.home, { recursive: true, mode: 0o700 });
    chmodSync(paths.home, 0o700);
    release = acquireLock(paths.lock);
    // SQLite's own lock folder, left behind if a daemon was killed: ours to clear, as the daemon lock is ours.
    rmSync(`${paths.database}.lock`, { recursive: true, force: true });
  } catch (error) {
    if (error instanceof AlreadyRunning) fail(error.message, DAEMON_EXIT.alreadyRunning);
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    fail(`cannot use the state folder ${paths.home} (${code}); it must be a folder this user can write`, DAEMON_EXIT.badState);
  }
  let store: Store;
  try {
    store = Store.open(paths.database);
  } catch (error) {
    release();
    if (error instanceof StoreError) fail(error.message, DAEMON_EXIT.badState);
    throw error;
  }
  const subscribers = new Subscribers();
  const daemon = new Daemon(paths, store, settingsFrom(process.env), (topic, method, payload, jobId) => subscribers.emit(topic, method, payload, jobId));
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    served.close();
    daemon.stop();
    release();
    // Nothing should keep the process up now; should something, it still ends.
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  try {
    await daemon.start();
  } catch (error) {
    if (!(error instanceof StoreError)) throw error;
    daemon.stop();
    release();
    fail(error.message, DAEMON_EXIT.badState);
  }
  const tcp = tcpSetting(process.env['DROVER_LISTEN_TCP']);
  if (tcp instanceof Error) fail(tcp.message, DAEMON_EXIT.badState);
  const served = await serve(daemon, subscribers, {
    socketPath: paths.socket,
    daemonVersion: DROVER_VERSION,
    onShutdown: shutdown,
    ...(tcp && { tcp: { ...tcp, token: readOrCreateToken(paths.token) } }),
  });
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  console.log(`ready ${paths.socket}${tcp ? ` tcp=${tcp.host}:${served.tcpPort}` : ''}`);
}
