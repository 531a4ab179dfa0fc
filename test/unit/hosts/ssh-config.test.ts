import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { glob, listSshAliases, matchPattern, resolveSshHost, SshConfigError } from '../../../runner/src/hosts/ssh/ssh-config';
import { lines } from '../../support/marked';

describe('ssh config resolution', () => {
  let home: string;
  let config: string;
  const localUser = os.userInfo().username;

  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'drover-ssh-config-'));
    mkdirSync(path.join(home, '.ssh'));
    config = path.join(home, '.ssh', 'config');
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  };
  const resolve = (alias: string) => resolveSshHost(alias, { configPath: config, homeDir: home });
  const ssh = (...parts: string[]) => path.join(home, '.ssh', ...parts);

  it('gives ssh defaults for a host the config does not mention, or with no config at all', () => {
    const expected = {
      alias: 'box.example',
      hostname: 'box.example',
      port: 22,
      user: localUser,
      identityFiles: [ssh('id_ed25519'), ssh('id_ecdsa'), ssh('id_rsa')],
      identitiesOnly: false,
      proxyJump: [],
      knownHostsFiles: [ssh('known_hosts'), ssh('known_hosts2')],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    };
    assert.deepEqual(resolve('box.example'), expected);
    write(config, lines('Host other', '  Port 2222'));
    assert.deepEqual(resolve('box.example'), expected);
  });

  it('reads an alias: HostName, User, Port, IdentityFile, IdentitiesOnly, timeouts, keepalives, host key checking', () => {
    write(config, lines(
      '# lab boxes',
      'Host gpu1',
      '  HostName 10.0.0.5',
      '  User alice',
      '  Port 2222',
      '  IdentityFile ~/.ssh/lab_key',
      '  IdentitiesOnly yes',
      '  ConnectTimeout 3',
      '  ServerAliveInterval 1',
      '  ServerAliveCountMax 5',
      '  StrictHostKeyChecking accept-new',
      '  HostKeyAlias gpu1-key',
    ));
    const host = resolve('gpu1');
    assert.equal(host.hostname, '10.0.0.5');
    assert.equal(host.user, 'alice');
    assert.equal(host.port, 2222);
    assert.deepEqual(host.identityFiles, [ssh('lab_key')]);
    assert.equal(host.identitiesOnly, true);
    assert.equal(host.connectTimeoutMs, 3000);
    assert.equal(host.serverAliveIntervalMs, 1000);
    assert.equal(host.serverAliveCountMax, 5);
    assert.equal(host.strictHostKeyChecking, 'accept-new');
    assert.equal(host.hostKeyAlias, 'gpu1-key');
  });

  it('takes the first obtained value: specific Host blocks before Host *', () => {
    write(config, lines(
      'Host gpu1',
      '  User alice',
      'Host *',
      '  User nobody',
      '  Port 2200',
      'Host gpu1',
      '  Port 9999',
    ));
    assert.deepEqual([resolve('gpu1').user, resolve('gpu1').port], ['alice', 2200]);
    assert.deepEqual([resolve('other').user, resolve('other').port], ['nobody', 2200]);
  });

  it('matches wildcards (* and ?, ? being exactly one character), pattern lists and negations', () => {
    write(config, lines(
      'Host *.lab !secret.lab',
      '  User labuser',
      'Host node?',
      '  Port 2201',
      'Host a b',
      '  Port 2202',
    ));
    assert.equal(resolve('gpu7.lab').user, 'labuser');
    assert.equal(resolve('secret.lab').user, localUser);
    assert.equal(resolve('node1').port, 2201);
    assert.equal(resolve('node').port, 22);
    assert.equal(resolve('node12').port, 22);
    assert.deepEqual(['a', 'b', 'c'].map((h) => resolve(h).port), [2202, 2202, 22]);
    assert.equal(matchPattern('a.b', 'axb', false), false, 'dots are literal');
  });

  it('expands %h in HostName and %-tokens and ~ in IdentityFile (several, accumulated)', () => {
    write(config, lines(
      'Host *.short',
      '  HostName %h.example.com',
      '  User bob',
      '  IdentityFile ~/.ssh/%h_%r',
      'Host *',
      '  IdentityFile %d/keys/%u-%%',
      '  IdentityFile "/opt/keys/with space"',
    ));
    const host = resolve('box.short');
    assert.equal(host.hostname, 'box.short.example.com');
    assert.deepEqual(host.identityFiles, [ssh('box.short.example.com_bob'), path.join(home, 'keys', `${localUser}-%`), '/opt/keys/with space']);
  });

  it('reads keywords case-insensitively, with = separators, quotes and trailing comments', () => {
    write(config, lines('HOST gpu1', '  hostname=10.0.0.7', '  USER = "carol"', '  port 2022 # the lab port'));
    const host = resolve('gpu1');
    assert.deepEqual([host.hostname, host.user, host.port], ['10.0.0.7', 'carol', 2022]);
  });

  it('reads UserKnownHostsFile lists and none', () => {
    write(config, lines(
      'Host a',
      '  UserKnownHostsFile ~/.ssh/kh1 /etc/kh2',
      '  GlobalKnownHostsFile /dev/null',
      'Host b',
      '  UserKnownHostsFile none',
    ));
    assert.deepEqual(resolve('a').knownHostsFiles, [ssh('kh1'), '/etc/kh2']);
    assert.deepEqual(resolve('a').globalKnownHostsFiles, ['/dev/null']);
    assert.deepEqual(resolve('b').knownHostsFiles, []);
  });

  it('follows Include, relative to ~/.ssh, with globs in sorted order, skipping missing files', () => {
    write(config, lines('Include conf.d/*.conf missing.conf', 'Host *', '  User fallback'));
    write(ssh('conf.d', '20-b.conf'), lines('Host gpu1', '  Port 2020', '  User from-b'));
    write(ssh('conf.d', '10-a.conf'), lines('Host gpu1', '  HostName 10.0.0.1', '  Port 1010'));
    write(ssh('conf.d', '.hidden.conf'), lines('Host gpu1', '  User hidden'));
    write(ssh('conf.d', 'notes.txt'), lines('Host gpu1', '  User notes'));
    const host = resolve('gpu1');
    assert.deepEqual([host.hostname, host.port, host.user], ['10.0.0.1', 1010, 'from-b']);
    assert.equal(resolve('other').user, 'fallback');
  });

  it('follows an absolute or ~ Include, and one inside a Host block only for that host', () => {
    const abs = path.join(home, 'elsewhere.conf');
    write(abs, lines('Host abs', '  Port 3000'));
    write(ssh('inner.conf'), lines('User inner-user', 'Host *', '  Port 4000'));
    write(config, lines(`Include ${abs}`, 'Host gpu2', '  Include ~/.ssh/inner.conf', '  HostName 10.0.0.2', 'Host *', '  User outer'));
    assert.equal(resolve('abs').port, 3000);
    const gpu2 = resolve('gpu2');
    // The included file's Host * applies (gpu2's block matched), and gpu2's block goes on after it.
    assert.deepEqual([gpu2.user, gpu2.port, gpu2.hostname], ['inner-user', 4000, '10.0.0.2']);
    const other = resolve('other');
    assert.deepEqual([other.user, other.port], ['outer', 22], 'a Host * inside an Include of a non-matching block never matches');
  });

  it('stops an Include loop with a clear error', () => {
    write(config, lines('Include config'));
    assert.throws(() => resolve('x'), (e: Error) => e instanceof SshConfigError && /too many nested Includes/.test(e.message));
  });

  it('evaluates Match host, originalhost, user, all, and never runs Match exec', () => {
    const marker = path.join(home, 'exec-ran');
    write(config, lines(
      'Host gpu1',
      '  HostName 10.9.9.9',
      `Match exec "touch ${marker}"`,
      '  Port 1111',
      'Match host 10.9.*',
      '  User by-hostname',
      'Match originalhost gpu2 user ' + localUser,
      '  Port 2222',
      'Match all',
      '  Port 3333',
    ));
    assert.deepEqual([resolve('gpu1').user, resolve('gpu1').port], ['by-hostname', 3333]);
    assert.equal(resolve('gpu2').port, 2222);
    assert.equal(existsSync(marker), false);
  });

  it('resolves ProxyJump hops through the same config, with user@host:port forms', () => {
    write(config, lines(
      'Host inner',
      '  HostName 10.1.0.5',
      '  ProxyJump jumper,admin@second:2200',
      'Host jumper',
      '  HostName 203.0.113.1',
      '  User jumpuser',
      '  IdentityFile ~/.ssh/jump_key',
      'Host second',
      '  HostName 10.1.0.1',
      '  User ignored',
    ));
    const host = resolve('inner');
    assert.deepEqual(host.proxyJump.map((h) => [h.alias, h.hostname, h.user, h.port, h.proxyJump.length]), [
      ['jumper', '203.0.113.1', 'jumpuser', 22, 0],
      ['second', '10.1.0.1', 'admin', 2200, 0],
    ]);
    assert.deepEqual(host.proxyJump[0]!.identityFiles, [ssh('jump_key')]);
  });

  it("prepends the first hop's own ProxyJump, ignores later hops' own, and honours none", () => {
    write(config, lines(
      'Host bastion',
      '  HostName 198.51.100.1',
      '  ProxyJump none',
      'Host mid',
      '  ProxyJump bastion',
      'Host last',
      '  ProxyJump elsewhere',
      'Host target',
      '  ProxyJump mid,last',
      'Host ssh-uri',
      '  ProxyJump ssh://u@[2001:db8::1]:2222',
      'Host *',
      '  ProxyJump bastion',
    ));
    assert.deepEqual(resolve('target').proxyJump.map((h) => h.alias), ['bastion', 'mid', 'last']);
    assert.deepEqual(resolve('bastion').proxyJump, []);
    assert.deepEqual(resolve('anything').proxyJump.map((h) => h.alias), ['bastion']);
    // The hop is resolved through the config too, so Host * gives it its own jump first.
    const uri = resolve('ssh-uri').proxyJump;
    assert.deepEqual(uri.map((h) => [h.hostname, h.user, h.port]), [['198.51.100.1', localUser, 22], ['2001:db8::1', 'u', 2222]]);
  });

  it('detects ProxyJump loops', () => {
    write(config, lines('Host a', '  ProxyJump b', 'Host b', '  ProxyJump c', 'Host c', '  ProxyJump a', 'Host self', '  ProxyJump self'));
    assert.throws(() => resolve('a'), /ProxyJump loop .*: a -> b -> c -> a/);
    assert.throws(() => resolve('self'), /ProxyJump loop .*: self -> self/);
  });

  it('refuses ProxyCommand (unsupported) rather than connecting directly, unless ProxyJump came first', () => {
    write(config, lines('Host pc', '  ProxyCommand nc %h %p', 'Host pj', '  ProxyJump none', '  ProxyCommand nc %h %p'));
    assert.throws(() => resolve('pc'), /ProxyCommand is not supported/);
    assert.deepEqual(resolve('pj').proxyJump, []);
  });

  it('reports bad values, naming the file', () => {
    write(config, lines('Host a', '  Port http', 'Host b', '  ProxyJump user@', 'Host c', '  StrictHostKeyChecking maybe', 'Host d', '  IdentityFile %z'));
    for (const alias of ['a', 'b', 'c', 'd']) assert.throws(() => resolve(alias), (e: Error) => e instanceof SshConfigError && e.message.includes(config), alias);
  });

  it('reads the file named by DROVER_SSH_CONFIG when no configPath is given', () => {
    const other = path.join(home, 'drover_ssh_config');
    write(other, lines('Host envhost', '  Port 4242'));
    const saved = process.env.DROVER_SSH_CONFIG;
    process.env.DROVER_SSH_CONFIG = other;
    try {
      assert.equal(resolveSshHost('envhost', { homeDir: home }).port, 4242);
    } finally {
      if (saved === undefined) delete process.env.DROVER_SSH_CONFIG;
      else process.env.DROVER_SSH_CONFIG = saved;
    }
  });

  it('lists the concrete aliases, Includes followed, without wildcards or negations', () => {
    write(config, lines('Host gpu1 gpu2 *.lab !bad', '  User x', 'Include conf.d/*', 'Match host foo', '  User y', 'Host gpu1 ?pu'));
    write(ssh('conf.d', 'a'), lines('Host inc1', 'Host inner', '  Include ~/.ssh/deeper'));
    write(ssh('deeper'), lines('Host deep'));
    assert.deepEqual(listSshAliases({ configPath: config, homeDir: home }), ['gpu1', 'gpu2', 'inc1', 'inner', 'deep']);
    assert.deepEqual(listSshAliases({ configPath: path.join(home, 'none'), homeDir: home }), []);
  });

  it('globs like glob(3)', () => {
    write(path.join(home, 'g', 'a1'), '');
    write(path.join(home, 'g', 'a2'), '');
    write(path.join(home, 'g', 'b1'), '');
    write(path.join(home, 'g', 'sub', 'a3'), '');
    assert.deepEqual(glob(path.join(home, 'g', 'a?')), [path.join(home, 'g', 'a1'), path.join(home, 'g', 'a2')]);
    assert.deepEqual(glob(path.join(home, 'g', '[!a]*')), [path.join(home, 'g', 'b1'), path.join(home, 'g', 'sub')]);
    assert.deepEqual(glob(path.join(home, 'g', '*', 'a3')), [path.join(home, 'g', 'sub', 'a3')]);
    assert.deepEqual(glob(path.join(home, 'g', 'zz*')), []);
  });
});
