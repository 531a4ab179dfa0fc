// The SSH testbed itself, checked with the real OpenSSH client: separate hosts with their own
// hostnames, users and GPUs, ProxyJump to a host only h1 can reach, known_hosts (one entry
// hashed), and the faults tests rely on. Needs root; skipped with the reason elsewhere.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SshTestbed } from '../support/ssh-testbed';

function zombiesOf(user: string): string {
  return spawnSync('pgrep', ['-u', user, '-r', 'Z'], { encoding: 'utf8' }).stdout;
}

const GPU_QUERY = 'nvidia-smi --query-gpu=index,name,memory.used --format=csv,noheader';

describe('SSH testbed', function () {
  // Generous: start() waits while another mocha run on this machine has the testbed.
  this.timeout(120_000);
  let testbed: SshTestbed | undefined;

  before(async function () {
    const reason = SshTestbed.unavailable();
    if (reason) {
      console.log(`    SSH testbed unavailable: ${reason}`);
      this.skip();
    }
    testbed = await SshTestbed.start();
    const { startMs, lockWaitMs } = testbed.timings;
    console.log(`    testbed with h1, h2, h3 started in ${startMs} ms${lockWaitMs > 100 ? ` (after waiting ${lockWaitMs} ms for another run's testbed)` : ''}`);
  });

  after(async () => {
    if (!testbed) return;
    const started = Date.now();
    await testbed.dispose();
    console.log(`    testbed disposed in ${Date.now() - started} ms`);
  });

  const tb = (): SshTestbed => {
    assert.ok(testbed, 'testbed not started');
    return testbed;
  };

  it('gives each host its own hostname, user and home, over ssh', async () => {
    for (const name of ['h1', 'h2']) {
      const result = await tb().ssh(name, 'hostname; id -un; echo "$HOME"; pwd');
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), [name, tb().user(name), tb().home(name), tb().home(name)]);
    }
    assert.notEqual(tb().user('h1'), tb().user('h2'));
    for (const name of ['h1', 'h2', 'h3']) {
      const home = statSync(tb().home(name));
      assert.equal(home.mode & 0o777, 0o700, `${name}'s home is private`);
    }
  });

  it('reaches h3 only through h1 (ProxyJump)', async () => {
    const viaJump = await tb().ssh('h3', 'hostname; id -un');
    assert.equal(viaJump.code, 0, viaJump.stderr);
    assert.deepEqual(viaJump.stdout.trim().split('\n'), ['h3', tb().user('h3')]);

    // Without the jump the address is unreachable from here, at once.
    const started = Date.now();
    const direct = await tb().ssh('h3', 'true', { sshOptions: ['-o', 'ProxyJump=none', '-o', 'ConnectTimeout=2'] });
    assert.notEqual(direct.code, 0);
    assert.match(direct.stderr, /unreachable|No route/i);
    assert.ok(Date.now() - started < 2000, `direct connect failed in ${Date.now() - started} ms`);
  });

  it('writes the client config, key and known_hosts (h2 hashed) that OpenSSH accepts', () => {
    const config = readFileSync(tb().sshConfigPath, 'utf8');
    assert.match(config, /^Host h3\n(?: {2}.*\n)*? {2}ProxyJump h1$/m);
    assert.ok(existsSync(tb().identityFile) && existsSync(`${tb().identityFile}.pub`));
    const lines = readFileSync(tb().knownHostsPath, 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(lines.includes(`${tb().address('h1')} ${tb().hostPublicKey('h1')}`));
    assert.ok(lines.includes(`${tb().address('h3')} ${tb().hostPublicKey('h3')}`));
    const hashed = lines.find((line) => line.startsWith('|1|'));
    assert.ok(hashed?.endsWith(` ${tb().hostPublicKey('h2')}`), 'h2 is hashed');
    assert.ok(!readFileSync(tb().knownHostsPath, 'utf8').includes(tb().address('h2')));
    // ssh-keygen finds the hashed entry by h2's address, as ssh does.
    const found = spawnSync('ssh-keygen', ['-F', tb().address('h2'), '-f', tb().knownHostsPath], { encoding: 'utf8' });
    assert.equal(found.status, 0);
    assert.ok(found.stdout.includes(tb().hostPublicKey('h2')));
  });

  it('refuses a host missing from known_hosts, without prompting', async () => {
    const without = tb().knownHostsWithout('h2');
    assert.equal(readFileSync(without, 'utf8').trim().split('\n').length, 2);
    const result = await tb().ssh('h2', 'true', { sshOptions: ['-o', `UserKnownHostsFile=${without}`] });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Host key verification failed|No ED25519 host key is known/);
  });

  it("serves each host's own GPUs through nvidia-smi, and follows setGpus", async () => {
    const h2 = await tb().ssh('h2', GPU_QUERY);
    assert.equal(h2.code, 0, h2.stderr);
    assert.equal(h2.stdout, '0, NVIDIA A100-SXM4-40GB, 17412 MiB\n1, NVIDIA A100-SXM4-40GB, 0 MiB\n');
    const apps = await tb().ssh('h2', 'nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader');
    assert.equal(apps.stdout, '4242, 17408 MiB\n');
    const h1 = await tb().ssh('h1', GPU_QUERY);
    assert.equal(h1.stdout, '0, NVIDIA A100-SXM4-40GB, 0 MiB\n1, NVIDIA A100-SXM4-40GB, 0 MiB\n');
    // Login shells too, though /etc/profile resets PATH.
    const login = await tb().ssh('h2', `bash -lc '${GPU_QUERY}'`);
    assert.equal(login.stdout, h2.stdout, login.stderr);
    const h3 = await tb().ssh('h3', GPU_QUERY);
    assert.equal(h3.stdout, '0, NVIDIA GeForce RTX 4090, 0 MiB\n1, NVIDIA GeForce RTX 4090, 0 MiB\n');

    tb().setGpus('h1', { gpus: [{ name: 'NVIDIA H100 80GB HBM3', memoryTotalMiB: 81559, memoryUsedMiB: 5, utilization: 1 }] });
    const changed = await tb().exec('h1', GPU_QUERY);
    assert.equal(changed.stdout, '0, NVIDIA H100 80GB HBM3, 5 MiB\n');
  });

  it('moves files over SFTP into the user\'s home on that host only', async () => {
    const sftp = spawnSync('sftp', ['-F', tb().sshConfigPath, '-o', 'BatchMode=yes', '-b', '-', 'h1'], {
      input: 'mkdir .drover\nput /etc/hostname .drover/copied\n',
      encoding: 'utf8',
    });
    assert.equal(sftp.status, 0, sftp.stderr);
    const listed = await tb().exec('h1', 'ls ~/.drover; stat -c %U ~/.drover/copied');
    assert.equal(listed.stdout, `copied\n${tb().user('h1')}\n`);
    const other = await tb().exec('h2', 'ls -A ~');
    assert.equal(other.stdout, '.profile\n.ssh\n');
  });

  it('exec runs as the host user inside its namespaces', async () => {
    const result = await tb().exec('h3', 'hostname; id -un; pwd; ip -o -4 addr show dev eth0 | grep -o "inet [0-9.]*"');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `h3\n${tb().user('h3')}\n${tb().home('h3')}\ninet ${tb().address('h3')}\n`);
  });

  it('a cut link fails new connections fast and works again once restored', async () => {
    tb().cutLink('h1');
    try {
      const started = Date.now();
      const cut = await tb().ssh('h1', 'true', { sshOptions: ['-o', 'ConnectTimeout=2'] });
      const elapsed = Date.now() - started;
      assert.notEqual(cut.code, 0);
      assert.ok(elapsed < 2000, `failed after ${elapsed} ms`);
      // h3 hangs behind h1, so it is cut off too; h2 is not.
      assert.notEqual((await tb().ssh('h3', 'true')).code, 0);
      assert.equal((await tb().ssh('h2', 'true')).code, 0);
    } finally {
      tb().restoreLink('h1');
    }
    const back = await tb().ssh('h1', 'hostname');
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout, 'h1\n');
  });

  it('cuts h3 inside h1, leaving h1 reachable', async () => {
    tb().cutLink('h3');
    try {
      assert.notEqual((await tb().ssh('h3', 'true')).code, 0);
      assert.equal((await tb().ssh('h1', 'true')).code, 0);
    } finally {
      tb().restoreLink('h3');
    }
    assert.equal((await tb().ssh('h3', 'hostname')).stdout, 'h3\n');
  });

  it('a detached process survives the link being cut and restored', async () => {
    const user = tb().user('h1');
    const started = await tb().ssh('h1', 'setsid nohup sleep 30 >/dev/null 2>&1 &');
    assert.equal(started.code, 0, started.stderr);
    const before = await tb().exec('h1', `pgrep -u ${user} -fx 'sleep 30'`);
    assert.equal(before.code, 0, 'sleep is running');

    // A live session on the link dies after ServerAliveInterval x CountMax.
    const session = tb().ssh('h1', 'sleep 20');
    await new Promise((done) => setTimeout(done, 500));
    tb().cutLink('h1');
    const ended = await session;
    assert.notEqual(ended.code, 0);
    const during = await tb().exec('h1', `pgrep -u ${user} -fx 'sleep 30'`);
    tb().restoreLink('h1');

    assert.equal(during.stdout.trim(), before.stdout.trim(), 'the detached sleep outlived the cut');
    const after = await tb().exec('h1', `pgrep -u ${user} -fx 'sleep 30'`);
    assert.equal(after.stdout.trim(), before.stdout.trim());
    assert.equal((await tb().ssh('h1', `pkill -u ${user} -fx 'sleep 30'; true`)).code, 0);
  });

  it('a stopped sshd refuses connections; started again it serves', async () => {
    await tb().stopSshd('h2');
    const refused = await tb().ssh('h2', 'true');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Connection refused/);
    await tb().startSshd('h2');
    assert.equal((await tb().ssh('h2', 'hostname')).stdout, 'h2\n');
  });

  it('a rotated host key is refused as changed with the old known_hosts', async () => {
    const oldKey = tb().hostPublicKey('h1');
    const newKey = await tb().rotateHostKey('h1');
    assert.notEqual(newKey, oldKey);
    const result = await tb().ssh('h1', 'true');
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    // h3's jump goes through h1 too, so it fails the same way.
    assert.notEqual((await tb().ssh('h3', 'true')).code, 0);
  });
});

describe('SSH testbed dispose', function () {
  this.timeout(120_000);

  before(function () {
    const reason = SshTestbed.unavailable();
    if (reason) {
      console.log(`    SSH testbed unavailable: ${reason}`);
      this.skip();
    }
  });

  it('dispose removes hosts, users\' processes and files, and can be called twice', async () => {
    const own = await SshTestbed.start({ hosts: [{ name: 'tba' }] });
    const { dir } = own;
    const user = own.user('tba');
    const zombiesBefore = zombiesOf(user);
    try {
      // One detached, two left behind by a shell that exits: all end up under the host's reaper.
      const started = await own.ssh('tba', 'setsid nohup sleep 60 >/dev/null 2>&1 & sleep 60 >/dev/null 2>&1 & sleep 60 >/dev/null 2>&1 &');
      assert.equal(started.code, 0, started.stderr);
      // A backgrounded child may not have exec'd sleep yet when the shell, and ssh, return.
      const sleeps = async () => (await own.exec('tba', `pgrep -u ${user} -x sleep`)).stdout.trim().split('\n').filter(Boolean).length;
      for (let tries = 0; (await sleeps()) < 3 && tries < 100; tries++) await new Promise((done) => setTimeout(done, 50));
      assert.equal(await sleeps(), 3);
    } finally {
      await own.dispose();
    }
    await own.dispose();
    assert.ok(!existsSync(dir));
    assert.equal(spawnSync('pgrep', ['-u', user, '-r', 'R,S,D,T']).status, 1, `no process of ${user} is left`);
    assert.deepEqual(zombiesOf(user), zombiesBefore, 'and no zombie either: the host reaped them');
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes('drover-tba'));
    assert.notEqual(spawnSync('ip', ['link', 'show', 'veth-tba']).status, 0);
  });

  it('start() clears what a crashed run left under the same names', async () => {
    // A run that dies without dispose, and without exit hooks: SIGKILLed while its testbed is up.
    const script = [
      `const { SshTestbed } = require(${JSON.stringify(join(__dirname, '../support/ssh-testbed.js'))});`,
      "SshTestbed.start({ hosts: [{ name: 'tba' }] }).then(async (tb) => {",
      "  await tb.ssh('tba', 'setsid nohup sleep 60 >/dev/null 2>&1 &');",
      '  console.log(tb.dir);',
      '  setInterval(() => {}, 1000);',
      '});',
    ].join('\n');
    const crashing = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((done) => crashing.once('exit', done));
    let staleDir: string;
    try {
      staleDir = await new Promise<string>((resolveLine, reject) => {
        crashing.stdout.once('data', (chunk: Buffer) => resolveLine(chunk.toString().trim()));
        crashing.once('exit', (code) => reject(new Error(`the crashing run exited ${code} before it was up`)));
      });
      // Checked while it still holds the machine lock, so no other testbed can have cleaned up.
      assert.ok(existsSync(staleDir));
      assert.equal(spawnSync('pgrep', ['-u', 'drtest1', '-x', 'sleep']).status, 0, 'the crashing run has its sleep');
    } finally {
      // Killed whatever happened above: left alive, it would hold the machine lock for ever.
      crashing.kill('SIGKILL');
      await exited;
    }

    const testbed = await SshTestbed.start({ hosts: [{ name: 'tba' }] });
    try {
      assert.ok(!existsSync(staleDir), 'the stale folder is gone');
      assert.equal((await testbed.exec('tba', 'pgrep -u drtest1 -x sleep')).code, 1, 'its processes too');
      assert.equal((await testbed.ssh('tba', 'hostname')).stdout, 'tba\n');
    } finally {
      await testbed.dispose();
    }
  });
});
