// The launcher process and the daemon's client of it, as the daemon uses them (needs dist/launcher.js).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LauncherClient, type LaunchCallbacks } from '../../runner/src/local/launcher-client';
import type { LaunchRequest } from '../../runner/src/local/launcher';
import { attemptFiles, procStatFields, readExitStatus, readWrapperPid, WRAPPER } from '../../runner/src/local/detached-process';
import { waitFor } from '../support/daemon-harness';

const ROOT = resolve(__dirname, '../../..');

/** The pids of this process's children whose command line holds `word` (Linux). */
function childrenRunning(word: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(procStatFields(`/proc/${entry}/stat`)[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(word)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Makes the first launch of a client, which starts its launcher process, and returns that process's pid. */
function firstLaunch(client: LauncherClient, request: Omit<LaunchRequest, 'id'>, callbacks: LaunchCallbacks, word: string): number {
  // Launchers of earlier tests may still be ending.
  const earlier = new Set(childrenRunning(word));
  client.launch(request, callbacks);
  const launcher = childrenRunning(word).find((pid) => !earlier.has(pid));
  assert.ok(launcher !== undefined, 'the launcher process is running');
  return launcher;
}

/**
 * Asks for a launch of `true`, which starts the client's launcher process, and kills that
 * process at once: node takes far longer to start than this, so the request stays unanswered.
 */
function startLauncher(client: LauncherClient, callbacks: LaunchCallbacks, attemptDir: string, word: string): number {
  const launcher = firstLaunch(client, { command: 'true', cwd: attemptDir, dir: join(attemptDir, 'attempt'), env: {} }, callbacks, word);
  process.kill(launcher, 'SIGKILL');
  return launcher;
}

/** Callbacks that record what happened to one launch. */
function recorder() {
  const seen: { started?: number; failed?: string; exited: boolean } = { exited: false };
  const callbacks: LaunchCallbacks = {
    started: (pid) => (seen.started = pid),
    failed: (message) => (seen.failed = message),
    exited: () => (seen.exited = true),
  };
  return { seen, callbacks };
}

describe('launcher', function () {
  // What the launcher process's command line holds.
  const word = 'drover-launcher';
  let dir: string;
  let client: LauncherClient;

  before(function () {
    if (!existsSync(join(ROOT, 'dist/launcher.js'))) throw new Error('dist/launcher.js is missing: run `npm run build` first');
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-launcher-'));
    client = new LauncherClient();
  });
  afterEach(() => {
    client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a command detached, in its own session, with its output, pid and exit status in its folder', async () => {
    const attempt = join(dir, 'attempt');
    const { seen, callbacks } = recorder();
    client.launch({ command: 'echo "out $DROVER_X"; echo err >&2; exit 3', cwd: dir, dir: attempt, env: { DROVER_X: 'x' } }, callbacks);
    await waitFor('the wrapper to end', () => seen.exited || seen.failed);
    assert.equal(seen.failed, undefined);
    assert.ok(seen.started !== undefined && seen.started > 0);
    assert.equal(readWrapperPid(attempt), seen.started);
    assert.deepEqual(readExitStatus(attempt), { exitCode: 3 });
    assert.equal(readFileSync(attemptFiles(attempt).log, 'utf8'), 'out x\nerr\n');
    // Pid and status in one file: the attempt's folder holds two new files, not three.
    assert.equal(readFileSync(attemptFiles(attempt).wrapper, 'utf8'), `${seen.started}\n3\n`);
    assert.deepEqual(readdirSync(attempt).sort(), ['output.log', 'wrapper']);
  });

  it('runs no command whose pid it cannot write (a full disk), so no status is ever read as a pid', function () {
    if (!existsSync('/dev/full')) this.skip();
    // /dev/full refuses every write with ENOSPC; the status goes to a file of its own here, to show none is written.
    const status = join(dir, 'status');
    const ran = join(dir, 'ran');
    const result = spawnSync('/bin/sh', ['-c', WRAPPER], { env: { ...process.env, DROVER_COMMAND: `touch '${ran}'`, DROVER_PID_FILE: '/dev/full', DROVER_STATUS_FILE: status }, encoding: 'utf8' });
    assert.equal(result.status, 125, result.stderr);
    assert.ok(!existsSync(ran), 'the command did not run');
    assert.ok(!existsSync(status), 'no status was written');
    // And with a pid file it can write, the same command runs and its status follows the pid.
    const wrapper = join(dir, 'wrapper');
    const ok = spawnSync('/bin/sh', ['-c', WRAPPER], { env: { ...process.env, DROVER_COMMAND: `touch '${ran}'`, DROVER_PID_FILE: wrapper, DROVER_STATUS_FILE: wrapper }, encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(existsSync(ran));
    assert.match(readFileSync(wrapper, 'utf8'), /^\d+\n0\n$/);
  });

  it('reads the pid and exit status an earlier wrapper wrote to two files', () => {
    const attempt = join(dir, 'earlier');
    mkdirSync(attempt);
    writeFileSync(join(attempt, 'pid'), '4242\n');
    assert.equal(readWrapperPid(attempt), 4242);
    assert.equal(readExitStatus(attempt), undefined, 'still running');
    writeFileSync(join(attempt, 'exit-status'), '137\n');
    assert.deepEqual(readExitStatus(attempt), { exitCode: 137, signal: 'SIGKILL' });
  });

  it('passes commands, folders and environment values byte for byte', async () => {
    const cwd = join(dir, 'wörk dir');
    mkdirSync(cwd);
    const attempt = join(dir, 'attempt ü');
    const { seen, callbacks } = recorder();
    const value = 'a "quoted" \'value\'\nover two lines\twith a tab \\ ☃';
    client.launch({ command: 'printf "%s|%s|" "$DROVER_V" "$(pwd)"; echo ✓', cwd, dir: attempt, env: { DROVER_V: value } }, callbacks);
    await waitFor('the wrapper to end', () => seen.exited || seen.failed);
    assert.equal(seen.failed, undefined);
    assert.equal(readFileSync(attemptFiles(attempt).log, 'utf8'), `${value}|${cwd}|✓\n`);
  });

  it('refuses a launch in a folder that does not exist, and the same launcher goes on launching', async function () {
    if (process.platform !== 'linux') this.skip();
    const missing = recorder();
    const launcher = firstLaunch(client, { command: 'true', cwd: join(dir, 'missing'), dir: join(dir, 'a1'), env: {} }, missing.callbacks, word);
    await waitFor('the launch to fail', () => missing.seen.failed);
    assert.equal(missing.seen.started, undefined);
    const next = recorder();
    client.launch({ command: 'true', cwd: dir, dir: join(dir, 'a2'), env: {} }, next.callbacks);
    await waitFor('the wrapper to end', () => next.seen.exited || next.seen.failed);
    assert.deepEqual(readExitStatus(join(dir, 'a2')), { exitCode: 0 });
    assert.ok(childrenRunning(word).includes(launcher), 'the launcher that refused the first launch started the second');
  });

  it('makes the folders of an attempt, and refuses one it cannot make', async () => {
    const deep = join(dir, 'runs', '7', '1');
    const made = recorder();
    client.launch({ command: 'true', cwd: dir, dir: deep, env: {} }, made.callbacks);
    await waitFor('the wrapper to end', () => made.seen.exited || made.seen.failed);
    assert.deepEqual(readExitStatus(deep), { exitCode: 0 });
    writeFileSync(join(dir, 'file'), '');
    const refused = recorder();
    client.launch({ command: 'true', cwd: dir, dir: join(dir, 'file', '1'), env: {} }, refused.callbacks);
    await waitFor('the launch to fail', () => refused.seen.failed);
    assert.equal(refused.seen.started, undefined);
  });

  it('starts the wrapper as the leader of a new session and process group', async function () {
    if (process.platform !== 'linux') this.skip();
    const attempt = join(dir, 'attempt');
    const { seen, callbacks } = recorder();
    // $$ is the wrapper's shell.
    client.launch({ command: 'read -r stat < /proc/$$/stat; echo "$stat"', cwd: dir, dir: attempt, env: {} }, callbacks);
    await waitFor('the wrapper to end', () => seen.exited || seen.failed);
    const [, , pgid, sid] = procStatFields(attemptFiles(attempt).log).map(Number);
    assert.equal(pgid, seen.started);
    assert.equal(sid, seen.started);
  });

  it('reports death by signal as the shell does', async () => {
    const attempt = join(dir, 'attempt');
    const { seen, callbacks } = recorder();
    client.launch({ command: "sh -c 'kill -TERM $$'", cwd: dir, dir: attempt, env: {} }, callbacks);
    await waitFor('the wrapper to end', () => seen.exited || seen.failed);
    assert.deepEqual(readExitStatus(attempt), { exitCode: 143, signal: 'SIGTERM' });
  });

  it('leaves a launch pending at close alone when the launcher then ends (the next daemon recovers it)', async function () {
    if (process.platform !== 'linux') this.skip();
    const { seen, callbacks } = recorder();
    const launcher = startLauncher(client, callbacks, dir, word);
    client.close();
    await waitFor('the launcher to end', () => !childrenRunning(word).includes(launcher));
    // Its exit is handled on the next turns of the event loop.
    await new Promise((done) => setTimeout(done, 100));
    assert.deepEqual(seen, { exited: false });
  });

  it('reports a launch that the launcher never answered as failed while open', async function () {
    if (process.platform !== 'linux') this.skip();
    const { seen, callbacks } = recorder();
    startLauncher(client, callbacks, dir, word);
    await waitFor('the launch to fail', () => seen.failed);
    assert.equal(seen.started, undefined);
  });
});
