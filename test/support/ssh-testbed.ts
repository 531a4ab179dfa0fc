// Real SSH hosts for tests, on this one machine: each host is a network namespace with its own
// hostname, its own sshd on port 22 (key-only, its own host key), its own unix user and home,
// and its own fake GPUs (the nvidia-smi fixture reading a per-host state file). h3 sits behind
// h1 and is reachable only with ProxyJump. Tests drive faults through the API: cut links, stop
// sshd, rotate host keys. Needs root; `SshTestbed.unavailable()` says why it cannot run.
//
// Each host's processes descend from a small reaper (a child subreaper, the host's "init"):
// PID 1 on some machines never reaps, and without it every killed detached run would stay a
// zombie that `pgrep -u drtestN` still lists.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { hashHostName } from '../../runner/src/hosts/ssh/known-hosts';
import { procStatFields } from '../../runner/src/local/detached-process';
import { lockMachine, unlockMachine } from './machine-lock';

const ROOT = resolve(__dirname, '../../..');
const NVIDIA_SMI_FIXTURE = join(ROOT, 'test/fixtures/bin/nvidia-smi');
const SSHD = '/usr/sbin/sshd';
const PYTHON = '/usr/bin/python3';
const DIR_PREFIX = 'drover-ssh-testbed-';
const LOCK_FILE = '/run/drover-ssh-testbed.lock';
/** Hosts reached directly from this machine get 10.200.N.0/24, hosts behind a jump host 10.201.N.0/24. */
const DIRECT_NET = '10.200';
const BEHIND_NET = '10.201';
/** The tools the testbed runs as root; sbin is not always on a test runner's PATH. */
const TOOL_PATH = [process.env['PATH'] ?? '', '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter(Boolean).join(delimiter);
const TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, PATH: TOOL_PATH, LC_ALL: 'C' };

// The host's init: sets its hostname, becomes the subreaper of everything sshd starts, starts
// `sshd -D` and starts it again on SIGUSR1 once it has exited; on SIGTERM it reaps until it has
// no children left, then exits. Signals are taken synchronously (sigtimedwait), so a start
// request can never slip between reaping sshd and noticing it is gone.
const REAPER_MARK = 'drover-ssh-testbed-reaper';
const REAPER = `
import ctypes, os, signal, socket, sys
_, _mark, hostname, *argv = sys.argv
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit('prctl(PR_SET_CHILD_SUBREAPER) failed')
socket.sethostname(hostname)
waited = {signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM}
signal.pthread_sigmask(signal.SIG_BLOCK, waited)
sshd, want, ending = None, True, False
while True:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            if ending:
                sys.exit(0)
            break
        if pid == 0:
            break
        if pid == sshd:
            sshd = None
    if want and sshd is None and not ending:
        sshd = os.posix_spawn(argv[0], argv, {}, setsigmask=(), setsigdef=waited)
        want = False
    info = signal.sigtimedwait(waited, 1)
    if info is not None and info.si_signo == signal.SIGUSR1:
        want = True
    if info is not None and info.si_signo == signal.SIGTERM and not ending:
        ending = True
        signal.alarm(5)
        if sshd is not None:
            os.kill(sshd, signal.SIGKILL)
`;

export interface FakeGpu {
  name: string;
  memoryTotalMiB: number;
  /** null prints [N/A]; a bracketed string such as "[Not Supported]" prints as it is. */
  memoryUsedMiB: number | null | string;
  utilization: number | null | string;
}

export interface FakeGpuProcess {
  pid: number;
  /** Index into `gpus`. */
  gpu: number;
  usedMiB: number | null | string;
  name?: string;
}

/** The state file of test/fixtures/bin/nvidia-smi (see its header). */
export interface FakeGpuState {
  driverVersion?: string;
  broken?: boolean;
  hang?: boolean;
  gpus: FakeGpu[];
  processes?: FakeGpuProcess[];
}

export interface TestbedHostOptions {
  /** Also the host's hostname and its ssh config alias: [a-z][a-z0-9]{0,9}. */
  name: string;
  /** Its GPUs; default none (nvidia-smi says "No devices were found"); null: no nvidia-smi at all. */
  gpus?: FakeGpuState | null;
  /** A host reachable only from inside this (earlier listed) host: clients need `ProxyJump <behind>`. */
  behind?: string;
  /** Its unix user; default drtest<position in the list, from 1>. */
  user?: string;
  /** Write its known_hosts entry hashed (`|1|salt|hash`). */
  hashKnownHost?: boolean;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}

const A100: FakeGpu = { name: 'NVIDIA A100-SXM4-40GB', memoryTotalMiB: 40960, memoryUsedMiB: 0, utilization: 0 };
const RTX4090: FakeGpu = { name: 'NVIDIA GeForce RTX 4090', memoryTotalMiB: 24564, memoryUsedMiB: 0, utilization: 0 };

/** Two idle A100s. */
export const TWO_FREE_A100: FakeGpuState = { driverVersion: '550.54.15', gpus: [A100, A100], processes: [] };
/** Two A100s, GPU 0 held by another user's process (pid 4242), as test/fixtures/gpus/two-a100.json. */
export const A100_GPU0_TAKEN: FakeGpuState = {
  driverVersion: '550.54.15',
  gpus: [{ ...A100, memoryUsedMiB: 17412, utilization: 37 }, A100],
  processes: [{ pid: 4242, gpu: 0, usedMiB: 17408, name: 'python3' }],
};
/** Two idle RTX 4090s. */
export const TWO_FREE_RTX4090: FakeGpuState = { driverVersion: '550.54.15', gpus: [RTX4090, RTX4090], processes: [] };

/** h1 (2 free A100s) and h2 (GPU 0 taken, known_hosts entry hashed) reachable directly; h3 (2 free 4090s) only through h1. */
export function defaultHosts(): TestbedHostOptions[] {
  return [
    { name: 'h1', gpus: TWO_FREE_A100 },
    { name: 'h2', gpus: A100_GPU0_TAKEN, hashKnownHost: true },
    { name: 'h3', gpus: TWO_FREE_RTX4090, behind: 'h1' },
  ];
}

interface Host {
  name: string;
  index: number;
  user: string;
  behind: string | undefined;
  hashKnownHost: boolean;
  gpus: FakeGpuState | null;
  netns: string;
  /** Its side of the link: 10.200.N.2 or 10.201.N.2. */
  address: string;
  /** The other end, in the root namespace or in the jump host's. */
  peerAddress: string;
  dir: string;
  home: string;
  sshdDir: string;
  uid: number;
  gid: number;
  reaper: ChildProcess | undefined;
}

const live = new Set<SshTestbed>();
/** A testbed of this process is starting or running. */
let claimed = false;
let exitHookInstalled = false;
let unavailableReason: string | undefined | null = null;

export class SshTestbed {
  /** Root of everything the testbed writes (0755, so the test users can reach their homes). */
  readonly dir: string;
  /** Client side, root only: key pair, ssh config, known_hosts. */
  readonly clientDir: string;
  readonly sshConfigPath: string;
  readonly knownHostsPath: string;
  readonly identityFile: string;
  /** How long start() waited for another process's testbed, and then took itself. */
  readonly timings = { lockWaitMs: 0, startMs: 0 };
  private readonly hosts = new Map<string, Host>();
  private disposed = false;
  private readonly lock: ChildProcess;

  private constructor(dir: string, hosts: Host[], lock: ChildProcess) {
    this.dir = dir;
    this.lock = lock;
    this.clientDir = join(dir, 'client');
    this.sshConfigPath = join(this.clientDir, 'ssh_config');
    this.knownHostsPath = join(this.clientDir, 'known_hosts');
    this.identityFile = join(this.clientDir, 'id_ed25519');
    for (const host of hosts) this.hosts.set(host.name, host);
  }

  /** Why the testbed cannot run on this machine, or undefined when it can. */
  static unavailable(): string | undefined {
    if (unavailableReason === null) unavailableReason = probeUnavailable();
    return unavailableReason;
  }

  /**
   * Starts the hosts (default h1, h2, h3: see defaultHosts). One testbed at a time per machine:
   * the names, addresses and users are fixed, so a testbed in another process (another mocha
   * run) is waited for, up to `lockTimeoutMs` (default 5 minutes).
   */
  static async start(options: { hosts?: TestbedHostOptions[]; lockTimeoutMs?: number } = {}): Promise<SshTestbed> {
    const reason = SshTestbed.unavailable();
    if (reason) throw new Error(`SSH testbed unavailable: ${reason}`);
    const specs = options.hosts ?? defaultHosts();
    validate(specs);
    // Waiting for the machine lock would wait forever on ourselves.
    if (claimed) throw new Error('another SshTestbed is running in this process: dispose it first');
    claimed = true;
    let lock: ChildProcess | undefined;
    let testbed: SshTestbed | undefined;
    try {
      const asked = Date.now();
      lock = await lockMachine(LOCK_FILE, 'SSH testbed', options.lockTimeoutMs ?? 300_000, TOOL_ENV);
      const locked = Date.now();
      const names = specs.map((spec) => spec.name);
      const users = specs.map((spec, i) => spec.user ?? `drtest${i + 1}`);
      // Holding the lock, whatever exists under these names was left by a crashed run.
      teardownNetwork(names, users);
      removeStaleDirs();

      const dir = mkdtempSync(join(traversableTmp(), DIR_PREFIX));
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
      const hosts = specs.map((spec, i): Host => {
        const index = i + 1;
        const net = spec.behind ? BEHIND_NET : DIRECT_NET;
        const hostDir = join(dir, spec.name);
        return {
          name: spec.name,
          index,
          user: users[i]!,
          behind: spec.behind,
          hashKnownHost: spec.hashKnownHost ?? false,
          gpus: spec.gpus === undefined ? { gpus: [] } : spec.gpus,
          netns: `drover-${spec.name}`,
          address: `${net}.${index}.2`,
          peerAddress: `${net}.${index}.1`,
          dir: hostDir,
          home: join(hostDir, 'home'),
          sshdDir: join(hostDir, 'sshd'),
          uid: -1,
          gid: -1,
          reaper: undefined,
        };
      });
      testbed = new SshTestbed(dir, hosts, lock);
      live.add(testbed);
      installExitHook();
      await testbed.setUp();
      testbed.timings.lockWaitMs = locked - asked;
      testbed.timings.startMs = Date.now() - locked;
      return testbed;
    } catch (error) {
      if (testbed) await testbed.dispose();
      else {
        claimed = false;
        unlockMachine(lock);
      }
      throw error;
    }
  }

  user(name: string): string {
    return this.host(name).user;
  }

  home(name: string): string {
    return this.host(name).home;
  }

  /** The address its sshd listens on (the HostName in the ssh config and in known_hosts). */
  address(name: string): string {
    return this.host(name).address;
  }

  /** The host's own folder: bin/ (on its PATH, nvidia-smi), gpus.json, home/, sshd/ (root only). */
  hostDir(name: string): string {
    return this.host(name).dir;
  }

  /** Its network namespace, for `ip netns exec` in a test. */
  netns(name: string): string {
    return this.host(name).netns;
  }

  /** The host's public key, `ssh-ed25519 AAAA…`. */
  hostPublicKey(name: string): string {
    const text = readFileSync(join(this.host(name).sshdDir, 'ssh_host_ed25519_key.pub'), 'utf8');
    return text.trim().split(/\s+/).slice(0, 2).join(' ');
  }

  /** The state file the host's nvidia-smi reads. */
  gpuStatePath(name: string): string {
    return join(this.host(name).dir, 'gpus.json');
  }

  /** The host's GPU lease folder (its DROVER_GPU_LEASE_DIR). */
  gpuLeaseDir(name: string): string {
    return leaseDir(this.host(name));
  }

  /**
   * Runs `command` with bash as the host's user, in its home and inside its namespaces (works
   * while its link is cut or its sshd stopped). Start long-lived processes over ssh instead:
   * what this leaves behind is not reaped by the host.
   */
  exec(name: string, command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const host = this.host(name);
    const pid = this.reaperPid(host);
    const args = ['-t', String(pid), '-n', '-u', '--', 'setpriv', `--reuid=${host.uid}`, `--regid=${host.gid}`, '--init-groups', '--', 'env', '-i', ...hostEnv(host), '/bin/bash', '-c', command];
    return run('nsenter', args, { cwd: host.home, input: options.input, timeoutMs: options.timeoutMs ?? 30_000 });
  }

  /** The real OpenSSH client with the testbed's config, in batch mode: `ssh -F config [options] name command`. */
  ssh(name: string, command: string, options: ExecOptions & { sshOptions?: string[] } = {}): Promise<ExecResult> {
    this.host(name);
    const args = ['-F', this.sshConfigPath, '-o', 'BatchMode=yes', ...(options.sshOptions ?? []), name, command];
    return run('ssh', args, { input: options.input, timeoutMs: options.timeoutMs ?? 30_000 });
  }

  /**
   * Takes the host's link down. 'down' (default) downs our side: new connections fail at once
   * (the unreachable route), live sessions die after ServerAlive. 'blackhole' downs the host's
   * side: packets vanish and connects hang until their timeout.
   */
  cutLink(name: string, mode: 'down' | 'blackhole' = 'down'): void {
    const host = this.host(name);
    if (mode === 'down') ip(this.peerNs(host), ['link', 'set', `veth-${host.name}`, 'down']);
    else ip(host.netns, ['link', 'set', 'eth0', 'down']);
  }

  /** Brings both sides of the link up again, with their addresses and routes. */
  restoreLink(name: string): void {
    const host = this.host(name);
    const peerNs = this.peerNs(host);
    ip(peerNs, ['link', 'set', `veth-${host.name}`, 'up']);
    ip(host.netns, ['link', 'set', 'eth0', 'up']);
    ensureAddress(peerNs, `veth-${host.name}`, `${host.peerAddress}/24`);
    ensureAddress(host.netns, 'eth0', `${host.address}/24`);
  }

  /**
   * Stops the host's sshd: new connections are refused. Sessions already open carry on, as
   * after `systemctl stop ssh`, unless `killSessions`.
   */
  async stopSshd(name: string, options: { killSessions?: boolean } = {}): Promise<void> {
    const host = this.host(name);
    const pid = readPid(this.pidFile(host));
    if (pid !== undefined) {
      signal(pid, 'SIGTERM');
      await waitUntil(`${name}'s sshd (${pid}) to exit`, () => !alive(pid), 5000);
    }
    rmSync(this.pidFile(host), { force: true });
    if (options.killSessions) {
      for (const sessionPid of netnsPids(host.netns)) {
        if (exeOf(sessionPid) === SSHD) signal(sessionPid, 'SIGKILL');
      }
    }
  }

  /** Starts the host's sshd again and waits until it listens. */
  async startSshd(name: string): Promise<void> {
    const host = this.host(name);
    const running = readPid(this.pidFile(host));
    if (running !== undefined && alive(running)) return;
    // A test may have killed sshd itself, leaving its pid file.
    rmSync(this.pidFile(host), { force: true });
    signal(this.reaperPid(host), 'SIGUSR1');
    await this.untilListening(host);
  }

  /** Gives the host a new host key and restarts its sshd: clients with the old known_hosts see a changed key. Returns the new public key. */
  async rotateHostKey(name: string): Promise<string> {
    const host = this.host(name);
    await this.stopSshd(name);
    for (const file of ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']) rmSync(join(host.sshdDir, file), { force: true });
    await run('ssh-keygen', ['-t', 'ed25519', '-q', '-N', '', '-C', `${host.name}-rotated`, '-f', join(host.sshdDir, 'ssh_host_ed25519_key')], { check: true });
    await this.startSshd(name);
    return this.hostPublicKey(name);
  }

  /** Replaces the host's GPU state (atomically: a concurrent nvidia-smi sees the old or the new). */
  setGpus(name: string, state: FakeGpuState): void {
    const host = this.host(name);
    host.gpus = state;
    installNvidiaSmi(host);
  }

  /** Writes a known_hosts file with every host but `name` and returns its path (the unknown-host case). */
  knownHostsWithout(name: string): string {
    this.host(name);
    const file = join(this.clientDir, `known_hosts.without-${name}`);
    writeFileSync(file, this.knownHostsText((host) => host.name !== name), { mode: 0o600 });
    return file;
  }

  /** The known_hosts line for the host's current key, plain or hashed. */
  knownHostsLine(name: string, hashed = this.host(name).hashKnownHost): string {
    const host = this.host(name);
    return `${hashed ? hashHostName(host.address, randomBytes(20)) : host.address} ${this.hostPublicKey(name)}`;
  }

  /**
   * Kills every sshd and everything the test users left running, deletes the namespaces and
   * links, removes the files. Safe to call twice and after a failed start.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    live.delete(this);
    this.disposeSync();
    await Promise.resolve();
  }

  private disposeSync(): void {
    const hosts = [...this.hosts.values()];
    teardownNetwork(hosts.map((host) => host.name), hosts.map((host) => host.user));
    for (const host of hosts) host.reaper = undefined;
    rmSync(this.dir, { recursive: true, force: true });
    claimed = false;
    unlockMachine(this.lock);
  }

  private host(name: string): Host {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${JSON.stringify(name)} in this testbed (hosts: ${[...this.hosts.keys()].join(', ')})`);
    if (this.disposed) throw new Error('the SSH testbed is disposed');
    return host;
  }

  /** Where the host's link ends on the other side: the root namespace, or its jump host's. */
  private peerNs(host: Host): string | undefined {
    return host.behind === undefined ? undefined : this.host(host.behind).netns;
  }

  private pidFile(host: Host): string {
    return join(host.sshdDir, 'sshd.pid');
  }

  private reaperPid(host: Host): number {
    const pid = host.reaper?.pid;
    if (pid === undefined || host.reaper?.exitCode !== null || host.reaper.signalCode !== null) {
      throw new Error(`${host.name}'s reaper is not running (see ${join(host.sshdDir, 'reaper.log')})`);
    }
    return pid;
  }

  private async setUp(): Promise<void> {
    const hosts = [...this.hosts.values()];
    // Network first: one `ip -batch` per namespace; a jump host's namespace before the hosts behind it.
    addUnreachableRoute(`${DIRECT_NET}.0.0/16`);
    addUnreachableRoute(`${BEHIND_NET}.0.0/16`);
    const rootBatch = hosts.map((host) => `netns add ${host.netns}`);
    for (const host of hosts.filter((h) => h.behind === undefined)) {
      rootBatch.push(`link add veth-${host.name} type veth peer name eth0 netns ${host.netns}`, `addr add ${host.peerAddress}/24 dev veth-${host.name}`, `link set veth-${host.name} up`);
    }
    const network = (async () => {
      await ipBatch(undefined, rootBatch);
      const done = new Map<string, Promise<void>>();
      const configure = (host: Host): Promise<void> => {
        let promise = done.get(host.name);
        if (!promise) {
          const behind = hosts.filter((h) => h.behind === host.name);
          const batch = ['link set lo up', `addr add ${host.address}/24 dev eth0`, 'link set eth0 up'];
          for (const other of behind) {
            batch.push(`link add veth-${other.name} type veth peer name eth0 netns ${other.netns}`, `addr add ${other.peerAddress}/24 dev veth-${other.name}`, `link set veth-${other.name} up`);
          }
          const jump = host.behind === undefined ? Promise.resolve() : configure(this.host(host.behind));
          promise = jump.then(() => ipBatch(host.netns, batch));
          done.set(host.name, promise);
        }
        return promise;
      };
      await Promise.all(hosts.map(configure));
    })();

    // Users (useradd/usermod lock /etc/passwd: one at a time) and files, meanwhile.
    const files = (async () => {
      mkdirSync(this.clientDir, { mode: 0o700 });
      const keygen = [run('ssh-keygen', ['-t', 'ed25519', '-q', '-N', '', '-C', 'drover-ssh-testbed', '-f', this.identityFile], { check: true })];
      for (const host of hosts) {
        mkdirSync(host.dir, { mode: 0o755 });
        chmodSync(host.dir, 0o755);
        mkdirSync(host.sshdDir, { mode: 0o700 });
        keygen.push(run('ssh-keygen', ['-t', 'ed25519', '-q', '-N', '', '-C', host.name, '-f', join(host.sshdDir, 'ssh_host_ed25519_key')], { check: true }));
      }
      const keys = Promise.all(keygen);
      keys.catch(() => undefined); // awaited below; a failing ensureUser must not leave it unhandled
      for (const host of hosts) await ensureUser(host);
      await keys;
      const clientKey = readFileSync(`${this.identityFile}.pub`, 'utf8');
      for (const host of hosts) {
        mkdirSync(host.home, { mode: 0o700 });
        mkdirSync(join(host.home, '.ssh'), { mode: 0o700 });
        writeFileSync(join(host.home, '.ssh/authorized_keys'), clientKey, { mode: 0o600 });
        // Login shells (`bash -l`) get PATH from /etc/profile, which would drop the host's bin/.
        const profile = `# Written by the Drover SSH testbed: login shells keep this host's tools on PATH.\nPATH="${join(host.dir, 'bin')}:$PATH"\n`;
        writeFileSync(join(host.home, '.profile'), profile, { mode: 0o644 });
        for (const path of ['', '.ssh', '.ssh/authorized_keys', '.profile']) chownSync(join(host.home, path), host.uid, host.gid);
        chmodSync(host.home, 0o700);
        mkdirSync(join(host.dir, 'bin'), { mode: 0o755 });
        mkdirSync(leaseDir(host), { mode: 0o777 });
        chmodSync(leaseDir(host), 0o777);
        linkNodeIfMissing(host);
        installNvidiaSmi(host);
        writeFileSync(join(host.sshdDir, 'sshd_config'), sshdConfig(host, this.pidFile(host)));
      }
      writeFileSync(this.sshConfigPath, this.clientConfig(), { mode: 0o600 });
      writeFileSync(this.knownHostsPath, this.knownHostsText(() => true), { mode: 0o600 });
    })();
    await Promise.all([network, files]);

    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    for (const host of hosts) this.spawnReaper(host);
    await Promise.all(hosts.map((host) => this.untilListening(host)));
  }

  private spawnReaper(host: Host): void {
    const log = openSync(join(host.sshdDir, 'reaper.log'), 'a');
    try {
      const sshdArgs = [SSHD, '-D', '-f', join(host.sshdDir, 'sshd_config'), '-E', join(host.sshdDir, 'sshd.log')];
      host.reaper = spawn('ip', ['netns', 'exec', host.netns, 'unshare', '--uts', '--', PYTHON, '-c', REAPER, REAPER_MARK, host.name, ...sshdArgs], {
        env: TOOL_ENV,
        stdio: ['ignore', log, log],
        detached: true,
      });
      host.reaper.unref();
      host.reaper.on('error', () => undefined);
    } finally {
      closeSync(log);
    }
  }

  private async untilListening(host: Host): Promise<void> {
    // sshd writes its pid file once it listens.
    try {
      await waitUntil(`${host.name}'s sshd to listen`, () => {
        this.reaperPid(host);
        const pid = readPid(this.pidFile(host));
        return pid !== undefined && alive(pid);
      }, 10_000);
    } catch (error) {
      const tail = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') : '(none)');
      throw new Error(`${(error as Error).message}\nsshd log:\n${tail(join(host.sshdDir, 'sshd.log'))}\nreaper log:\n${tail(join(host.sshdDir, 'reaper.log'))}`, { cause: error });
    }
  }

  private clientConfig(): string {
    const lines: string[] = ['# Written by the Drover SSH testbed.'];
    for (const host of this.hosts.values()) {
      lines.push(
        `Host ${host.name}`,
        `  HostName ${host.address}`,
        `  User ${host.user}`,
        '  Port 22',
        `  IdentityFile ${this.identityFile}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${this.knownHostsPath}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        '  BatchMode yes',
        '  ServerAliveInterval 1',
        '  ServerAliveCountMax 3',
        '  ConnectTimeout 3',
        ...(host.behind === undefined ? [] : [`  ProxyJump ${host.behind}`]),
        '',
      );
    }
    return `${lines.join('\n')}\n`;
  }

  private knownHostsText(include: (host: Host) => boolean): string {
    return [...this.hosts.values()].filter(include).map((host) => `${this.knownHostsLine(host.name)}\n`).join('');
  }
}

function validate(specs: TestbedHostOptions[]): void {
  if (specs.length === 0 || specs.length > 250) throw new Error('an SSH testbed needs 1 to 250 hosts');
  const seen = new Set<string>();
  for (const spec of specs) {
    // veth-<name> must fit IFNAMSIZ (15 characters).
    if (!/^[a-z][a-z0-9]{0,9}$/.test(spec.name)) throw new Error(`bad testbed host name ${JSON.stringify(spec.name)}: [a-z][a-z0-9]{0,9}`);
    if (spec.user !== undefined && !/^[a-z][a-z0-9_-]{0,30}$/.test(spec.user)) throw new Error(`bad testbed user ${JSON.stringify(spec.user)}`);
    if (seen.has(spec.name)) throw new Error(`testbed host ${spec.name} listed twice`);
    if (spec.behind !== undefined && !seen.has(spec.behind)) throw new Error(`testbed host ${spec.name} is behind ${spec.behind}, which must be listed before it`);
    seen.add(spec.name);
  }
}

function probeUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux network namespaces (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, test users, sshd on port 22)';
  if (!existsSync(SSHD)) return `no sshd at ${SSHD} (install openssh-server)`;
  if (!existsSync(PYTHON)) return `no ${PYTHON} (install python3)`;
  const tools = ['ip', 'ssh', 'ssh-keygen', 'unshare', 'nsenter', 'setpriv', 'flock', 'useradd', 'usermod', 'pkill', 'getent'];
  const missing = tools.filter((tool) => !which(tool));
  if (missing.length) return `missing tools: ${missing.join(', ')} (iproute2, openssh-client, util-linux, passwd, procps)`;
  const probe = `drover-probe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { env: TOOL_ENV, encoding: 'utf8' });
  if (added.status !== 0) return `network namespaces not permitted here: ${(added.stderr || added.error?.message || '').trim()}`;
  const uts = spawnSync('ip', ['netns', 'exec', probe, 'unshare', '--uts', 'true'], { env: TOOL_ENV, encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', probe], { env: TOOL_ENV });
  if (uts.status !== 0) return `cannot enter a namespace or unshare the hostname: ${(uts.stderr || uts.error?.message || '').trim()}`;
  return undefined;
}

function which(tool: string): string | undefined {
  for (const dir of TOOL_PATH.split(delimiter)) {
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** A temp folder the test users can traverse: TMPDIR may be a private (0700) one. */
function traversableTmp(): string {
  const base = tmpdir();
  for (let dir = resolve(base); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return '/tmp';
    if (dirname(dir) === dir) return base;
  }
}

/** Folders of testbeds whose process is gone (a crashed or killed run). */
function removeStaleDirs(): void {
  for (const base of new Set([traversableTmp(), tmpdir()])) {
    let entries: string[];
    try {
      entries = readdirSync(base);
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.startsWith(DIR_PREFIX))) {
      const dir = join(base, entry);
      const owner = readPid(join(dir, 'owner.pid'));
      if (owner !== process.pid && (owner === undefined || !alive(owner))) rmSync(dir, { recursive: true, force: true });
    }
  }
}

/**
 * Kills what lives in the hosts' namespaces and runs as their users, then deletes namespaces
 * and links. The reapers go last, once they have reaped what was killed under them: a killed
 * process reparented to a PID 1 that never reaps would stay a zombie of that user.
 */
function teardownNetwork(names: string[], users: string[]): void {
  const netnses = names.map((name) => `drover-${name}`);
  const reapers = new Set(netnses.flatMap(netnsPids).filter(isReaper));
  const killAll = (keep: Set<number>) => {
    for (const netns of netnses) for (const pid of netnsPids(netns)) if (!keep.has(pid)) signal(pid, 'SIGKILL');
    for (const user of users) spawnSync('pkill', ['-KILL', '-u', user], { env: TOOL_ENV });
  };
  const deadline = Date.now() + 5000;
  for (let round = 0; [...reapers].some(alive) && Date.now() < deadline; round++) {
    // Again each round: something may have forked while the last round was killing.
    killAll(reapers);
    if (round === 0) for (const pid of reapers) signal(pid, 'SIGTERM');
    sleepSync(10);
  }
  killAll(new Set());
  const batch = [...netnses.map((netns) => `netns del ${netns}`), ...names.map((name) => `link del veth-${name}`)];
  spawnSync('ip', ['-force', '-batch', '-'], { env: TOOL_ENV, input: `${batch.join('\n')}\n` });
}

function isReaper(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(REAPER_MARK);
  } catch {
    return false;
  }
}

function netnsPids(netns: string): number[] {
  const result = spawnSync('ip', ['netns', 'pids', netns], { env: TOOL_ENV, encoding: 'utf8' });
  if (result.status !== 0) return [];
  return result.stdout.split(/\s+/).filter(Boolean).map(Number).filter((pid) => pid > 1);
}

function exeOf(pid: number): string | undefined {
  try {
    return realpathSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Running, and not a zombie. */
function alive(pid: number): boolean {
  try {
    return procStatFields(`/proc/${pid}/stat`)[0] !== 'Z';
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

function addUnreachableRoute(prefix: string): void {
  // When a veth goes down its /24 route vanishes; without this, traffic would leave the machine.
  const result = spawnSync('ip', ['route', 'add', 'unreachable', prefix], { env: TOOL_ENV, encoding: 'utf8' });
  if (result.status !== 0 && !result.stderr.includes('File exists')) throw new Error(`ip route add unreachable ${prefix}: ${result.stderr.trim()}`);
}

async function ipBatch(netns: string | undefined, commands: string[]): Promise<void> {
  await run('ip', [...(netns === undefined ? [] : ['-n', netns]), '-batch', '-'], { input: `${commands.join('\n')}\n`, check: true });
}

function ip(netns: string | undefined, args: string[]): void {
  execFileSync('ip', [...(netns === undefined ? [] : ['-n', netns]), ...args], { env: TOOL_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ensureAddress(netns: string | undefined, dev: string, cidr: string): void {
  const prefix = [...(netns === undefined ? [] : ['-n', netns])];
  const shown = execFileSync('ip', [...prefix, '-o', 'addr', 'show', 'dev', dev], { env: TOOL_ENV, encoding: 'utf8' });
  if (!shown.includes(` ${cidr} `)) ip(netns, ['addr', 'add', cidr, 'dev', dev]);
  // The kernel puts the prefix route back with the address or the link; this covers the case it did not.
  const network = cidr.replace(/\.\d+\/24$/, '.0/24');
  const routes = execFileSync('ip', [...prefix, 'route', 'show', network, 'dev', dev], { env: TOOL_ENV, encoding: 'utf8' });
  if (!routes.trim()) ip(netns, ['route', 'add', network, 'dev', dev, 'src', cidr.replace(/\/24$/, '')]);
}

/** Creates the user, or takes over one an earlier testbed made, pointing its home at this testbed's. */
async function ensureUser(host: Host): Promise<void> {
  const existing = spawnSync('getent', ['passwd', host.user], { env: TOOL_ENV, encoding: 'utf8' });
  if (existing.status === 0) {
    // usermod refuses while the user has processes; the ones just killed may take a moment.
    const deadline = Date.now() + 3000;
    for (;;) {
      const result = await run('usermod', ['-d', host.home, '-s', '/bin/bash', '-p', '*', host.user]);
      if (result.code === 0) break;
      if (Date.now() > deadline) throw new Error(`usermod ${host.user}: ${result.stderr.trim()}`);
      spawnSync('pkill', ['-KILL', '-u', host.user], { env: TOOL_ENV });
      await new Promise((done) => setTimeout(done, 50));
    }
  } else {
    const groupExists = spawnSync('getent', ['group', host.user], { env: TOOL_ENV }).status === 0;
    // '*' rather than '!': with UsePAM no, a locked ('!') account is refused even for keys.
    await run('useradd', ['-M', '-d', host.home, '-s', '/bin/bash', '-p', '*', ...(groupExists ? ['-g', host.user] : ['-U']), host.user], { check: true });
  }
  const fields = execFileSync('getent', ['passwd', host.user], { env: TOOL_ENV, encoding: 'utf8' }).trim().split(':');
  host.uid = Number(fields[2]);
  host.gid = Number(fields[3]);
}

/** The host's sessions find `node` for the nvidia-smi fixture on the system PATH, or here. */
function linkNodeIfMissing(host: Host): void {
  if (['/usr/local/bin', '/usr/bin', '/bin'].some((dir) => existsSync(join(dir, 'node')))) return;
  symlinkSync(realpathSync(process.execPath), join(host.dir, 'bin/node'));
}

function installNvidiaSmi(host: Host): void {
  const target = join(host.dir, 'bin/nvidia-smi');
  const state = join(host.dir, 'gpus.json');
  if (host.gpus === null) {
    rmSync(target, { force: true });
    rmSync(state, { force: true });
    return;
  }
  if (!existsSync(target)) writeFileSync(target, readFileSync(NVIDIA_SMI_FIXTURE), { mode: 0o755 });
  const temp = `${state}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(host.gpus, null, 2)}\n`, { mode: 0o644 });
  chmodSync(temp, 0o644);
  renameSync(temp, state);
}

function hostPath(host: Host): string {
  return `${join(host.dir, 'bin')}:/usr/local/bin:/usr/bin:/bin`;
}

/** What the host's sshd gives every session (SetEnv), for `exec` to match. */
function hostEnv(host: Host): string[] {
  return [`HOME=${host.home}`, `USER=${host.user}`, `LOGNAME=${host.user}`, 'SHELL=/bin/bash', `PATH=${hostPath(host)}`, `DROVER_FAKE_GPUS=${join(host.dir, 'gpus.json')}`, `DROVER_GPU_LEASE_DIR=${leaseDir(host)}`];
}

/**
 * Where the host's GPU leases live. The hosts share this machine's /tmp, and the fixture's GPUs
 * have the same UUIDs on every host, so each host has a lease folder of its own (as a real
 * machine has its own /tmp).
 */
function leaseDir(host: Host): string {
  return join(host.dir, 'gpu-leases');
}

function sshdConfig(host: Host, pidFile: string): string {
  const paths = [host.dir, pidFile];
  // sshd_config would split a path with spaces or quotes; mkdtemp under /tmp never makes one.
  for (const path of paths) if (!/^[\w./-]+$/.test(path)) throw new Error(`testbed path not usable in sshd_config: ${path}`);
  return [
    '# Written by the Drover SSH testbed.',
    'Port 22',
    'AddressFamily inet',
    'ListenAddress 0.0.0.0',
    `HostKey ${join(host.sshdDir, 'ssh_host_ed25519_key')}`,
    `PidFile ${pidFile}`,
    'UsePAM no',
    'PermitRootLogin no',
    `AllowUsers ${host.user}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'Subsystem sftp internal-sftp',
    `SetEnv PATH=${hostPath(host)} DROVER_FAKE_GPUS=${join(host.dir, 'gpus.json')} DROVER_GPU_LEASE_DIR=${leaseDir(host)}`,
    'AllowTcpForwarding yes',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    // Tests open many connections at once (ProxyJump, parallel probes): the default 10:30:100 drops some.
    'MaxStartups 200',
    'MaxSessions 100',
    // Dead clients (cut links) are noticed in seconds, as ServerAlive does on the client side.
    'ClientAliveInterval 1',
    'ClientAliveCountMax 3',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}


interface RunOptions {
  cwd?: string;
  input?: string | undefined;
  timeoutMs?: number;
  check?: boolean;
}

function run(command: string, args: string[], options: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: TOOL_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    child.once('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      if (timer) clearTimeout(timer);
      if (options.check && code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      else resolvePromise({ code, stdout, stderr });
    });
  });
}

/** A test that forgets dispose() must not leave sshds and namespaces behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const testbed of live) void testbed.dispose();
  });
}
