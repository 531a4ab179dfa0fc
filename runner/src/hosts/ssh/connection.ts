/**
 * One multiplexed SSH connection per host alias: every exec and the SFTP session of a host
 * share it as channels. It verifies host keys against known_hosts (never accepting a changed
 * key), authenticates with the agent and the IdentityFiles only (no passwords, no prompts),
 * goes through ProxyJump hops, notices a dead link by keepalives and reconnects by itself.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import {
  BaseAgent,
  Client,
  OpenSSHAgent,
  utils,
  type AnyAuthMethod,
  type ClientChannel,
  type ConnectConfig,
  type IdentityCallback,
  type ParsedKey,
  type ServerHostKeyAlgorithm,
  type SFTPWrapper,
  type SignCallback,
  type SigningRequestOptions,
} from 'ssh2';
import { shellWord } from '../../../../common/spec';
import { checkHostKey, knownHostsLine, knownKeyTypes, type HostKeyCheck } from './known-hosts';
import type { ResolvedSshHost } from './ssh-config';

export type SshConnectionState = 'connecting' | 'up' | 'down';

export interface SshConnectionOptions {
  /** ssh-agent socket; default: the host's IdentityAgent, else env SSH_AUTH_SOCK. `false`: no agent. */
  agent?: string | false;
  /** Backoff between reconnect attempts (jittered, doubling from initialMs up to maxMs). */
  reconnect?: { initialMs: number; maxMs: number };
  /** Concurrent exec channels; more wait in a queue. sshd's MaxSessions defaults to 10. */
  maxConcurrentExecs?: number;
}

export interface ExecOptions {
  stdin?: string | Buffer;
  /** On expiry the channel is closed (and KILL requested) and the promise rejects with SshExecTimeout. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** Null when the command died by a signal. */
  code: number | null;
  /** e.g. "SIGKILL". */
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** Why a connection attempt failed; `message` is the human reason, prefixed with the alias. */
export class SshConnectError extends Error {
  constructor(
    readonly alias: string,
    readonly kind: 'network' | 'timeout' | 'host-key' | 'auth' | 'protocol' | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'SshConnectError';
  }
}

export class HostKeyError extends SshConnectError {
  constructor(
    alias: string,
    readonly status: 'unknown' | 'changed' | 'revoked',
    readonly fingerprint: string,
    readonly keyType: string,
    /** The name looked up in known_hosts (`host` or `[host]:port`). */
    readonly knownHostsName: string,
    /** "file:line" of the entry that no longer matches (changed) or revokes the key. */
    readonly knownAt: string | undefined,
    message: string,
  ) {
    super(alias, 'host-key', message);
    this.name = 'HostKeyError';
  }
}

/** The host is not reachable now; `reason` says why (e.g. "h1: connection refused (10.0.0.2:22)"). */
export class SshUnavailable extends Error {
  constructor(
    readonly alias: string,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'SshUnavailable';
  }
}

export class SshExecTimeout extends Error {
  constructor(
    readonly alias: string,
    readonly timeoutMs: number,
  ) {
    super(`${alias}: remote command timed out after ${formatSeconds(timeoutMs)}`);
    this.name = 'SshExecTimeout';
  }
}

/**
 * A remote shell command line with every word quoted, e.g. `remoteCommand(['printf', '%s\n', x])`.
 * sshd hands the line to the user's login shell, which is assumed to be POSIX (sh, bash, zsh).
 */
export function remoteCommand(argv: string[]): string {
  return argv.map(shellWord).join(' ');
}

const DEFAULT_RECONNECT = { initialMs: 250, maxMs: 5000 };
const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
// ssh sends no keepalives unless told to; a daemon must notice a dead link, so it does by default.
const DEFAULT_KEEPALIVE_MS = 15_000;
const DEFAULT_KEEPALIVE_COUNT = 3;
const DEFAULT_MAX_EXECS = 8;

/** ssh-rsa (SHA-1 signatures) is left out, as in OpenSSH since 8.8. */
const HOST_KEY_ALGORITHMS: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256'],
};

interface Link {
  /** Jump clients first, the target's client last. */
  clients: Client[];
  target: Client;
  /** Exec channels open on this link. */
  channels: number;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

interface QueuedExec {
  start: () => void;
  reject: (error: Error) => void;
}

export class SshConnection extends EventEmitter {
  readonly host: ResolvedSshHost;
  private readonly agentOption: string | false | undefined;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly maxExecs: number;

  private _state: SshConnectionState = 'down';
  private _reason: string;
  private _lastError: Error | undefined;
  private wanted = false;
  private closed = false;
  private link: Link | undefined;
  private attempting = false;
  /** Clients of the attempt in flight, so close() can stop it. */
  private readonly attemptClients = new Set<Client>();
  private retryTimer: NodeJS.Timeout | undefined;
  private nextDelayMs: number;
  private waiters: Waiter[] = [];
  private readonly queue: QueuedExec[] = [];
  private readonly running = new Set<(error: Error) => void>();
  private sftpSession: Promise<SFTPWrapper> | undefined;

  constructor(host: ResolvedSshHost, options: SshConnectionOptions = {}) {
    super();
    this.host = host;
    this.agentOption = options.agent;
    this.backoff = options.reconnect ?? DEFAULT_RECONNECT;
    this.maxExecs = Math.max(1, options.maxConcurrentExecs ?? DEFAULT_MAX_EXECS);
    this.nextDelayMs = this.backoff.initialMs;
    this._reason = `${host.alias}: not connected`;
  }

  get alias(): string {
    return this.host.alias;
  }

  get state(): SshConnectionState {
    return this._state;
  }

  /** Why the connection is not up (the last failure); meaningful while state is 'down'. */
  get reason(): string {
    return this._reason;
  }

  /** The error behind `reason` (a HostKeyError, an SshConnectError, …). */
  get lastError(): Error | undefined {
    return this._lastError;
  }

  override on(event: 'up', listener: () => void): this;
  override on(event: 'connecting', listener: () => void): this;
  override on(event: 'down', listener: (reason: string, error: Error | undefined) => void): this;
  override on(event: 'hostKeyAdded', listener: (info: { alias: string; name: string; fingerprint: string; keyType: string; file: string }) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this; // eslint-disable-line @typescript-eslint/no-explicit-any
  override on(event: string | symbol, listener: (...args: any[]) => void): this { // eslint-disable-line @typescript-eslint/no-explicit-any
    return super.on(event, listener);
  }

  /**
   * Brings the connection up and keeps it up until close(): after a failure or a drop it
   * retries by itself with backoff. Resolves when up; rejects with the first attempt's error
   * (a HostKeyError, an SshConnectError) while retries go on in the background.
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new SshUnavailable(this.alias, `${this.alias}: connection closed`));
    if (this._state === 'up') return Promise.resolve();
    this.wanted = true;
    const promise = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.attempting) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.startAttempt();
    }
    return promise;
  }

  /** Resolves once the connection is up (now or later); rejects after timeoutMs. */
  whenUp(timeoutMs: number): Promise<void> {
    if (this._state === 'up') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('up', onUp);
        reject(new SshUnavailable(this.alias, this._reason));
      }, timeoutMs);
      const onUp = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('up', onUp);
    });
  }

  /**
   * Runs `command` on the host. `command` is a complete remote shell command line that the
   * CALLER has quoted (build it with remoteCommand()); it goes to the login shell as it is.
   * Rejects with SshUnavailable when the connection is not up or drops while it runs.
   */
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (this._state !== 'up' || !this.link) return Promise.reject(this.unavailable());
    const link = this.link;
    return new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        this.running.delete(fail);
        reject(error);
      };
      const done = (result: ExecResult) => {
        if (settled) return;
        settled = true;
        this.running.delete(fail);
        resolve(result);
      };
      this.queue.push({
        reject: fail,
        start: () => {
          this.running.add(fail);
          link.channels++;
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            link.channels--;
            this.pump();
          };
          this.runExec(link, command, options, { done, fail, release });
        },
      });
      this.pump();
    });
  }

  /** The connection's SFTP session: opened once, reopened after a reconnect. */
  sftp(): Promise<SFTPWrapper> {
    if (this._state !== 'up' || !this.link) return Promise.reject(this.unavailable());
    if (!this.sftpSession) {
      const link = this.link;
      const session = new Promise<SFTPWrapper>((resolve, reject) => {
        link.target.sftp((error, sftp) => {
          if (error) {
            reject(this.link === link ? new SshConnectError(this.alias, 'protocol', `${this.alias}: cannot open SFTP: ${error.message}`) : this.unavailable());
            return;
          }
          sftp.on('close', () => {
            if (this.sftpSession === session) this.sftpSession = undefined;
          });
          resolve(sftp);
        });
      });
      session.catch(() => {
        if (this.sftpSession === session) this.sftpSession = undefined;
      });
      this.sftpSession = session;
    }
    return this.sftpSession;
  }

  /** Closes the connection for good and stops reconnecting. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const reason = `${this.alias}: connection closed`;
    const error = new SshUnavailable(this.alias, reason);
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    const clients = [...(this.link?.clients ?? []), ...this.attemptClients];
    this.link = undefined;
    this.sftpSession = undefined;
    this.failPending(error);
    const wasDown = this._state === 'down';
    this._state = 'down';
    this._reason = reason;
    if (!wasDown) this.emit('down', reason, error);
    await endClients(clients);
  }

  private unavailable(): SshUnavailable {
    const reason = this._state === 'connecting' ? `${this.alias}: connecting` : this._reason;
    return new SshUnavailable(this.alias, reason);
  }

  private pump(): void {
    const link = this.link;
    if (!link) return;
    while (link.channels < this.maxExecs && this.queue.length > 0) this.queue.shift()!.start();
  }

  private failPending(error: Error): void {
    for (const job of this.queue.splice(0)) job.reject(error);
    for (const settle of [...this.running]) settle(error);
  }

  /** `release` frees the channel slot: when the channel closes, or a while after a timeout. */
  private runExec(link: Link, command: string, options: ExecOptions, handlers: { done: (result: ExecResult) => void; fail: (error: Error) => void; release: () => void }): void {
    const { done, fail, release } = handlers;
    if (this.link !== link) {
      release();
      return fail(this.unavailable());
    }
    const onOpen = (error: Error | undefined, stream: ClientChannel) => {
      if (error) {
        release();
        fail(this.link === link ? new SshConnectError(this.alias, 'protocol', `${this.alias}: cannot start a remote command: ${error.message}`) : this.unavailable());
        return;
      }
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let code: number | null = null;
      let signal: string | null = null;
      let exited = false;
      let timer: NodeJS.Timeout | undefined;
      if (options.timeoutMs !== undefined) {
        const timeoutMs = options.timeoutMs;
        timer = setTimeout(() => {
          fail(new SshExecTimeout(this.alias, timeoutMs));
          sendSignal(stream, 'KILL');
          stream.close();
          // A server that ignores the signal keeps the channel until the command ends: stop
          // counting it after a grace period rather than starving the queue.
          setTimeout(release, 5000).unref();
        }, timeoutMs);
      }
      stream.on('data', (chunk: Buffer) => stdout.push(chunk));
      stream.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      stream.on('exit', (exitCode: number | null, exitSignal?: string) => {
        exited = true;
        code = typeof exitCode === 'number' ? exitCode : null;
        signal = exitSignal ?? null;
      });
      stream.on('error', () => {
        // surfaced by 'close' below
      });
      stream.on('close', () => {
        clearTimeout(timer);
        release();
        if (!exited && this.link !== link) fail(this.unavailable());
        else done({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) });
      });
      stream.end(options.stdin);
    };
    try {
      link.target.exec(command, onOpen);
    } catch {
      release();
      fail(this.unavailable());
    }
  }

  private startAttempt(): void {
    if (this.closed || this.attempting) return;
    this.attempting = true;
    this._state = 'connecting';
    this.emit('connecting');
    this.attempt().then(
      (link) => {
        this.attempting = false;
        if (this.closed) {
          void endClients(link.clients);
          return;
        }
        this.link = link;
        this.nextDelayMs = this.backoff.initialMs;
        this._state = 'up';
        this._lastError = undefined;
        for (const client of link.clients) client.once('close', () => this.onDrop(link, client));
        for (const waiter of this.waiters.splice(0)) waiter.resolve();
        this.emit('up');
      },
      (error: Error) => {
        this.attempting = false;
        if (this.closed) return;
        this.goDown(error);
        for (const waiter of this.waiters.splice(0)) waiter.reject(error);
        this.scheduleRetry(error);
      },
    );
  }

  private goDown(error: Error): void {
    this._state = 'down';
    this._reason = error.message;
    this._lastError = error;
    this.emit('down', error.message, error);
  }

  private onDrop(link: Link, closed: Client): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.sftpSession = undefined;
    // A hop that dies takes the clients behind it along: blame the first one that saw an error.
    const culprit = link.clients.find((c) => (c as ClientWithCause).dropCause !== undefined) ?? closed;
    const index = link.clients.indexOf(culprit);
    const hop = index < link.clients.length - 1 ? this.host.proxyJump[index] : undefined;
    const cause = (culprit as ClientWithCause).dropCause;
    const reason = hop ? `${this.alias}: jump host ${dropReason(hop, cause)}` : dropReason(this.host, cause);
    const error = new SshConnectError(this.alias, cause?.level === 'client-timeout' ? 'timeout' : 'network', reason);
    this.failPending(new SshUnavailable(this.alias, reason));
    void endClients(link.clients);
    this.goDown(error);
    this.nextDelayMs = this.backoff.initialMs;
    this.scheduleRetry(error);
  }

  private scheduleRetry(error: Error): void {
    if (this.closed || !this.wanted) return;
    // A refused host key or login will not fix itself in 250 ms: wait the longest.
    const slow = error instanceof SshConnectError && (error.kind === 'host-key' || error.kind === 'auth');
    const base = slow ? this.backoff.maxMs : this.nextDelayMs;
    this.nextDelayMs = Math.min(this.nextDelayMs * 2, this.backoff.maxMs);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.startAttempt();
    }, delay);
    this.retryTimer.unref();
  }

  private async attempt(): Promise<Link> {
    const hops = [...this.host.proxyJump, this.host];
    const clients: Client[] = [];
    let sock: Duplex | undefined;
    try {
      for (let i = 0; i < hops.length; i++) {
        const hop = hops[i]!;
        const via = i > 0 ? hops[i - 1]!.alias : undefined;
        let client: Client;
        try {
          client = await this.openClient(hop, sock, via);
        } catch (error) {
          throw i < hops.length - 1 ? asJumpError(this.alias, error as Error) : error;
        }
        clients.push(client);
        if (i < hops.length - 1) sock = await forwardTo(client, hops[i + 1]!, hop.alias, this.alias);
      }
    } catch (error) {
      void endClients(clients);
      throw error;
    } finally {
      for (const client of clients) this.attemptClients.delete(client);
    }
    return { clients, target: clients[clients.length - 1]!, channels: 0 };
  }

  private async openClient(host: ResolvedSshHost, sock: Duplex | undefined, via: string | undefined): Promise<Client> {
    const auth = await prepareAuth(host, this.agentSocket(host));
    if (auth.methods.length === 0) throw new SshConnectError(host.alias, 'auth', authFailure(host, auth));
    const timeoutMs = host.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const where = `${host.hostname}:${host.port}${via ? ` via ${via}` : ''}`;
    const keyName = host.hostKeyAlias ?? host.hostname;
    const keyPort = host.hostKeyAlias !== undefined ? 22 : host.port;
    const knownFiles = [...host.knownHostsFiles, ...(host.globalKnownHostsFiles ?? [])];

    return new Promise<Client>((resolve, reject) => {
      const client = new Client() as ClientWithCause;
      this.attemptClients.add(client);
      let hostKeyError: HostKeyError | undefined;
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        this.attemptClients.delete(client);
        client.end();
        sock?.destroy();
        reject(error);
      };
      client.on('ready', () => {
        if (settled) return;
        settled = true;
        // Small SFTP and exec requests would otherwise each wait ~40 ms on delayed ACKs.
        client.setNoDelay(true);
        resolve(client);
      });
      client.on('error', (error: Error & { level?: string; code?: string }) => {
        if (settled) {
          client.dropCause = error;
          return;
        }
        if (error.level === 'agent') return; // ssh2 goes on with the next method
        if (error.level === 'client-authentication' && !/All configured authentication methods failed/.test(error.message)) return;
        fail(hostKeyError ?? classify(host, error, where, timeoutMs, auth));
      });
      client.on('close', () => fail(hostKeyError ?? new SshConnectError(host.alias, 'closed', `${host.alias}: connection closed by ${where} before login`)));

      const config: ConnectConfig = {
        username: host.user,
        tryKeyboard: false,
        readyTimeout: timeoutMs,
        keepaliveInterval: host.serverAliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
        keepaliveCountMax: host.serverAliveCountMax ?? DEFAULT_KEEPALIVE_COUNT,
        authHandler: auth.methods,
        algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(knownFiles, keyName, keyPort)) },
        hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
          const check = checkHostKey({ files: knownFiles, host: keyName, port: keyPort, key });
          if (check.status === 'known') return verify(true);
          if (check.status === 'unknown' && (host.strictHostKeyChecking === 'accept-new' || host.strictHostKeyChecking === 'no')) {
            const file = this.acceptNewKey(host, keyName, keyPort, key, check);
            if (file !== undefined) return verify(true);
          }
          hostKeyError = hostKeyRefusal(host, check, keyName, keyPort);
          verify(false);
        },
      };
      if (sock) config.sock = sock;
      else {
        config.host = host.hostname;
        config.port = host.port;
      }
      try {
        client.connect(config);
      } catch (error) {
        fail(new SshConnectError(host.alias, 'protocol', `${host.alias}: ${(error as Error).message}`));
      }
    });
  }

  /** StrictHostKeyChecking accept-new/no: record the key like ssh does; returns the file, or undefined. */
  private acceptNewKey(host: ResolvedSshHost, name: string, port: number, key: Buffer, check: HostKeyCheck): string | undefined {
    const file = host.knownHostsFiles[0];
    if (file === undefined) return undefined;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.appendFileSync(file, knownHostsLine(name, port, key), { mode: 0o600 });
    } catch {
      return undefined;
    }
    this.emit('hostKeyAdded', { alias: host.alias, name, fingerprint: check.fingerprint, keyType: check.keyType, file });
    return file;
  }

  private agentSocket(host: ResolvedSshHost): string | undefined {
    if (this.agentOption === false) return undefined;
    const socket = this.agentOption ?? (host.identityAgent === 'none' ? undefined : (host.identityAgent ?? process.env.SSH_AUTH_SOCK));
    return socket && fs.existsSync(socket) ? socket : undefined;
  }
}

type ClientWithCause = Client & { dropCause?: Error & { level?: string; code?: string } };

function hostKeyAlgorithms(knownTypes: string[]): ServerHostKeyAlgorithm[] {
  // Ask first for a key type known_hosts can vouch for, as ssh does.
  const preferred = knownTypes.flatMap((type) => HOST_KEY_ALGORITHMS[type] ?? []);
  const all = Object.values(HOST_KEY_ALGORITHMS).flat();
  return [...new Set([...preferred, ...all])];
}

function hostKeyRefusal(host: ResolvedSshHost, check: Exclude<HostKeyCheck, { status: 'known' }>, name: string, port: number): HostKeyError {
  const lookup = port === 22 ? name : `[${name}]:${port}`;
  const key = `${check.keyType} key ${check.fingerprint}`;
  const scan = `ssh-keyscan${port === 22 ? '' : ` -p ${port}`} ${name} >> ${host.knownHostsFiles[0] ?? '~/.ssh/known_hosts'}`;
  switch (check.status) {
    case 'unknown': {
      const others = check.otherKeyTypes.length > 0 ? ` (known_hosts has a ${check.otherKeyTypes.join(', ')} key for it, not this type)` : '';
      return new HostKeyError(
        host.alias, 'unknown', check.fingerprint, check.keyType, lookup, undefined,
        `${host.alias}: host key for ${lookup} is not known${others}: ${key}. Refused. ` +
          `If that fingerprint is right, accept it by running \`ssh ${host.alias}\` once, or with \`${scan}\``,
      );
    }
    case 'changed':
      return new HostKeyError(
        host.alias, 'changed', check.fingerprint, check.keyType, lookup, check.knownAt,
        `${host.alias}: HOST KEY CHANGED for ${host.alias} (${lookup})! The server now presents ${key}, ` +
          `which is not the key recorded at ${check.knownAt}. Someone may be intercepting the connection ` +
          `(possible man-in-the-middle attack), or the host was reinstalled. Connection refused; if the change is expected, ` +
          `fix known_hosts line ${check.knownAt} (e.g. \`ssh-keygen -R '${lookup}'\`, then accept the new key)`,
      );
    case 'revoked':
      return new HostKeyError(
        host.alias, 'revoked', check.fingerprint, check.keyType, lookup, check.revokedAt,
        `${host.alias}: the host key of ${lookup} (${key}) is REVOKED at ${check.revokedAt}. Connection refused`,
      );
  }
}

function asJumpError(alias: string, error: Error): Error {
  const message = `${alias}: jump host ${error.message}`;
  if (error instanceof HostKeyError) {
    return new HostKeyError(alias, error.status, error.fingerprint, error.keyType, error.knownHostsName, error.knownAt, message);
  }
  return new SshConnectError(alias, error instanceof SshConnectError ? error.kind : 'network', message);
}

function forwardTo(client: Client, next: ResolvedSshHost, viaAlias: string, targetAlias: string): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    const where = `${next.hostname}:${next.port} via ${viaAlias}`;
    const onResult = (error: Error | undefined, stream: ClientChannel) => {
      if (!error) return resolve(stream);
      const what = /refused/i.test(error.message)
        ? `connection refused (${where})`
        : `cannot reach ${where}: ${error.message.replace(/^\(SSH\) Channel open failure: /, '')}`;
      const prefix = next.alias === targetAlias ? `${targetAlias}: ` : `${targetAlias}: jump host ${next.alias}: `;
      reject(new SshConnectError(targetAlias, 'network', prefix + what));
    };
    try {
      client.forwardOut('127.0.0.1', 0, next.hostname, next.port, onResult);
    } catch (error) {
      reject(new SshConnectError(targetAlias, 'network', `${targetAlias}: ${viaAlias} went away: ${(error as Error).message}`));
    }
  });
}

function classify(host: ResolvedSshHost, error: Error & { level?: string; code?: string }, where: string, timeoutMs: number, auth: AuthPlan): SshConnectError {
  const alias = host.alias;
  if (error.level === 'client-timeout') return new SshConnectError(alias, 'timeout', `${alias}: timed out after ${formatSeconds(timeoutMs)} (${where})`);
  if (error.level === 'client-authentication') return new SshConnectError(alias, 'auth', authFailure(host, auth));
  if (error.level === 'client-socket' || error.level === 'client-dns') {
    switch (error.code) {
      case 'ECONNREFUSED':
        return new SshConnectError(alias, 'network', `${alias}: connection refused (${where})`);
      case 'ETIMEDOUT':
        return new SshConnectError(alias, 'timeout', `${alias}: timed out (${where})`);
      case 'EHOSTUNREACH':
        return new SshConnectError(alias, 'network', `${alias}: no route to host (${where})`);
      case 'ENETUNREACH':
        return new SshConnectError(alias, 'network', `${alias}: network unreachable (${where})`);
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new SshConnectError(alias, 'network', `${alias}: cannot resolve host name ${host.hostname}`);
      case 'ECONNRESET':
        return new SshConnectError(alias, 'network', `${alias}: connection reset by ${where}`);
      default:
        return new SshConnectError(alias, 'network', `${alias}: ${error.message} (${where})`);
    }
  }
  return new SshConnectError(alias, 'protocol', `${alias}: SSH handshake with ${where} failed: ${error.message}`);
}

function dropReason(host: ResolvedSshHost, cause: (Error & { level?: string; code?: string }) | undefined): string {
  const where = `${host.hostname}:${host.port}`;
  if (cause?.level === 'client-timeout') {
    const interval = host.serverAliveIntervalMs ?? DEFAULT_KEEPALIVE_MS;
    const count = host.serverAliveCountMax ?? DEFAULT_KEEPALIVE_COUNT;
    return `${host.alias}: connection lost (${where} did not answer ${count} keepalives, ${formatSeconds(interval)} apart)`;
  }
  if (cause?.code === 'ECONNRESET') return `${host.alias}: connection reset by ${where}`;
  if (cause) return `${host.alias}: connection lost (${cause.message})`;
  return `${host.alias}: connection closed by ${where}`;
}

/** Channel.signal() sends nothing once stdin is ended (it checks `writable`), so go one level down. */
function sendSignal(stream: ClientChannel, name: string): void {
  const channel = stream as unknown as { outgoing?: { id: number; state: string }; _client?: { _protocol?: { signal(id: number, signal: string): void } } };
  try {
    // 'eof': stdin is ended; requests may still follow (RFC 4254 5.3).
    const state = channel.outgoing?.state;
    if (state === 'open' || state === 'eof') channel._client?._protocol?.signal(channel.outgoing!.id, name);
  } catch {
    // the connection is going away; closing the channel is all that is left
  }
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

async function endClients(clients: Client[]): Promise<void> {
  // Target first, then the hops it runs through.
  await Promise.all(
    [...clients].reverse().map(
      (client) =>
        new Promise<void>((resolve) => {
          const sock = (client as unknown as { _sock?: { destroyed?: boolean } })._sock;
          if (!sock || sock.destroyed) return resolve();
          const timer = setTimeout(() => {
            client.destroy();
            resolve();
          }, 2000);
          client.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          client.end();
        }),
    ),
  );
}

// ---- authentication -------------------------------------------------------------------------

interface AuthPlan {
  methods: AnyAuthMethod[];
  /** What will be tried, for the failure message. */
  tried: string[];
  /** Why a configured key could not be used. */
  problems: string[];
}

/** Offers only the given agent keys (IdentitiesOnly), signing through the real agent. */
class ListedKeysAgent extends BaseAgent<ParsedKey> {
  constructor(
    private readonly inner: OpenSSHAgent,
    private readonly keys: ParsedKey[],
  ) {
    super();
  }

  getIdentities(cb: IdentityCallback<ParsedKey>): void {
    cb(null, this.keys);
  }

  sign(pubKey: ParsedKey, data: Buffer, options: SigningRequestOptions, cb?: SignCallback): void;
  sign(pubKey: ParsedKey, data: Buffer, cb: SignCallback): void;
  sign(pubKey: ParsedKey, data: Buffer, optionsOrCb: SigningRequestOptions | SignCallback, cb?: SignCallback): void {
    if (typeof optionsOrCb === 'function') this.inner.sign(pubKey, data, optionsOrCb);
    else this.inner.sign(pubKey, data, optionsOrCb, cb);
  }
}

function agentKeys(agent: OpenSSHAgent): Promise<ParsedKey[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('agent did not answer')), 5000);
    agent.getIdentities((error, keys) => {
      clearTimeout(timer);
      if (error) return reject(error);
      const parsed: ParsedKey[] = [];
      for (const key of keys ?? []) {
        const k = utils.parseKey(key as ParsedKey);
        if (!(k instanceof Error)) parsed.push(Array.isArray(k) ? (k[0] as ParsedKey) : k);
      }
      resolve(parsed);
    });
  });
}

interface LoadedIdentity {
  file: string;
  /** Usable private key, unless encrypted. */
  privateKey?: ParsedKey;
  /** Public blob (from the key, or from file.pub for an encrypted key). */
  publicBlob?: Buffer;
  encrypted: boolean;
}

function loadIdentity(file: string, problems: string[]): LoadedIdentity | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.push(`cannot read ${file}: ${(error as Error).message}`);
    return undefined;
  }
  const parsed = utils.parseKey(data);
  if (!(parsed instanceof Error)) {
    const key = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey;
    if (!key.isPrivateKey()) {
      problems.push(`${file} is not a private key`);
      return undefined;
    }
    return { file, privateKey: key, publicBlob: key.getPublicSSH(), encrypted: false };
  }
  if (/passphrase|encrypted/i.test(parsed.message)) {
    const identity: LoadedIdentity = { file, encrypted: true };
    try {
      const pub = utils.parseKey(fs.readFileSync(`${file}.pub`));
      if (!(pub instanceof Error)) identity.publicBlob = (Array.isArray(pub) ? (pub[0] as ParsedKey) : pub).getPublicSSH();
    } catch {
      // no .pub beside it: the agent cannot be matched to it
    }
    return identity;
  }
  problems.push(`cannot parse ${file}: ${parsed.message}`);
  return undefined;
}

async function prepareAuth(host: ResolvedSshHost, agentSocket: string | undefined): Promise<AuthPlan> {
  const plan: AuthPlan = { methods: [], tried: [], problems: [] };
  const identities = host.identityFiles.map((file) => loadIdentity(file, plan.problems)).filter((id): id is LoadedIdentity => id !== undefined);

  let fromAgent: ParsedKey[] = [];
  if (agentSocket !== undefined) {
    const agent = new OpenSSHAgent(agentSocket);
    try {
      let keys = await agentKeys(agent);
      if (host.identitiesOnly) {
        keys = keys.filter((key) => identities.some((id) => id.publicBlob?.equals(key.getPublicSSH())));
      }
      fromAgent = keys;
      if (keys.length > 0) {
        plan.methods.push({ type: 'agent', username: host.user, agent: new ListedKeysAgent(agent, keys) });
        plan.tried.push(`agent (${keys.map((key) => key.comment || key.type).join(', ')})`);
      }
    } catch (error) {
      plan.problems.push(`ssh-agent at ${agentSocket} did not answer: ${(error as Error).message}`);
    }
  }

  for (const id of identities) {
    const inAgent = id.publicBlob !== undefined && fromAgent.some((key) => key.getPublicSSH().equals(id.publicBlob!));
    if (inAgent) continue;
    if (id.privateKey) {
      plan.methods.push({ type: 'publickey', username: host.user, key: id.privateKey });
      plan.tried.push(id.file);
    } else if (id.encrypted) {
      plan.problems.push(
        `${id.file} is passphrase-protected and ${agentSocket ? 'not loaded in the agent' : 'no ssh-agent is running'}: ` +
          `load it with \`ssh-add ${id.file}\` (Drover never asks for passphrases)`,
      );
    }
  }
  return plan;
}

function authFailure(host: ResolvedSshHost, plan: AuthPlan): string {
  const tried = plan.tried.length > 0 ? `tried keys: ${plan.tried.join(', ')}` : 'no usable key: no agent keys and no readable IdentityFile';
  const problems = plan.problems.length > 0 ? `; ${plan.problems.join('; ')}` : '';
  const looked = plan.tried.length === 0 ? ` (looked for ${host.identityFiles.join(', ') || 'no files'})` : '';
  return `${host.alias}: authentication failed for ${host.user} (${tried})${looked}${problems}`;
}
