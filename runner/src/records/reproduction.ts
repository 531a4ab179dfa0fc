/**
 * What a run record keeps so the run can be reproduced: the state of the code's git work tree,
 * and the environment with its secrets taken out.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';

export interface GitState {
  /** The full hash of HEAD. */
  commit: string;
  /** The work tree differs from HEAD: changed, staged, deleted, or untracked (not ignored) files. */
  dirty: boolean;
  /**
   * When dirty: sha256 (hex) of `git diff HEAD` (with --binary, so binary changes count) and the
   * names of the untracked files. Two runs with the same commit and diffHash ran the same tracked
   * code; untracked files count by name only (their contents may be large data). Absent when the
   * diff could not be taken in time, and then `dirty` is true: unverified is never called clean.
   */
  diffHash?: string;
  /** The checked-out branch; absent on a detached HEAD. */
  branch?: string;
}

export interface GitStateOptions {
  /** Limit for each git command, in ms (default 10 s). */
  timeoutMs?: number;
  /** The git executable (default `git` on PATH). */
  git?: string;
}

/**
 * Options that pin the diff's text, so that the hash depends on the changes and not on the
 * user's git configuration (prefixes, renames, algorithm, context, external diff tools…).
 * Settings newer than git 1.8 (still found on cluster login nodes) go in as `-c`, which an older
 * git ignores, rather than as flags it would refuse.
 */
const DIFF_ARGS = [
  '-c', 'core.quotePath=true', '-c', 'diff.indentHeuristic=true',
  'diff', 'HEAD', '--binary', '--full-index', '--no-color', '--no-ext-diff', '--no-textconv',
  '--no-renames', '--src-prefix=a/', '--dst-prefix=b/', '--diff-algorithm=myers',
  '--unified=3', '--inter-hunk-context=0', '--submodule=short',
];

/** Variables that would point git at another repository than the one at `dir`. */
const REPOSITORY_VARIABLES = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR', 'GIT_NAMESPACE'];

function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_OPTIONAL_LOCKS: '0', GIT_TERMINAL_PROMPT: '0' };
  // GIT_OPTIONAL_LOCKS=0: reading the state must not take index.lock and race the user's own git.
  for (const name of REPOSITORY_VARIABLES) delete env[name];
  return env;
}

/** Runs git; its stdout, or undefined when it fails, times out or cannot start. Never rejects. */
function git(dir: string, args: string[], options: Required<GitStateOptions>): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      execFile(
        options.git,
        ['-C', dir, ...args],
        { env: gitEnv(), timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024, windowsHide: true },
        (error, stdout) => resolve(error ? undefined : stdout),
      );
    } catch {
      resolve(undefined); // e.g. a dir that is not a valid argument
    }
  });
}

/**
 * sha256 of `git diff HEAD` and the untracked names, and whether either is non-empty; undefined
 * when git fails. The diff is streamed into the hash: it can be far larger than any buffer.
 */
function hashChanges(top: string, untracked: string, options: Required<GitStateOptions>): Promise<{ hash: string; changed: boolean } | undefined> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let diffBytes = 0;
    let settled = false;
    const finish = (result: { hash: string; changed: boolean } | undefined) => {
      if (!settled) {
        settled = true;
        resolve(result);
      }
    };
    try {
      const child = spawn(options.git, ['-C', top, ...DIFF_ARGS], {
        env: gitEnv(),
        timeout: options.timeoutMs,
        stdio: ['ignore', 'pipe', 'ignore'],
        windowsHide: true,
      });
      child.stdout.on('data', (chunk: Buffer) => {
        diffBytes += chunk.length;
        hash.update(chunk);
      });
      child.on('error', () => finish(undefined));
      child.on('close', (code) => {
        if (code !== 0) return finish(undefined); // also a kill by the timeout (code null)
        // A separator that cannot occur in a diff, then the NUL-terminated names, sorted by git.
        hash.update(`\0untracked\0${untracked}`);
        finish({ hash: hash.digest('hex'), changed: diffBytes > 0 || untracked !== '' });
      });
    } catch {
      finish(undefined);
    }
  });
}

/**
 * The git state of the work tree that holds `dir`, or undefined when `dir` is not in a git work
 * tree, HEAD has no commit yet, or git is missing. Never throws; each git command has a timeout.
 */
export async function gitState(dir: string, options: GitStateOptions = {}): Promise<GitState | undefined> {
  const opts: Required<GitStateOptions> = { timeoutMs: options.timeoutMs ?? 10_000, git: options.git ?? 'git' };
  // Work from the top level: untracked files are listed relative to the directory git runs in.
  const top = (await git(dir, ['rev-parse', '--show-toplevel'], opts))?.trim();
  if (!top) return undefined;

  const [commit, branch, untracked] = await Promise.all([
    git(top, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], opts),
    git(top, ['symbolic-ref', '--quiet', '--short', 'HEAD'], opts),
    git(top, ['ls-files', '--others', '--exclude-standard', '-z'], opts),
  ]);
  if (!commit?.trim()) return undefined;

  const state: GitState = { commit: commit.trim(), dirty: true };
  if (branch?.trim()) state.branch = branch.trim();
  const changes = untracked === undefined ? undefined : await hashChanges(top, untracked, opts);
  if (changes) {
    state.dirty = changes.changed;
    if (changes.changed) state.diffHash = changes.hash;
  }
  return state;
}

export const REDACTED = '***redacted***';

/**
 * Names that look like they hold secrets, matched case-insensitively. Broad on purpose: hiding a
 * harmless value costs little, recording a token in a run record leaks it. Two exceptions keep
 * common, harmless ML settings: TOKENIZERS_PARALLELISM (Hugging Face) and GIT_AUTHOR_* (CI).
 */
const SECRET_NAME = new RegExp(
  [
    'TOKEN(?!IZ)', // GITHUB_TOKEN, HF_TOKEN, but not TOKENIZERS_PARALLELISM
    'SECRET',
    'PASSWORD', // also PGPASSWORD
    'PASSWD',
    'PASSPHRASE',
    'API_?KEY',
    'ACCESS_?KEY',
    'PRIVATE_?KEY',
    'CREDENTIAL', // and CREDENTIALS
    'AUTH(?!OR(?!IZ))', // AUTH, OAUTH, AUTHORIZATION, BASIC_AUTH, but not GIT_AUTHOR_NAME
    '(?:^|[_.-])KEYS?$', // *_KEY: STRIPE_KEY, SSH_KEY; not KEY_PATH or KEYBOARD
  ].join('|'),
  'i',
);

/** Whether an environment variable's name looks like it holds a secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** A copy of `env` with the values of secret-looking names replaced by REDACTED. */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  // fromEntries defines own properties, so even a variable named __proto__ is copied as data.
  return Object.fromEntries(Object.entries(env).map(([name, value]) => [name, isSecretName(name) ? REDACTED : value]));
}
