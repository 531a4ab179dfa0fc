// Workdir sync against a real sshd (the SSH testbed's h1): SFTP uploads, snapshots made with hard
// links on the host, and what the host ends up holding, read back on the host itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type SFTPWrapper } from 'ssh2';
import { shellWord } from '../../common/spec';
import { WorkdirError } from '../../runner/src/hosts/ssh/workdir-manifest';
import { KEPT_VERSIONS, projectId, syncWorkdir, WorkdirSyncError, type ExecResult, type SyncOptions, type SyncResult } from '../../runner/src/hosts/ssh/workdir-sync';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

/** What a directory on the host holds: path → [sha256, mode], and its empty directories. */
interface RemoteTree {
  files: Record<string, [string, string]>;
  emptyDirs: string[];
}

// Run on the host by its own python, so names with newlines or quotes come back exactly.
const LIST_TREE = `
import hashlib, json, os, sys
root = sys.argv[1]
files, empty = {}, []
for d, dirs, names in os.walk(root):
    if not dirs and not names and d != root:
        empty.append(os.path.relpath(d, root))
    for n in names:
        p = os.path.join(d, n)
        with open(p, 'rb') as f:
            files[os.path.relpath(p, root)] = [hashlib.sha256(f.read()).hexdigest(), oct(os.lstat(p).st_mode & 0o777)]
print(json.dumps({'files': files, 'emptyDirs': sorted(empty)}))
`;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function write(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = join(root, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
  }
}

describe('workdir sync over SFTP (real sshd)', function () {
  this.timeout(120_000);
  let testbed: SshTestbed;
  let client: Client;
  let sftp: SFTPWrapper;
  let local: string;
  let stateDir: string;

  before(async function () {
    // start() waits for any other process's testbed to finish first.
    this.timeout(400_000);
    skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
    testbed = await SshTestbed.start();
    client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({
        host: testbed.address('h1'),
        port: 22,
        username: testbed.user('h1'),
        privateKey: readFileSync(testbed.identityFile),
        // Accepting any host key is acceptable ONLY here: this test is about the sync, and
        // host-key checking is tested with SshConnection and known_hosts elsewhere.
        hostVerifier: () => true,
        readyTimeout: 10_000,
      });
    });
    // Without it, small SFTP requests wait out delayed ACKs (40 ms each); SshConnection should do the same.
    client.setNoDelay(true);
    sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
  });

  after(async () => {
    client?.end();
    await testbed?.dispose();
  });

  beforeEach(() => {
    local = mkdtempSync(join(tmpdir(), 'drover-sync-work-'));
    stateDir = mkdtempSync(join(tmpdir(), 'drover-sync-state-'));
  });

  afterEach(() => {
    rmSync(local, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  function exec(command: string): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      client.exec(command, (err, channel) => {
        if (err) return reject(err);
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let code: number | null = null;
        channel.on('data', (chunk: Buffer) => stdout.push(chunk));
        channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
        channel.on('exit', (exitCode: number | null) => (code = exitCode));
        channel.on('close', () => resolve({ code, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) }));
      });
    });
  }

  /** A fresh project directory on h1 for this test. */
  function remoteRootFor(name: string): string {
    return join(testbed.home('h1'), '.drover/projects', projectId(join(local, name), 'h1'));
  }

  function sync(remoteRoot: string, extra: Partial<SyncOptions> = {}): Promise<SyncResult> {
    return syncWorkdir({ localDir: local, remoteRoot, sftp, exec, cacheFile: join(stateDir, 'hash-cache.json'), ...extra });
  }

  async function onHost(command: string): Promise<string> {
    const result = await testbed.exec('h1', command);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    return result.stdout;
  }

  async function remoteTree(dir: string): Promise<RemoteTree> {
    return JSON.parse(await onHost(`python3 -c ${shellWord(LIST_TREE)} ${shellWord(dir)}`)) as RemoteTree;
  }

  /** Asserts the host directory holds exactly these files, byte for byte, with these executables. */
  async function assertHolds(dir: string, files: Record<string, string | Buffer>, executables: readonly string[] = []): Promise<void> {
    const tree = await remoteTree(dir);
    assert.deepEqual(Object.keys(tree.files).sort(), Object.keys(files).sort(), `the files in ${dir}`);
    for (const [rel, content] of Object.entries(files)) {
      const [hash, mode] = tree.files[rel]!;
      assert.equal(hash, sha256(content), `the content of ${JSON.stringify(rel)}`);
      assert.equal(executables.includes(rel), (Number(mode) & 0o100) !== 0, `the executable bit of ${JSON.stringify(rel)} (${mode})`);
    }
    assert.deepEqual(tree.emptyDirs, [], `no empty directories in ${dir}`);
  }

  it('uploads a new tree whole: bytes, the executable bit, and nothing git ignores', async () => {
    const big = randomBytes(5 * 1024 * 1024 + 123);
    const tracked: Record<string, string | Buffer> = {
      '.gitignore': 'secret.env\nbuild/\n*.pyc\n!keep.pyc\n',
      'train.py': 'print("training")\n',
      'run.sh': '#!/bin/sh\necho "ran in $(pwd)"\n',
      'empty.txt': '',
      'data/weights.bin': big,
      'data/small.bin': randomBytes(4096),
      'data/.gitignore': 'raw/\n',
      'keep.pyc': 'negated',
      'pkg/deep/er/module.py': 'x = 1\n',
    };
    write(local, { ...tracked, 'secret.env': 'TOKEN=hunter2', 'build/out.o': 'obj', 'pkg/mod.pyc': 'cache', 'data/raw/huge.csv': 'a,b\n' });
    chmodSync(join(local, 'run.sh'), 0o755);
    const remoteRoot = remoteRootFor('first');
    const progress: [number, number][] = [];

    const result = await sync(remoteRoot, { onProgress: (done, total) => progress.push([done, total]) });

    assert.equal(result.files, Object.keys(tracked).length);
    assert.equal(result.uploadedFiles, Object.keys(tracked).length);
    assert.equal(result.uploadedBytes, Object.values(tracked).reduce((sum, c) => sum + Buffer.byteLength(c), 0));
    assert.equal(result.deletedFiles, 0);
    assert.equal(result.remoteDir, `${remoteRoot}/versions/${result.treeHash}`);
    assert.deepEqual(progress[0], [0, result.uploadedFiles]);
    assert.deepEqual(progress.at(-1), [result.uploadedFiles, result.uploadedFiles]);
    await assertHolds(result.remoteDir, tracked, ['run.sh']);
    await assertHolds(`${remoteRoot}/tree`, tracked, ['run.sh']);
    // Ignored files reach the host nowhere, not even for a moment in the upload folder.
    assert.equal(await onHost(`grep -rl hunter2 ${shellWord(remoteRoot)} || true`), '');
    assert.equal(await onHost(`cd ${shellWord(result.remoteDir)} && ./run.sh`), `ran in ${result.remoteDir}\n`);
    // The snapshot shares the mirror's inodes: it cost no copy.
    assert.equal(await onHost(`stat -c %i ${shellWord(`${remoteRoot}/tree/data/weights.bin`)}`), await onHost(`stat -c %i ${shellWord(`${result.remoteDir}/data/weights.bin`)}`));
    assert.equal(await onHost(`ls -A ${shellWord(`${remoteRoot}/incoming`)}`), '', 'the upload folder is cleaned up');
  });

  it('syncs file names with spaces, quotes, $(...), backticks and newlines, and runs none of them', async () => {
    const names = [
      'with space.txt',
      "it's.txt",
      'double"quote.txt',
      '$(touch pwned1).txt',
      '`touch pwned2`.txt',
      ';touch pwned3;.txt',
      'new\nline.txt',
      '-rf',
      '*',
      'back\\slash.txt',
      'ünïcødé ✓.txt',
      "dir with 'quote' $(touch pwned4)/inner $HOME.txt",
      'a\nb/c\nd.txt',
    ];
    const files = Object.fromEntries(names.map((name, i) => [name, `content ${i}\n`]));
    write(local, files);
    const remoteRoot = remoteRootFor('odd');

    const first = await sync(remoteRoot);
    assert.equal(first.uploadedFiles, names.length);
    await assertHolds(first.remoteDir, files);

    // Changes and deletions put the names on rm and mkdir command lines too.
    rmSync(join(local, "it's.txt"));
    rmSync(join(local, 'a\nb'), { recursive: true });
    writeFileSync(join(local, '$(touch pwned1).txt'), 'changed\n');
    write(local, { "new 'dir' `x`/$(touch pwned5)\n.txt": 'new\n' });
    const second = await sync(remoteRoot);
    assert.equal(second.uploadedFiles, 2);
    assert.equal(second.deletedFiles, 2);
    const expected: Record<string, string> = { ...files, '$(touch pwned1).txt': 'changed\n', "new 'dir' `x`/$(touch pwned5)\n.txt": 'new\n' };
    delete expected["it's.txt"];
    delete expected['a\nb/c\nd.txt'];
    await assertHolds(second.remoteDir, expected);
    await assertHolds(first.remoteDir, files);

    // No command substitution ran anywhere: in the home, the project folder or the snapshots.
    const found = await onHost(`find ${shellWord(testbed.home('h1'))} /tmp -name 'pwned*' ! -name '*.txt' 2>/dev/null || true`);
    assert.equal(found, '');
  });

  it('syncs a 2,000-file tree: no-op in one pass, one change moves one file, old snapshots stay as they were', async function () {
    const files: Record<string, string> = {};
    for (let d = 0; d < 40; d++) for (let f = 0; f < 50; f++) files[`dir${d}/file${f}.txt`] = `${d}/${f} `.padEnd(1024, String.fromCharCode(97 + ((d + f) % 26)));
    write(local, files);
    // Files an hour old, as in a real project: the hash cache trusts only files not edited in the last seconds.
    const past = new Date(Date.now() - 3600_000);
    for (const rel of Object.keys(files)) utimesSync(join(local, rel), past, past);
    const remoteRoot = remoteRootFor('big');

    const first = await sync(remoteRoot);
    assert.equal(first.uploadedFiles, 2000);
    const noop = await sync(remoteRoot);
    assert.equal(noop.uploadedFiles, 0);
    assert.equal(noop.deletedFiles, 0);
    assert.equal(noop.treeHash, first.treeHash);
    assert.equal(noop.remoteDir, first.remoteDir);

    const changed = 'dir7/file7.txt';
    writeFileSync(join(local, changed), 'a new version\n');
    const one = await sync(remoteRoot);
    assert.equal(one.uploadedFiles, 1);
    assert.equal(one.uploadedBytes, 'a new version\n'.length);
    assert.notEqual(one.remoteDir, first.remoteDir);
    assert.equal(await onHost(`cat ${shellWord(`${one.remoteDir}/${changed}`)}`), 'a new version\n');
    assert.equal(await onHost(`cat ${shellWord(`${first.remoteDir}/${changed}`)}`), files[changed]);

    const deleted = 'dir3/file9.txt';
    rmSync(join(local, deleted));
    const gone = await sync(remoteRoot);
    assert.equal(gone.uploadedFiles, 0);
    assert.equal(gone.deletedFiles, 1);
    assert.equal(await onHost(`test -e ${shellWord(`${gone.remoteDir}/${deleted}`)} && echo present || echo absent`), 'absent\n');
    assert.equal(await onHost(`test -e ${shellWord(`${one.remoteDir}/${deleted}`)} && echo present || echo absent`), 'present\n');
    const final: Record<string, string> = { ...files, [changed]: 'a new version\n' };
    delete final[deleted];
    await assertHolds(gone.remoteDir, final);
    await assertHolds(first.remoteDir, files);

    // A whole directory goes, and a file takes its name.
    for (let f = 0; f < 50; f++) delete final[`dir5/file${f}.txt`];
    rmSync(join(local, 'dir5'), { recursive: true });
    write(local, { dir5: 'now a file\n' });
    final['dir5'] = 'now a file\n';
    const swapped = await sync(remoteRoot);
    assert.equal(swapped.deletedFiles, 50);
    assert.equal(swapped.uploadedFiles, 1);
    await assertHolds(swapped.remoteDir, final);

    const timings = `first ${first.ms} ms, no-op ${noop.ms} ms, one changed file ${one.ms} ms, one deleted file ${gone.ms} ms`;
    console.log(`      2,000 files of 1 KiB to h1: ${timings}`);
    this.test!.title += ` (${timings})`;
  });

  it(`keeps the newest ${KEPT_VERSIONS} snapshots, and any other a process still runs in`, async () => {
    const remoteRoot = remoteRootFor('prune');
    write(local, { 'v.txt': 'version 0\n' });
    const oldest = await sync(remoteRoot);
    // A job still running in the oldest snapshot.
    const job = await exec(`cd ${shellWord(oldest.remoteDir)} && (sleep 60 >/dev/null 2>&1 </dev/null & echo $!)`);
    const pid = Number(job.stdout.toString().trim());
    assert.ok(pid > 1, job.stderr.toString());
    try {
      const dirs = [oldest.remoteDir];
      for (let v = 1; v <= 7; v++) {
        writeFileSync(join(local, 'v.txt'), `version ${v}\n`);
        dirs.push((await sync(remoteRoot)).remoteDir);
      }
      const kept = (await onHost(`ls ${shellWord(`${remoteRoot}/versions`)}`)).trim().split('\n').sort();
      const expected = [oldest.remoteDir, ...dirs.slice(-KEPT_VERSIONS)].map((d) => d.split('/').pop()!).sort();
      assert.deepEqual(kept, expected);
      // Syncing an older tree again brings its snapshot back.
      writeFileSync(join(local, 'v.txt'), 'version 1\n');
      const again = await sync(remoteRoot);
      assert.equal(again.remoteDir, dirs[1]);
      assert.equal(await onHost(`cat ${shellWord(`${again.remoteDir}/v.txt`)}`), 'version 1\n');
    } finally {
      await onHost(`kill ${pid} || true`);
    }
  });

  it('redoes an interrupted sync, even when the files went back to their old content', async () => {
    const remoteRoot = remoteRootFor('interrupted');
    const v1 = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}.txt`, `v1 ${i}\n`]));
    write(local, v1);
    const first = await sync(remoteRoot);

    write(local, Object.fromEntries(Object.keys(v1).map((rel) => [rel, `v2 ${rel}\n`])));
    rmSync(join(local, 'f29.txt'));
    // The connection "drops" after 10 files were renamed into the mirror (and f29.txt was deleted there).
    let renames = 0;
    const flaky = new Proxy(sftp, {
      get(target, key, receiver) {
        if (key === 'ext_openssh_rename') {
          return (from: string, to: string, cb: (err?: Error | null) => void) => {
            if (to.endsWith('.json')) return target.ext_openssh_rename(from, to, cb);
            if (++renames > 10) return cb(Object.assign(new Error('Connection lost'), { code: 7 }));
            return target.ext_openssh_rename(from, to, cb);
          };
        }
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    await assert.rejects(sync(remoteRoot, { sftp: flaky }), (error: Error) => error instanceof WorkdirSyncError && /Connection lost/.test(error.message));

    // Back to v1: the mirror holds some v2 files the old manifest would call v1, and lacks f29.txt.
    write(local, v1);
    const again = await sync(remoteRoot);
    assert.ok(again.uploadedFiles >= 10, `${again.uploadedFiles} files uploaded again`);
    assert.equal(again.treeHash, first.treeHash);
    await assertHolds(`${remoteRoot}/tree`, v1);
    await assertHolds(again.remoteDir, v1);
  });

  it('rebuilds the mirror when its manifest is damaged', async () => {
    const remoteRoot = remoteRootFor('damaged');
    write(local, { 'a.txt': 'a\n', 'b/c.txt': 'c\n' });
    await sync(remoteRoot);
    await onHost(`echo '{not json' > ${shellWord(`${remoteRoot}/manifest.json`)} && echo stray > ${shellWord(`${remoteRoot}/tree/stray.txt`)}`);
    writeFileSync(join(local, 'a.txt'), 'a2\n');
    const result = await sync(remoteRoot);
    assert.equal(result.uploadedFiles, 2);
    await assertHolds(result.remoteDir, { 'a.txt': 'a2\n', 'b/c.txt': 'c\n' });
  });

  it('says which host path it cannot write, and why', async () => {
    write(local, { 'a.txt': 'a\n' });
    const locked = join(testbed.home('h1'), 'locked');
    await onHost(`mkdir -p ${shellWord(locked)} && chmod 555 ${shellWord(locked)}`);
    await assert.rejects(sync(`${locked}/project`), (error: Error) => {
      assert.ok(error instanceof WorkdirSyncError, error.stack);
      assert.match(error.message, new RegExp(`${locked}/project`));
      assert.match(error.message, /Permission denied/);
      return true;
    });
    await assert.rejects(sync(remoteRootFor('x'), { localDir: join(local, 'missing') }), (error: Error) => error instanceof WorkdirError && /does not exist/.test(error.message));
    await assert.rejects(sync('relative/path'), /must be an absolute path/);
  });

  it('names the file and the likely cause when the host disk is full', async function () {
    const full = join(testbed.home('h1'), 'full');
    await onHost(`mkdir -p ${shellWord(full)}`);
    // A 1 MiB tmpfs in the host's own mount namespace (its sshd's; `ip netns exec` makes a new one).
    const sshd = readFileSync(join(testbed.hostDir('h1'), 'sshd/sshd.pid'), 'utf8').trim();
    const id = (flag: string) => spawnSync('id', [flag, testbed.user('h1')], { encoding: 'utf8' }).stdout.trim();
    const options = `size=1m,mode=0700,uid=${id('-u')},gid=${id('-g')}`;
    const mounted = spawnSync('nsenter', ['-t', sshd, '-m', 'mount', '-t', 'tmpfs', '-o', options, 'tmpfs', full], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      console.log(`      skipped: cannot mount a small tmpfs here: ${(mounted.stderr || mounted.error?.message || '').trim()}`);
      this.skip();
    }
    try {
      write(local, { 'small.txt': 'fits\n', 'big.bin': randomBytes(3 * 1024 * 1024) });
      await assert.rejects(sync(`${full}/project`), (error: Error) => {
        assert.ok(error instanceof WorkdirSyncError, error.stack);
        assert.match(error.message, new RegExp(`Cannot write ${full}/project/tree/big.bin`));
        assert.match(error.message, /disk may be full/);
        return true;
      });
    } finally {
      spawnSync('nsenter', ['-t', sshd, '-m', 'umount', full]);
    }
  });
});
