import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildManifest, treeHashOf, WorkdirError } from '../../../runner/src/hosts/ssh/workdir-manifest';
import { projectId } from '../../../runner/src/hosts/ssh/workdir-sync';

/** Writes files (path → content) under `root`, making directories as needed. */
function write(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

/** Sets every file's mtime an hour back, so the cache may trust it (see RACY_MS). */
function backdate(root: string, rels: readonly string[]): void {
  const past = new Date(Date.now() - 3600_000);
  for (const rel of rels) utimesSync(path.join(root, rel), past, past);
}

const paths = async (root: string) => (await buildManifest(root)).files.map((f) => f.path);

const IGNORE_TREE = {
  '.gitignore': ['*.log', '!keep.log', 'build/', '/top-only.txt', 'secret*', '!secret-ok.txt', ''].join('\n'),
  'a.py': 'print(1)\n',
  'debug.log': 'x',
  'keep.log': 'kept by negation',
  'build/out.bin': 'x',
  'build/deep/x.o': 'x',
  'notbuild/build': 'a file named build is not a build/ directory',
  'top-only.txt': 'x',
  'sub/top-only.txt': 'anchored pattern: only the root one is ignored',
  'sub/.gitignore': ['*.csv', '!important.csv', '!debug2.log', 'cache/', ''].join('\n'),
  'sub/data.csv': 'x',
  'sub/important.csv': 'x',
  'sub/debug2.log': 'the nested negation re-includes what the root ignores',
  'sub/cache/blob': 'x',
  'sub/deeper/other.csv': 'nested rules reach subdirectories',
  'other/data.csv': 'the nested rule does not reach siblings',
  'secret.key': 'x',
  'secret-ok.txt': 'x',
  'src/main.py': 'x',
};

describe('workdir manifest', () => {
  let dir: string;

  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'drover-manifest-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('honors root and nested .gitignore files: negation, dir-only, anchored patterns', async () => {
    write(dir, IGNORE_TREE);
    assert.deepEqual(await paths(dir), [
      '.gitignore',
      'a.py',
      'keep.log',
      'notbuild/build',
      'other/data.csv',
      'secret-ok.txt',
      'src/main.py',
      'sub/.gitignore',
      'sub/debug2.log',
      'sub/important.csv',
      'sub/top-only.txt',
    ]);
  });

  it('agrees with git ls-files on the same tree', async function () {
    write(dir, IGNORE_TREE);
    write(dir, { 'x/y/z/.gitignore': '/z.txt\n', 'x/y/z/z.txt': '', 'x/y/z/w.txt': '', 'x/.gitignore': 'y/z/w.txt\n!nothing\n' });
    // An isolated git: no user or system config, no global excludes file.
    const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
    const init = spawnSync('git', ['init', '-q', dir], { env });
    if (init.error || init.status !== 0) this.skip();
    const listed = spawnSync('git', ['-c', 'core.quotePath=off', 'ls-files', '-z', '--others', '--cached', '--exclude-standard'], { cwd: dir, env, encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    const git = listed.stdout.split('\0').filter(Boolean).sort();
    assert.deepEqual(await paths(dir), git);
  });

  it('agrees with git ls-files on random trees and rules', async function () {
    this.timeout(120_000);
    const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
    if (spawnSync('git', ['--version'], { env }).status !== 0) this.skip();
    // Directory names that mean something in a pattern too, since nested rules are rewritten with their directory in front.
    const names = ['a', 'b', 'x', 'keep.log', 'y.log', 'build', '[a]', '!b', '#x', 'a*', 'sp ace'];
    const patterns = ['*.log', '!keep.log', 'build/', '/a', 'a', '!a', 'b/', '!b/', 'b/*', '!b/x', '**/x', 'x', '!x', '*', '!*/', 'a/b', '/b/x', 'a/**/y.log', '!build', '#a', ' ', 'b/**', 'a ', '\\!b', '**', '*/', '/*', 'x/'];
    const filePath = fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
    const rules = fc.array(fc.constantFrom(...patterns), { maxLength: 5 }).map((lines) => `${lines.join('\n')}\n`);
    const ignoreDir = fc.constantFrom('', 'a', 'b', 'a/b', 'build', '[a]', '!b', '#x/a', 'a*', 'sp ace');
    let round = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(filePath, { minLength: 1, maxLength: 12 }), fc.array(fc.tuple(ignoreDir, rules), { maxLength: 3 }), async (files, ignores) => {
        const root = path.join(dir, `case${round++}`);
        mkdirSync(root);
        for (const file of files) {
          // Skip a file whose path runs through another file.
          const clash = files.some((other) => other !== file && (file.startsWith(`${other}/`) || other.startsWith(`${file}/`)));
          if (!clash) write(root, { [file]: file });
        }
        for (const [where, text] of ignores) {
          try {
            write(root, { [path.posix.join(where, '.gitignore')]: text });
          } catch {
            // `where` is a file here.
          }
        }
        spawnSync('git', ['init', '-q', root], { env });
        const listed = spawnSync('git', ['ls-files', '-z', '--others', '--cached', '--exclude-standard'], { cwd: root, env, encoding: 'utf8' });
        const git = listed.stdout.split('\0').filter(Boolean).sort();
        assert.deepEqual(await paths(root), git);
      }),
      { numRuns: 100 },
    );
  });

  it('applies a root .droverignore over .gitignore and always skips .git', async () => {
    write(dir, {
      '.gitignore': 'generated.yaml\n',
      '.droverignore': 'data/\n*.ckpt\n!generated.yaml\n',
      'generated.yaml': 'git ignores it, .droverignore brings it back',
      'data/big.bin': 'x',
      'model.ckpt': 'x',
      'sub/model.ckpt': 'x',
      'train.py': 'x',
      '.git/HEAD': 'ref: refs/heads/main\n',
      'sub/.git': 'gitdir: ../.git/modules/sub\n',
    });
    assert.deepEqual(await paths(dir), ['.droverignore', '.gitignore', 'generated.yaml', 'train.py']);
  });

  it('keeps the executable bit, normalized the way git does', async () => {
    write(dir, { 'run.sh': '#!/bin/sh\n', 'owner-only.sh': '#!/bin/sh\n', 'data.txt': 'x', 'private.txt': 'x' });
    chmodSync(path.join(dir, 'run.sh'), 0o755);
    chmodSync(path.join(dir, 'owner-only.sh'), 0o700);
    chmodSync(path.join(dir, 'data.txt'), 0o664);
    chmodSync(path.join(dir, 'private.txt'), 0o600);
    const modes = Object.fromEntries((await buildManifest(dir)).files.map((f) => [f.path, f.mode.toString(8)]));
    assert.deepEqual(modes, { 'data.txt': '644', 'owner-only.sh': '755', 'private.txt': '644', 'run.sh': '755' });
  });

  it('records size and sha256 per file, and odd names as they are', async () => {
    const names = ['with space.txt', "it's.txt", '$(touch pwned).txt', 'new\nline.txt', 'ünï.txt', '-dash.txt'];
    write(dir, Object.fromEntries(names.map((n) => [n, n])));
    const manifest = await buildManifest(dir);
    assert.deepEqual(manifest.files.map((f) => f.path), [...names].sort());
    for (const file of manifest.files) {
      assert.equal(file.size, Buffer.byteLength(file.path));
      assert.equal(file.hash, spawnSync('sha256sum', { input: file.path, encoding: 'utf8' }).stdout.slice(0, 64));
    }
  });

  it('gives identical trees the same hash wherever they lie and however they were made', async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), 'drover-manifest-other-'));
    try {
      const files = { 'b/c.txt': 'c', 'a.txt': 'a', 'z/y/x.py': 'x' };
      write(dir, files);
      write(other, Object.fromEntries(Object.entries(files).reverse()));
      backdate(other, Object.keys(files));
      const [one, two] = await Promise.all([buildManifest(dir), buildManifest(other, { cacheFile: path.join(other, '..', `${path.basename(other)}.cache.json`) })]);
      assert.equal(one.treeHash, two.treeHash);
      assert.match(one.treeHash, /^[0-9a-f]{64}$/);
      assert.equal(one.treeHash, treeHashOf([...one.files].reverse()));
      // A known value: the hash is part of the remote layout, so it must not drift between versions.
      const pinned = [{ path: 'b\nc', mode: 0o755, hash: '0'.repeat(64) }, { path: 'a', mode: 0o644, hash: 'e'.repeat(64) }];
      assert.equal(treeHashOf(pinned), '7a704abb5ad186a2563c94c34822b8d7446059fa76510908fc76790a4594dbf1');
    } finally {
      rmSync(other, { recursive: true, force: true });
      rmSync(`${other}.cache.json`, { force: true });
    }
  });

  it('changes the tree hash when one byte, a mode or a name changes', async () => {
    write(dir, { 'a.txt': 'hello', 'b.txt': 'world' });
    const base = (await buildManifest(dir)).treeHash;
    writeFileSync(path.join(dir, 'a.txt'), 'hellp');
    const byte = (await buildManifest(dir)).treeHash;
    assert.notEqual(byte, base);
    writeFileSync(path.join(dir, 'a.txt'), 'hello');
    assert.equal((await buildManifest(dir)).treeHash, base);
    chmodSync(path.join(dir, 'b.txt'), 0o755);
    assert.notEqual((await buildManifest(dir)).treeHash, base);
    chmodSync(path.join(dir, 'b.txt'), 0o644);
    rmSync(path.join(dir, 'b.txt'));
    write(dir, { 'c.txt': 'world' });
    assert.notEqual((await buildManifest(dir)).treeHash, base);
  });

  it('does not read an unchanged file again when a cache is given', async () => {
    const cacheFile = path.join(dir, 'state', 'hash-cache.json');
    const work = path.join(dir, 'work');
    const files = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}.txt`, `content ${i}`.padEnd(100, '.')]));
    write(work, files);
    backdate(work, Object.keys(files));

    const first = await buildManifest(work, { cacheFile });
    assert.equal(first.hashedFiles, 50);
    const second = await buildManifest(work, { cacheFile });
    assert.equal(second.hashedFiles, 0);
    assert.equal(second.treeHash, first.treeHash);

    // Same size, same mtime, same inode: the cache answers, which shows the file was not read.
    const file = path.join(work, 'f7.txt');
    const before = statSync(file);
    writeFileSync(file, readFileSync(file, 'utf8').replace('content', 'CONTENT'));
    utimesSync(file, before.atime, before.mtime);
    assert.equal(statSync(file).ino, before.ino);
    const third = await buildManifest(work, { cacheFile });
    assert.equal(third.hashedFiles, 0);
    assert.equal(third.treeHash, first.treeHash);

    // A new mtime is noticed: only that file is read.
    const later = new Date(before.mtimeMs + 1000);
    utimesSync(file, later, later);
    const fourth = await buildManifest(work, { cacheFile });
    assert.equal(fourth.hashedFiles, 1);
    assert.notEqual(fourth.treeHash, first.treeHash);
  });

  it('hashes files edited moments ago again, since a same-size rewrite could share their mtime', async () => {
    const cacheFile = path.join(dir, 'cache.json');
    const work = path.join(dir, 'work');
    write(work, { 'old.txt': 'old', 'new.txt': 'new' });
    backdate(work, ['old.txt']);
    await buildManifest(work, { cacheFile });
    const again = await buildManifest(work, { cacheFile });
    assert.equal(again.hashedFiles, 1);
  });

  it('survives a damaged cache file', async () => {
    const cacheFile = path.join(dir, 'cache.json');
    writeFileSync(cacheFile, '{not json');
    write(dir, { 'w/a.txt': 'a' });
    const manifest = await buildManifest(path.join(dir, 'w'), { cacheFile });
    assert.deepEqual(manifest.files.map((f) => f.path), ['a.txt']);
    assert.equal(JSON.parse(readFileSync(cacheFile, 'utf8')).version, 1);
  });

  it('syncs a link to a file as that file and skips links to directories and dangling links', async () => {
    write(dir, { 'real/target.txt': 'target', 'outside.txt': 'out' });
    symlinkSync('real/target.txt', path.join(dir, 'link.txt'));
    symlinkSync('real', path.join(dir, 'linkdir'));
    symlinkSync('missing', path.join(dir, 'dangling'));
    const files = (await buildManifest(dir)).files;
    assert.deepEqual(files.map((f) => f.path), ['link.txt', 'outside.txt', 'real/target.txt']);
    assert.equal(files[0]!.hash, files[2]!.hash);
  });

  it('walks a very deep tree without recursion', async () => {
    const deep = Array.from({ length: 400 }, () => 'd').join('/');
    write(dir, { [`${deep}/leaf.txt`]: 'leaf' });
    assert.deepEqual(await paths(dir), [`${deep}/leaf.txt`]);
  });

  it('says clearly when the workdir is missing or not a directory', async () => {
    const missing = path.join(dir, 'nope');
    await assert.rejects(buildManifest(missing), (error: Error) => error instanceof WorkdirError && error.message === `The workdir ${missing} does not exist.`);
    write(dir, { 'file.txt': 'x' });
    await assert.rejects(buildManifest(path.join(dir, 'file.txt')), /is not a directory/);
  });
});

describe('projectId', () => {
  it('is short, stable, safe as a path word, and differs by path and host', () => {
    const id = projectId('/home/ann/My Project', 'gpu-box-1');
    assert.equal(id, projectId('/home/ann/My Project/', 'gpu-box-1'));
    assert.match(id, /^My_Project-[0-9a-f]{8}$/);
    assert.notEqual(id, projectId('/home/bob/My Project', 'gpu-box-1'));
    assert.notEqual(id, projectId('/home/ann/My Project', 'gpu-box-2'));
    assert.notEqual(projectId('/home/ann/My Project', 'gpu-box-1', 'daemon-a'), projectId('/home/ann/My Project', 'gpu-box-1', 'daemon-b'), 'one mirror per daemon');
    assert.match(projectId('/', 'h'), /^workdir-[0-9a-f]{8}$/);
    assert.match(projectId('/tmp/..hidden; rm -rf ~', 'h'), /^hidden__rm_-rf__-[0-9a-f]{8}$/);
  });
});
