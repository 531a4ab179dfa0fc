// gitState against real git repositories in temporary directories.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitState, type GitState } from '../../../runner/src/records/reproduction';

/** Runs git in `cwd` for the test's own setup; fails the test when git fails. */
function git(cwd: string, ...args: string[]): string {
  const result = spawnSync('git', args, { cwd, encoding: 'utf8' });
  assert.equal(result.error, undefined, `cannot run git: ${String(result.error)}`);
  assert.equal(result.status, 0, `git ${args.join(' ')}: ${result.stderr}`);
  return result.stdout.trim();
}

/** A repository with one commit on `main`, independent of the machine's git configuration. */
function makeRepo(dir: string): string {
  git(dir, 'init', '-q');
  git(dir, 'symbolic-ref', 'HEAD', 'refs/heads/main'); // init -b needs git 2.28
  git(dir, 'config', 'user.email', 'test@drover.invalid');
  git(dir, 'config', 'user.name', 'Drover Test');
  git(dir, 'config', 'commit.gpgsign', 'false');
  writeFileSync(join(dir, 'train.py'), 'print("hello")\n');
  writeFileSync(join(dir, 'weights.bin'), Buffer.from([0, 1, 2, 3, 255, 0, 7]));
  writeFileSync(join(dir, '.gitignore'), 'outputs/\n');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'model.py'), 'x = 1\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '--no-verify', '-m', 'first');
  return git(dir, 'rev-parse', 'HEAD');
}

async function state(dir: string): Promise<GitState> {
  const result = await gitState(dir);
  assert.ok(result, `no git state for ${dir}`);
  return result;
}

/** The diffHash of a dirty work tree. */
async function hashOf(dir: string): Promise<string> {
  const result = await state(dir);
  assert.equal(result.dirty, true);
  assert.match(result.diffHash ?? '', /^[0-9a-f]{64}$/);
  return result.diffHash as string;
}

describe('gitState', function () {
  this.timeout(60_000);
  let root: string;
  let repo: string;
  let head: string;

  before(function () {
    if (spawnSync('git', ['--version']).status !== 0) this.skip();
  });

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'drover-git-')));
    repo = join(root, 'repo');
    mkdirSync(repo);
    head = makeRepo(repo);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reports a clean work tree: commit, branch, not dirty, no hash', async () => {
    assert.deepEqual(await gitState(repo), { commit: head, dirty: false, branch: 'main' });
  });

  it('gives the same state from a subdirectory, untracked files elsewhere included', async () => {
    writeFileSync(join(repo, 'notes.txt'), 'outside src/\n');
    assert.deepEqual(await gitState(join(repo, 'src')), await gitState(repo));
    assert.equal((await state(join(repo, 'src'))).dirty, true);
  });

  it('is dirty with a hash of the diff when a tracked file changes, and clean again when undone', async () => {
    writeFileSync(join(repo, 'train.py'), 'print("changed")\n');
    const changed = await hashOf(repo);
    assert.equal(await hashOf(repo), changed, 'the same change gives the same hash');

    writeFileSync(join(repo, 'train.py'), 'print("changed again")\n');
    assert.notEqual(await hashOf(repo), changed);

    writeFileSync(join(repo, 'train.py'), 'print("hello")\n');
    assert.deepEqual(await gitState(repo), { commit: head, dirty: false, branch: 'main' });
  });

  it('counts staged changes and deletions', async () => {
    writeFileSync(join(repo, 'src', 'model.py'), 'x = 2\n');
    git(repo, 'add', 'src/model.py');
    const staged = await hashOf(repo);
    rmSync(join(repo, 'train.py'));
    assert.notEqual(await hashOf(repo), staged);
  });

  it('tells binary changes apart', async () => {
    writeFileSync(join(repo, 'weights.bin'), Buffer.from([0, 1, 2, 3, 255, 0, 8]));
    const first = await hashOf(repo);
    writeFileSync(join(repo, 'weights.bin'), Buffer.from([0, 1, 2, 3, 255, 0, 9]));
    assert.notEqual(await hashOf(repo), first);
  });

  it('counts untracked files by name, and ignores ignored files', async () => {
    mkdirSync(join(repo, 'outputs'));
    writeFileSync(join(repo, 'outputs', 'model.json'), '{}');
    assert.equal((await state(repo)).dirty, false, 'ignored files do not make the tree dirty');

    writeFileSync(join(repo, 'scratch.py'), 'a = 1\n');
    const one = await hashOf(repo);
    writeFileSync(join(repo, 'scratch.py'), 'a = 2\n');
    assert.equal(await hashOf(repo), one, 'untracked files count by name, not content');

    mkdirSync(join(repo, 'new'));
    writeFileSync(join(repo, 'new', 'more.py'), '');
    const two = await hashOf(repo);
    assert.notEqual(two, one, 'another untracked file changes the hash');

    writeFileSync(join(repo, 'train.py'), 'print("changed")\n');
    assert.notEqual(await hashOf(repo), two, 'a diff and untracked files together');
  });

  it("hashes the same changes alike whatever the repository's diff settings", async () => {
    writeFileSync(join(repo, 'train.py'), 'print("changed")\n# more\n');
    writeFileSync(join(repo, 'extra.txt'), 'x');
    const before = await hashOf(repo);
    for (const [key, value] of [['diff.noprefix', 'true'], ['diff.mnemonicPrefix', 'true'], ['diff.algorithm', 'histogram'], ['diff.context', '10'], ['color.diff', 'always'], ['diff.renames', 'copies'], ['core.quotePath', 'false']]) {
      git(repo, 'config', key, value);
    }
    assert.equal(await hashOf(repo), before);
  });

  it('has no branch on a detached HEAD', async () => {
    git(repo, 'checkout', '-q', '--detach');
    assert.deepEqual(await gitState(repo), { commit: head, dirty: false });
  });

  it('looks at the repository at dir even when GIT_DIR points elsewhere', async () => {
    const other = join(root, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'f'), 'other\n');
    makeRepo(other);
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = join(other, '.git');
    try {
      assert.deepEqual(await gitState(repo), { commit: head, dirty: false, branch: 'main' });
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
  });

  it('is undefined outside a work tree: a plain directory, a missing one, inside .git', async function () {
    const plain = join(root, 'plain');
    mkdirSync(plain);
    if (spawnSync('git', ['rev-parse'], { cwd: plain }).status === 0) this.skip(); // the temp dir is itself in a repo
    assert.equal(await gitState(plain), undefined);
    assert.equal(await gitState(join(root, 'missing')), undefined);
    assert.equal(await gitState(join(repo, '.git')), undefined);
  });

  it('is undefined for a repository without a commit', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    git(empty, 'init', '-q');
    writeFileSync(join(empty, 'a.py'), '');
    assert.equal(await gitState(empty), undefined);
  });

  it('is undefined when git is missing, and never throws', async () => {
    assert.equal(await gitState(repo, { git: join(root, 'no-such-git') }), undefined);
    assert.equal(await gitState(repo, { git: '' }), undefined);
    assert.equal(await gitState('\0bad'), undefined);
  });

  it('gives up after the timeout without throwing', async () => {
    const result = await gitState(repo, { timeoutMs: 1 });
    // Whatever finished in 1 ms: nothing, or a state that does not claim a clean tree it did not check.
    if (result !== undefined) assert.equal(result.commit, head);
  });
});
