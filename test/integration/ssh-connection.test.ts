// The runner's SSH connection layer against real sshd hosts (test/support/ssh-testbed.ts):
// host keys, ProxyJump, auth, faults on the link and on sshd, and quoting of remote commands.
// Needs root; skipped with the reason elsewhere.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostKeyError, remoteCommand, SshConnectError, SshConnection, SshExecTimeout, SshUnavailable, type SshConnectionOptions } from '../../runner/src/hosts/ssh/connection';
import { fingerprint } from '../../runner/src/hosts/ssh/known-hosts';
import { resolveSshHost } from '../../runner/src/hosts/ssh/ssh-config';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

function fingerprintOf(publicKeyLine: string): string {
  return fingerprint(Buffer.from(publicKeyLine.split(/\s+/)[1]!, 'base64'));
}

/** Resolves with the first 'down' reason that passes `test`, or rejects after timeoutMs. */
function nextDown(connection: SshConnection, timeoutMs: number, test: (reason: string) => boolean = () => true): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      connection.off('down', onDown);
      reject(new Error(`no matching 'down' within ${timeoutMs} ms (state ${connection.state}, reason: ${connection.reason})`));
    }, timeoutMs);
    const onDown = (reason: string) => {
      if (!test(reason)) return;
      clearTimeout(timer);
      connection.off('down', onDown);
      resolve(reason);
    };
    connection.on('down', onDown);
  });
}

describe('SSH connection (real sshd)', function () {
  this.timeout(60_000);
  let testbed: SshTestbed | undefined;
  let dir: string;
  const opened: SshConnection[] = [];

  before(async function () {
    skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
    // start() waits up to 5 minutes for another process's testbed to finish (a machine-wide lock).
    this.timeout(400_000);
    testbed = await SshTestbed.start();
    dir = mkdtempSync(join(tmpdir(), 'drover-ssh-connection-'));
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
  });

  after(async () => {
    await testbed?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tb = (): SshTestbed => {
    assert.ok(testbed, 'testbed not started');
    return testbed;
  };

  /** A connection to `alias` through `configPath` (the testbed's by default); no agent unless given. */
  function connection(alias: string, configPath = tb().sshConfigPath, options: SshConnectionOptions = {}): SshConnection {
    const c = new SshConnection(resolveSshHost(alias, { configPath }), { agent: false, ...options });
    opened.push(c);
    return c;
  }

  let configs = 0;
  /** A config whose first lines override the testbed's (first obtained value wins), the testbed's Included after. */
  function overridingConfig(...lines: string[]): string {
    const file = join(dir, `config${++configs}`);
    writeFileSync(file, ['Host *', ...lines.map((l) => `  ${l}`), `Include ${tb().sshConfigPath}`, ''].join('\n'));
    return file;
  }

  /** A config for h1 alone, without the testbed's key. */
  function h1Config(...lines: string[]): string {
    const file = join(dir, `config${++configs}`);
    writeFileSync(
      file,
      [
        'Host h1',
        `  HostName ${tb().address('h1')}`,
        `  User ${tb().user('h1')}`,
        `  UserKnownHostsFile ${tb().knownHostsPath}`,
        '  GlobalKnownHostsFile /dev/null',
        '  ConnectTimeout 3',
        ...lines.map((l) => `  ${l}`),
        '',
      ].join('\n'),
    );
    return file;
  }

  it('connects to h1 and h2 and runs commands as their own users', async () => {
    for (const name of ['h1', 'h2']) {
      const c = connection(name);
      await c.connect();
      assert.equal(c.state, 'up');
      const result = await c.exec('hostname; id -un');
      assert.deepEqual([result.code, result.signal, result.stdout.toString(), result.stderr.toString()], [0, null, `${name}\n${tb().user(name)}\n`, '']);
    }
  });

  it('accepts h2 through its hashed known_hosts entry', async () => {
    const known = readFileSync(tb().knownHostsPath, 'utf8');
    assert.ok(!known.includes(tb().address('h2')) && known.includes('|1|'), 'h2 is recorded hashed only');
    const c = connection('h2');
    await c.connect();
    assert.equal((await c.exec('hostname')).stdout.toString(), 'h2\n');
  });

  it('passes stdin, and reports exit codes, signals and stderr', async () => {
    const c = connection('h1');
    await c.connect();
    const cat = await c.exec('cat; echo done >&2', { stdin: 'hello\nworld\0binary' });
    assert.equal(cat.stdout.toString(), 'hello\nworld\0binary');
    assert.equal(cat.stderr.toString(), 'done\n');
    assert.equal((await c.exec('exit 3')).code, 3);
    const killed = await c.exec('kill -TERM $$');
    assert.deepEqual([killed.code, killed.signal], [null, 'SIGTERM']);
    // No stdin given: the command sees end of input at once rather than hanging.
    assert.equal((await c.exec('wc -c')).stdout.toString().trim(), '0');
  });

  it('reaches h3 through ProxyJump h1', async () => {
    const c = connection('h3');
    assert.deepEqual(c.host.proxyJump.map((h) => h.alias), ['h1']);
    await c.connect();
    const result = await c.exec('hostname; id -un');
    assert.equal(result.stdout.toString(), `h3\n${tb().user('h3')}\n`);
  });

  it('refuses an unknown host key with its fingerprint and how to accept it', async () => {
    const config = overridingConfig(`UserKnownHostsFile ${tb().knownHostsWithout('h1')}`);
    const c = connection('h1', config);
    const error = await c.connect().then(
      () => assert.fail('connected to a host with an unknown key'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof HostKeyError, String(error));
    assert.equal(error.status, 'unknown');
    assert.equal(error.fingerprint, fingerprintOf(tb().hostPublicKey('h1')));
    assert.match(error.message, /^h1: host key for 10\.200\.1\.2 is not known/);
    assert.ok(error.message.includes(error.fingerprint));
    assert.match(error.message, /`ssh h1`.*ssh-keyscan/);
    assert.equal(c.state, 'down');
    assert.equal(c.reason, error.message);

    // The jump host is checked under its own name: h3 through an unknown h1 is refused too.
    const viaJump = connection('h3', config);
    const jumpError = await viaJump.connect().catch((e: unknown) => e);
    assert.ok(jumpError instanceof HostKeyError && jumpError.status === 'unknown', String(jumpError));
    assert.match(jumpError.message, /^h3: jump host h1: host key/);
  });

  it('with StrictHostKeyChecking accept-new, records an unknown key (and says so), then knows it', async () => {
    const known = join(dir, 'known_hosts.accept-new');
    copyFileSync(tb().knownHostsWithout('h1'), known);
    const config = overridingConfig('StrictHostKeyChecking accept-new', `UserKnownHostsFile ${known}`);
    const c = connection('h1', config);
    const added: { fingerprint: string; file: string }[] = [];
    c.on('hostKeyAdded', (info) => added.push(info));
    await c.connect();
    assert.deepEqual(added.map((a) => [a.fingerprint, a.file]), [[fingerprintOf(tb().hostPublicKey('h1')), known]]);
    assert.ok(readFileSync(known, 'utf8').includes(`${tb().address('h1')} ${tb().hostPublicKey('h1')}`));
    const again = connection('h1', config);
    again.on('hostKeyAdded', () => assert.fail('added twice'));
    await again.connect();
  });

  it('authenticates only with keys: a wrong key fails naming the user and the keys tried', async () => {
    const wrong = join(dir, 'wrong_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    const c = connection('h1', h1Config(`IdentityFile ${wrong}`, 'IdentitiesOnly yes'));
    const error = await c.connect().catch((e: unknown) => e);
    assert.ok(error instanceof SshConnectError && error.kind === 'auth', String(error));
    assert.equal(error.message, `h1: authentication failed for ${tb().user('h1')} (tried keys: ${wrong})`);
  });

  it('names a passphrase-protected key it cannot use, and uses it through the agent', async () => {
    const encrypted = join(dir, 'encrypted_key');
    copyFileSync(tb().identityFile, encrypted);
    copyFileSync(`${tb().identityFile}.pub`, `${encrypted}.pub`);
    execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'secret words', '-f', encrypted]);
    const config = h1Config(`IdentityFile ${encrypted}`, 'IdentitiesOnly yes');

    const noAgent = connection('h1', config);
    const error = await noAgent.connect().catch((e: unknown) => e);
    assert.ok(error instanceof SshConnectError && error.kind === 'auth', String(error));
    assert.ok(error.message.includes(`${encrypted} is passphrase-protected`), error.message);
    assert.ok(error.message.includes(`ssh-add ${encrypted}`), error.message);

    const socket = join(dir, 'agent.sock');
    const agentOut = execFileSync('ssh-agent', ['-a', socket], { encoding: 'utf8' });
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agentOut)?.[1]);
    try {
      const other = join(dir, 'other_key');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'other', '-f', other]);
      const add = (key: string) => spawnSync('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      // IdentitiesOnly: an agent holding only an unrelated key offers nothing.
      assert.equal(add(other).status, 0);
      const unrelated = connection('h1', config, { agent: socket });
      const unrelatedError = await unrelated.connect().catch((e: unknown) => e);
      assert.ok(unrelatedError instanceof SshConnectError && unrelatedError.kind === 'auth', String(unrelatedError));
      assert.ok(!unrelatedError.message.includes('other'), unrelatedError.message);
      // The agent holding the decrypted key (matched through encrypted_key.pub) logs in.
      assert.equal(add(tb().identityFile).status, 0);
      const viaAgent = connection('h1', config, { agent: socket });
      await viaAgent.connect();
      assert.equal((await viaAgent.exec('hostname')).stdout.toString(), 'h1\n');
    } finally {
      if (agentPid > 0) process.kill(agentPid);
    }
  });

  it('refuses a changed host key loudly, also when reconnecting, without retrying in a tight loop', async () => {
    const c = connection('h1', undefined, { reconnect: { initialMs: 100, maxMs: 2000 } });
    await c.connect();
    const oldKnownHosts = readFileSync(tb().knownHostsPath, 'utf8');
    try {
      await tb().rotateHostKey('h1');
      // The live session survives sshd's restart; end it so the connection has to come back.
      const refused = nextDown(c, 15_000, (reason) => /HOST KEY CHANGED/.test(reason));
      await tb().stopSshd('h1', { killSessions: true });
      await tb().startSshd('h1');
      const reason = await refused;
      assert.match(reason, /^h1: HOST KEY CHANGED for h1 \(10\.200\.1\.2\)!/);
      assert.match(reason, /man-in-the-middle/);
      assert.ok(reason.includes(`fix known_hosts line ${tb().knownHostsPath}:1`), reason);
      assert.ok(reason.includes(fingerprintOf(tb().hostPublicKey('h1'))), reason);
      const error = c.lastError;
      assert.ok(error instanceof HostKeyError && error.status === 'changed' && error.knownAt === `${tb().knownHostsPath}:1`);
      await assert.rejects(c.exec('true'), (e: Error) => e instanceof SshUnavailable && e.reason === reason);

      // Refusals come at the backoff cap (2 s here), not every few milliseconds.
      let downs = 0;
      c.on('down', () => downs++);
      await new Promise((done) => setTimeout(done, 3000));
      assert.ok(downs <= 2, `${downs} refusals in 3 s`);

      const fresh = connection('h1');
      const freshError = await fresh.connect().catch((e: unknown) => e);
      assert.ok(freshError instanceof HostKeyError && freshError.status === 'changed', String(freshError));
    } finally {
      // The testbed's known_hosts learns h1's new key, for the tests that follow.
      writeFileSync(tb().knownHostsPath, oldKnownHosts.replace(/^.*\n/, `${tb().knownHostsLine('h1')}\n`));
    }
  });

  it('goes down with a reason when the link is cut, and comes back up by itself', async () => {
    const c = connection('h1');
    await c.connect();
    const before = await c.sftp();
    assert.equal(await c.sftp(), before, 'one cached SFTP session');
    // Settled as soon as it fails, so the rejection is never unhandled while the test waits.
    const inFlight = c.exec('sleep 30').then(() => undefined, (e: unknown) => e);
    const started = Date.now();
    const down = nextDown(c, 10_000);
    tb().cutLink('h1');
    try {
      const reason = await down;
      const elapsed = Date.now() - started;
      assert.match(reason, /^h1: connection lost/);
      assert.ok(elapsed < 8000, `noticed after ${elapsed} ms`);
      assert.equal(c.state === 'up', false);
      const outcome = await inFlight;
      assert.ok(outcome instanceof SshUnavailable && /^h1: /.test(outcome.reason), String(outcome));
      await assert.rejects(c.exec('true'), SshUnavailable);
      await assert.rejects(c.sftp(), SshUnavailable);
    } finally {
      tb().restoreLink('h1');
    }
    await c.whenUp(20_000);
    assert.equal((await c.exec('hostname')).stdout.toString(), 'h1\n');
    const after = await c.sftp();
    assert.notEqual(after, before, 'a new SFTP session after the reconnect');
    const listed = await new Promise<string[]>((resolve, reject) => after.readdir('.', (e, list) => (e ? reject(e) : resolve(list.map((f) => f.filename)))));
    assert.ok(listed.includes('.ssh'), listed.join(','));
  });

  it('says "connection refused" when sshd is stopped, and reconnects once it is back', async () => {
    const fresh = connection('h2');
    const live = connection('h2', undefined, { reconnect: { initialMs: 100, maxMs: 1000 } });
    await live.connect();
    try {
      await tb().stopSshd('h2', { killSessions: true });
      const error = await fresh.connect().catch((e: unknown) => e);
      assert.ok(error instanceof SshConnectError, String(error));
      assert.equal(error.message, 'h2: connection refused (10.200.2.2:22)');
      assert.equal(fresh.reason, 'h2: connection refused (10.200.2.2:22)');
      await nextDown(live, 10_000, (reason) => reason === 'h2: connection refused (10.200.2.2:22)');
    } finally {
      await tb().startSshd('h2');
    }
    await live.whenUp(10_000);
    assert.equal((await live.exec('hostname')).stdout.toString(), 'h2\n');
  });

  it('quotes hostile arguments with remoteCommand so they come back verbatim and run nothing', async () => {
    const marker = `/tmp/drover-pwned-${process.pid}`;
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `; touch ${marker}; rm -rf /tmp/nothing`,
      `it's "quoted" \\ back`,
      'two\nlines',
      '  spaces  around  ',
      '',
      '*',
      '$HOME ${PATH}',
      `| touch ${marker} &`,
      '-n',
    ];
    const c = connection('h1');
    await c.connect();
    const result = await c.exec(remoteCommand(['printf', '%s\n', ...hostile]));
    assert.equal(result.code, 0, result.stderr.toString());
    assert.equal(result.stdout.toString(), hostile.map((arg) => `${arg}\n`).join(''));
    assert.equal(existsSync(marker), false);
    assert.equal((await tb().exec('h1', `test -e ${marker}`)).code, 1);
  });

  it('runs 20 concurrent execs on one connection, at most 8 channels at a time', async () => {
    const c = connection('h1');
    await c.connect();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => c.exec(`sleep 0.3; echo ${i}`)));
    const elapsed = Date.now() - started;
    assert.deepEqual(results.map((r) => [r.code, r.stdout.toString()]), results.map((_, i) => [0, `${i}\n`]));
    // 20 over 8 channels is 3 rounds of 0.3 s.
    assert.ok(elapsed >= 850, `took only ${elapsed} ms`);
  });

  it('times out a command and stays usable; close() ends it all', async () => {
    const c = connection('h1');
    await c.connect();
    const started = Date.now();
    await assert.rejects(c.exec('sleep 21', { timeoutMs: 300 }), SshExecTimeout);
    assert.ok(Date.now() - started < 2000, `timed out after ${Date.now() - started} ms`);
    // The command was killed on the host (a signal request), not just abandoned.
    const user = tb().user('h1');
    let alive = true;
    for (let i = 0; i < 40 && alive; i++) {
      alive = (await tb().exec('h1', `pgrep -u ${user} -fx 'sleep 21'`)).code === 0;
      if (alive) await new Promise((done) => setTimeout(done, 50));
    }
    assert.equal(alive, false, 'sleep 21 still runs on h1');
    assert.equal((await c.exec('echo still')).stdout.toString(), 'still\n');
    await c.close();
    assert.equal(c.state, 'down');
    await assert.rejects(c.exec('true'), SshUnavailable);
    await assert.rejects(c.connect(), SshUnavailable);
  });
});
