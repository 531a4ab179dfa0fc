/**
 * Incremental upload of a job's workdir to an SSH host, over SFTP.
 *
 * Layout under `remoteRoot` (one directory per project and host, see `projectId`):
 *
 *   tree/                 the working mirror; only this module writes it
 *   manifest.json         what tree/ holds: { version, treeHash, files: [[path, sha256, mode], ...] }
 *   versions/<treeHash>/  immutable snapshots of tree/, made with hard links; runs execute here
 *   incoming/<syncId>/    uploads land here first, then are renamed into tree/
 *
 * Why this shape: a run executes in versions/<hash>, whose files share inodes with tree/. A later
 * sync therefore never writes into a file of tree/: it uploads to incoming/ and renames over the
 * old name, which leaves the inode the snapshots hold untouched. A mode change is an upload too
 * (chmod would change the shared inode).
 *
 * Crash safety: manifest.json is replaced (temp + rename) before the mirror changes, with every path
 * about to change marked unknown, and again after, with the new hashes. An interrupted sync thus
 * leaves a manifest that makes the next sync redo exactly what may be half done. A missing or
 * unreadable manifest means the mirror is unknown: it is wiped and uploaded in full.
 *
 * Old snapshots: after each sync the newest 5 (by mtime; the current one is touched) are kept, and
 * older ones are removed unless a process on the host has its working directory inside them
 * (checked through /proc, so a running job keeps its snapshot on Linux).
 *
 * An unchanged tree costs one command on the host (check the manifest's tree hash, keep the
 * snapshot); a changed one a few more plus one SFTP request per changed file, 16 files in flight.
 *
 * Remote requirements: a POSIX `sh`, GNU coreutils' `cp -al` and `mv -T`, `find`.
 * Every command runs under `sh -c`, so the login shell's flavor does not matter, and every value in
 * it is quoted with `shellWord`.
 *
 * Two syncs of the same `remoteRoot` over one SFTP session are serialized here; syncs of one mirror
 * from two connections or two daemons are not, so callers keep one sync per project and host.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { shellWord } from '../../../../common/spec';
import { buildManifest, forEachLimited, treeHashOf, WorkdirError } from './workdir-manifest';

export interface ExecResult {
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface SyncOptions {
  localDir: string;
  /** Absolute path on the host, e.g. /home/u/.drover/projects/<projectId>. */
  remoteRoot: string;
  /**
   * An SFTP session on a connection with TCP_NODELAY (`client.setNoDelay(true)`): without it, small
   * requests often wait 40 ms for a delayed ACK, which makes syncs several times slower.
   */
  sftp: SFTPWrapper;
  /** Runs a command on the host (through the login shell, as `ssh host command` does). */
  exec: (command: string) => Promise<ExecResult>;
  /** The local hash cache (see buildManifest). */
  cacheFile?: string;
  /** Upload progress: files done of files to upload. */
  onProgress?: (done: number, total: number) => void;
}

export interface SyncResult {
  treeHash: string;
  /** The snapshot directory the run uses: `<remoteRoot>/versions/<treeHash>`. */
  remoteDir: string;
  /** Files in the tree. */
  files: number;
  uploadedFiles: number;
  uploadedBytes: number;
  deletedFiles: number;
  ms: number;
}

export class WorkdirSyncError extends Error {}

/** Snapshots kept after a sync, besides those a process still runs in. */
export const KEPT_VERSIONS = 5;
const UPLOAD_CONCURRENCY = 16;
/** Bytes per SFTP write request; several are in flight per file. */
const WRITE_CHUNK = 64 * 1024;
/** Larger files are read in blocks instead of whole. */
const BIG_FILE = 4 * 1024 * 1024;
const MAX_WRITES_IN_FLIGHT = 16;
/**
 * Budget for one command line, counted after `sh -c` quoting: sshd hands the command to the login
 * shell as one argument, and Linux caps one argument at 128 KiB.
 */
const COMMAND_BUDGET = 100_000;
/** One `rm` / `mkdir` statement's share of it. */
const LIST_BUDGET = 30_000;
const MANIFEST_VERSION = 1;

/**
 * A short stable directory name for a project on a host: `<basename>-<8 hex>`. With `owner` (the
 * daemon that syncs it), each daemon keeps a mirror of its own: a mirror has one writer, and two
 * daemons of one remote account (two Drover homes) may sync the same local path at once.
 */
export function projectId(localDir: string, hostName: string, owner?: string): string {
  const absolute = path.resolve(localDir);
  const digest = createHash('sha256').update(`${hostName}\0${absolute}${owner === undefined ? '' : `\0${owner}`}`).digest('hex').slice(0, 8);
  const base = path.basename(absolute).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]+/, '').slice(0, 32);
  return `${base || 'workdir'}-${digest}`;
}

interface RemoteEntry {
  hash: string;
  mode: number;
}

const running = new WeakMap<SFTPWrapper, Map<string, Promise<unknown>>>();

/** Uploads what changed in `localDir` to the host's mirror and returns the snapshot to run in. */
export async function syncWorkdir(options: SyncOptions): Promise<SyncResult> {
  if (!path.posix.isAbsolute(options.remoteRoot)) throw new WorkdirSyncError(`The remote project directory must be an absolute path, got ${JSON.stringify(options.remoteRoot)}.`);
  let perSession = running.get(options.sftp);
  if (!perSession) running.set(options.sftp, (perSession = new Map()));
  const key = path.posix.normalize(options.remoteRoot);
  const before = perSession.get(key) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(() => sync(options));
  perSession.set(key, mine);
  try {
    return await mine;
  } finally {
    if (perSession.get(key) === mine) perSession.delete(key);
  }
}

async function sync(options: SyncOptions): Promise<SyncResult> {
  const started = Date.now();
  const { sftp } = options;
  const root = path.posix.normalize(options.remoteRoot).replace(/\/$/, '') || '/';
  const at = (...parts: string[]) => path.posix.join(root, ...parts);
  const tree = at('tree');
  const manifestPath = at('manifest.json');
  const syncId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const incoming = at('incoming', syncId);

  const local = await buildManifest(options.localDir, options.cacheFile ? { cacheFile: options.cacheFile } : {});
  // The common case, an unchanged tree, in one round trip: if the mirror's manifest names this very
  // tree, that command also makes (or keeps) its snapshot and nothing else is needed.
  const current = await runScript(options.exec, snapshotScript(root, local.treeHash, syncId, true), `Checking ${manifestPath} on the host`);
  if (current) {
    const remoteDir = at('versions', local.treeHash);
    return { treeHash: local.treeHash, remoteDir, files: local.files.length, uploadedFiles: 0, uploadedBytes: 0, deletedFiles: 0, ms: Date.now() - started };
  }
  const remote = await readRemoteManifest(sftp, manifestPath);

  const localByPath = new Map(local.files.map((f) => [f.path, f]));
  const toUpload = local.files.filter((f) => {
    const had = remote?.get(f.path);
    return !had || had.hash !== f.hash || had.mode !== f.mode;
  });
  const toDelete = remote ? [...remote.keys()].filter((p) => !localByPath.has(p)) : [];
  const changes = toUpload.length > 0 || toDelete.length > 0 || !remote;

  let uploadedBytes = 0;
  const entries = new Map<string, RemoteEntry>(local.files.map((f) => [f.path, { hash: f.hash, mode: f.mode }]));
  if (changes) {
    if (remote) {
      // Mark what is about to change unknown first: an interruption then makes the next sync redo it
      // (upload what the tree holds, delete what it does not), whatever the files hold by then.
      const interim = new Map(remote);
      for (const f of toUpload) interim.set(f.path, { hash: '', mode: f.mode });
      for (const p of toDelete) interim.set(p, { hash: '', mode: remote.get(p)!.mode });
      await writeRemoteFile(sftp, manifestPath, `${manifestPath}.${syncId}.tmp`, manifestText('', interim));
    }

    const statements: string[] = [`mkdir -p -- ${shellWord(incoming)} ${shellWord(at('versions'))}`];
    // No manifest: whatever tree/ holds is unknown, so it is rebuilt from nothing.
    if (!remote) statements.push(`rm -rf -- ${shellWord(tree)}`);
    statements.push(`mkdir -p -- ${shellWord(tree)}`);
    statements.push(...listStatements('rm -rf --', toDelete.map((p) => path.posix.join(tree, p))));
    // A deleted file can leave an empty directory, which git would not have and a file may now need.
    if (toDelete.length) statements.push(`find ${shellWord(tree)} -mindepth 1 -type d -empty -delete`);
    statements.push(...listStatements('mkdir -p --', leafDirectories(toUpload.map((f) => f.path)).map((d) => path.posix.join(tree, d))));
    await runScripts(options.exec, statements, `Preparing ${tree} on the host`);

    let done = 0;
    options.onProgress?.(0, toUpload.length);
    await forEachLimited(toUpload, UPLOAD_CONCURRENCY, async (file, index) => {
      const temp = path.posix.join(incoming, String(index));
      const target = path.posix.join(tree, file.path);
      const sent = await uploadFile(sftp, path.join(local.root, ...file.path.split('/')), file.size, temp, target, file.mode);
      await renameOver(sftp, temp, target);
      if (sent.hash !== file.hash) entries.set(file.path, { hash: sent.hash, mode: file.mode }); // edited since the scan: the mirror holds what was sent
      uploadedBytes += sent.size;
      options.onProgress?.(++done, toUpload.length);
    }).catch(async (error: unknown) => {
      await options.exec(sh(`rm -rf -- ${shellWord(incoming)}`)).catch(() => undefined);
      throw error;
    });
  }

  const treeHash = treeHashOf([...entries].map(([p, e]) => ({ path: p, hash: e.hash, mode: e.mode })));
  if (changes || remoteTreeHash(remote) !== treeHash) {
    await writeRemoteFile(sftp, manifestPath, `${manifestPath}.${syncId}.tmp`, manifestText(treeHash, entries));
  }
  const remoteDir = at('versions', treeHash);
  await runScript(options.exec, snapshotScript(root, treeHash, syncId), `Making the snapshot ${remoteDir} on the host`);

  return {
    treeHash,
    remoteDir,
    files: entries.size,
    uploadedFiles: toUpload.length,
    uploadedBytes,
    deletedFiles: toDelete.length,
    ms: Date.now() - started,
  };
}

/** Exit status of the snapshot script when the mirror does not hold the tree it was asked for. */
const NOT_CURRENT = 86;

/**
 * The snapshot (if new), the cleanup of this sync's upload folder and of old snapshots. With
 * `ifCurrent`, only when manifest.json names this tree (else it exits NOT_CURRENT, changing nothing).
 */
function snapshotScript(root: string, treeHash: string, syncId: string, ifCurrent = false): string {
  const version = shellWord(treeHash);
  const temp = shellWord(`${treeHash}.tmp-${syncId}`);
  // manifestText writes treeHash second, so it lies within the file's first 200 bytes.
  const check = [
    `cd ${shellWord(root)} 2>/dev/null || exit ${NOT_CURRENT}`,
    `head -c 200 manifest.json 2>/dev/null | grep -qF ${shellWord(`"treeHash":"${treeHash}"`)} || exit ${NOT_CURRENT}`,
  ];
  return [
    ...(ifCurrent ? check : [`cd ${shellWord(root)} || exit 1`]),
    `rm -rf -- incoming/${shellWord(syncId)}`,
    'mkdir -p tree versions || exit 1',
    // cp -al then a rename: the snapshot appears whole or not at all. mv -T never moves into an
    // existing directory (another sync that made the same version first).
    `if [ ! -d versions/${version} ]; then`,
    `  cp -al tree versions/${temp} || { rm -rf versions/${temp}; exit 1; }`,
    `  mv -T versions/${temp} versions/${version} 2>/dev/null || rm -rf versions/${temp}`,
    'fi',
    // cp -a copied tree/'s mtime; the current snapshot must count as the newest.
    `touch versions/${version} || exit 1`,
    // Best effort from here: a failed cleanup does not fail the sync.
    "find . -maxdepth 1 -name 'manifest.json.*.tmp' -mmin +60 -exec rm -f {} + 2>/dev/null",
    'cd versions || exit 0',
    `old=$(ls -1t | grep -E '^[0-9a-f]{64}$' | tail -n +${KEPT_VERSIONS + 1})`,
    'if [ -n "$old" ]; then',
    '  here=$(pwd -P)',
    // Every process's working directory, in one `ls` (readlink per process would fork hundreds).
    '  inuse=$(ls -ld /proc/[0-9]*/cwd 2>/dev/null; true)',
    '  for v in $old; do',
    `    [ "$v" = ${version} ] && continue`,
    '    case "$inuse" in *"$here/$v"*) continue ;; esac',
    '    rm -rf -- "$v"',
    '  done',
    'fi',
    "find . -mindepth 1 -maxdepth 1 -name '*.tmp-*' -mmin +60 -exec rm -rf {} + 2>/dev/null",
    'find ../incoming -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null',
    'exit 0',
  ].join('\n');
}

/** The manifest as stored: a list, so any file name (even `__proto__`) is just data. */
function manifestText(treeHash: string, entries: Map<string, RemoteEntry>): string {
  const files = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([p, e]) => [p, e.hash, e.mode]);
  return JSON.stringify({ version: MANIFEST_VERSION, treeHash, files });
}

type RemoteManifest = Map<string, RemoteEntry> & { treeHash?: string };

function remoteTreeHash(remote: RemoteManifest | undefined): string | undefined {
  return remote?.treeHash;
}

/** The mirror's manifest, or undefined when missing or unreadable (the mirror is then unknown). */
async function readRemoteManifest(sftp: SFTPWrapper, file: string): Promise<RemoteManifest | undefined> {
  let text: Buffer;
  try {
    text = await new Promise<Buffer>((resolve, reject) => sftp.readFile(file, (err, data) => (err ? reject(err) : resolve(data))));
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text.toString('utf8')) as { version?: unknown; treeHash?: unknown; files?: unknown };
    if (parsed.version !== MANIFEST_VERSION || !Array.isArray(parsed.files)) return undefined;
    const manifest: RemoteManifest = new Map();
    for (const item of parsed.files as unknown[]) {
      if (!Array.isArray(item) || typeof item[0] !== 'string' || typeof item[1] !== 'string' || typeof item[2] !== 'number') return undefined;
      manifest.set(item[0], { hash: item[1], mode: item[2] });
    }
    if (typeof parsed.treeHash === 'string' && parsed.treeHash) manifest.treeHash = parsed.treeHash;
    return manifest;
  } catch {
    return undefined;
  }
}

/** The deepest directories holding the given files (mkdir -p makes their parents). */
function leafDirectories(files: readonly string[]): string[] {
  const dirs = new Set<string>();
  const ancestors = new Set<string>();
  for (const file of files) {
    let dir = path.posix.dirname(file);
    if (dir === '.') continue;
    dirs.add(dir);
    for (dir = path.posix.dirname(dir); dir !== '.' && !ancestors.has(dir); dir = path.posix.dirname(dir)) ancestors.add(dir);
  }
  return [...dirs].filter((dir) => !ancestors.has(dir)).sort();
}

/** Length a statement adds once the script is wrapped in `sh -c '...'`. */
function quotedCost(text: string): number {
  let quotes = 0;
  for (const char of text) if (char === "'") quotes += 1;
  return Buffer.byteLength(text) + 3 * quotes + 1;
}

/** `command word word ...` statements, each under LIST_BUDGET. */
function listStatements(command: string, words: readonly string[]): string[] {
  const statements: string[] = [];
  let current = '';
  for (const word of words) {
    const quoted = shellWord(word);
    if (current && quotedCost(current) + quotedCost(quoted) > LIST_BUDGET) {
      statements.push(current);
      current = '';
    }
    current = current ? `${current} ${quoted}` : `${command} ${quoted}`;
  }
  if (current) statements.push(current);
  return statements;
}

function sh(script: string): string {
  return `sh -c ${shellWord(script)}`;
}

/** Runs the statements in as few commands as fit the budget, stopping at the first failure. */
async function runScripts(exec: SyncOptions['exec'], statements: readonly string[], what: string): Promise<void> {
  const groups: string[][] = [];
  let cost = 0;
  for (const statement of statements) {
    const add = quotedCost(statement) + 4;
    if (!groups.length || cost + add > COMMAND_BUDGET) {
      groups.push([]);
      cost = 20;
    }
    groups[groups.length - 1]!.push(statement);
    cost += add;
  }
  // `set -e` with one statement a line: the first failing one ends the script.
  for (const group of groups) await runScript(exec, `set -e\n${group.join('\n')}`, what);
}

/** Runs one script; false when it exits NOT_CURRENT, an error for any other failure. */
async function runScript(exec: SyncOptions['exec'], script: string, what: string): Promise<boolean> {
  const result = await exec(sh(script)).catch((error: unknown) => {
    throw new WorkdirSyncError(`${what} failed: ${(error as Error).message}`);
  });
  if (result.code === NOT_CURRENT) return false;
  if (result.code !== 0) {
    const detail = result.stderr.toString('utf8').trim() || result.stdout.toString('utf8').trim();
    throw new WorkdirSyncError(`${what} failed (exit ${result.code ?? 'signal'})${detail ? `: ${detail}` : ''}`);
  }
  return true;
}

interface SftpError extends Error {
  code?: number | string;
}

/** An SFTP failure, named by the host path; status 4 (a bare "Failure") is usually a full disk. */
function sftpFailure(action: string, remotePath: string, error: unknown): WorkdirSyncError {
  const err = error as SftpError;
  const hint = err.code === 4 ? ' (the host disk may be full or over quota)' : '';
  return new WorkdirSyncError(`Cannot ${action} ${remotePath} on the host: ${err.message}${hint}`);
}

function call<T>(start: (cb: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))));
}

/**
 * Sends a local file to `temp` (created with `mode`; the host's umask applies, as on a git
 * checkout) and returns the hash and size of what was sent, read in the same pass.
 */
async function uploadFile(sftp: SFTPWrapper, localPath: string, expectedSize: number, temp: string, target: string, mode: number): Promise<{ hash: string; size: number }> {
  let local: fs.FileHandle | undefined;
  let data: Buffer | undefined;
  try {
    // Small files whole and synchronously (several times faster than fs.promises for 1 KiB files).
    if (expectedSize <= BIG_FILE) data = readFileSync(localPath);
    else local = await fs.open(localPath, 'r');
  } catch (error) {
    await local?.close().catch(() => undefined);
    throw localReadError(localPath, error);
  }

  let handle: Buffer;
  try {
    handle = await call<Buffer>((cb) => sftp.open(temp, 'w', { mode }, cb));
  } catch (error) {
    await local?.close().catch(() => undefined);
    throw sftpFailure('create', temp, error);
  }
  const hash = createHash('sha256');
  let size = 0;
  const writes: Promise<void>[] = [];
  let writeError: unknown;
  const write = (chunk: Buffer, position: number) => {
    writes.push(call<void>((cb) => sftp.write(handle, chunk, 0, chunk.length, position, cb)).catch((error: unknown) => void (writeError ??= error)));
  };
  let readError: unknown;
  try {
    if (data) {
      hash.update(data);
      size = data.length;
      for (let offset = 0; offset < data.length; offset += WRITE_CHUNK) write(data.subarray(offset, offset + WRITE_CHUNK), offset);
    } else {
      while (!writeError) {
        const block = Buffer.allocUnsafe(WRITE_CHUNK);
        const { bytesRead } = await local!.read(block, 0, block.length, size);
        if (bytesRead === 0) break;
        hash.update(block.subarray(0, bytesRead));
        write(block.subarray(0, bytesRead), size);
        size += bytesRead;
        if (writes.length >= MAX_WRITES_IN_FLIGHT) await writes[writes.length - MAX_WRITES_IN_FLIGHT];
      }
    }
  } catch (error) {
    readError = error;
  } finally {
    await local?.close().catch(() => undefined);
  }
  // The close goes right behind the writes, without waiting: a server handles one handle's requests in order.
  const closed = call<void>((cb) => sftp.close(handle, cb)).then(() => undefined, (error: unknown) => error);
  await Promise.all(writes);
  const closeError = await closed;
  if (readError) throw localReadError(localPath, readError);
  if (writeError ?? closeError) throw sftpFailure('write', `${target} (uploading to ${temp})`, writeError ?? closeError);
  return { hash: hash.digest('hex'), size };
}

function localReadError(localPath: string, error: unknown): WorkdirError {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new WorkdirError(`${localPath} disappeared during the sync; sync again.`);
  return new WorkdirError(`Cannot read ${localPath}: ${(error as Error).message}`);
}

/** Atomic replace (posix-rename@openssh.com); plain SFTP rename cannot overwrite, so it unlinks first. */
async function renameOver(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await call<void>((cb) => sftp.ext_openssh_rename(from, to, cb));
    return;
  } catch (error) {
    if (!/does not support/.test((error as Error).message)) throw sftpFailure('rename into place', to, error);
  }
  await call<void>((cb) => sftp.unlink(to, cb)).catch(() => undefined);
  await call<void>((cb) => sftp.rename(from, to, cb)).catch((error: unknown) => {
    throw sftpFailure('rename into place', to, error);
  });
}

/** Writes a small file atomically: to `temp`, then renamed over `file`. */
async function writeRemoteFile(sftp: SFTPWrapper, file: string, temp: string, text: string): Promise<void> {
  await call<void>((cb) => sftp.writeFile(temp, text, cb)).catch((error: unknown) => {
    throw sftpFailure('write', temp, error);
  });
  await renameOver(sftp, temp, file);
}

export { WorkdirError } from './workdir-manifest';
