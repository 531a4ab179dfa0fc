import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupMembers, WRAPPER } from '../../../runner/src/local/detached-process';
import { waitFor } from '../../support/daemon-harness';
import { launchScript, parsePoll, pollScript, REMOTE_READ_LIMIT, setupScript } from '../../../runner/src/hosts/ssh/remote-scripts';

/** Runs a script the way an SSH host does: on the standard input of `sh -s`. */
function runScript(script: string, cwd: string): { code: number | null; stdout: Buffer; stderr: string } {
  const result = spawnSync('sh', ['-s'], { input: script, cwd });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

describe('the scripts run on SSH hosts (here, by a local sh)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'drover-remote-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('launches an attempt detached, with its environment as data, and polls its output, metrics and exit status', async () => {
    const attempt = join(dir, 'runs', '7', '1');
    const marker = join(dir, 'pwned');
    const env = { EVIL: `$(touch ${marker}) \`touch ${marker}\` 'q' "d"\nline`, DROVER_METRICS: join(attempt, 'metrics.jsonl') };
    const command = 'printf "%s\\n" "$EVIL"; echo \'{"step": 1, "loss": 2}\' >> "$DROVER_METRICS"; exit 4';
    const shipped = `it's "data": $(touch ${marker})\n\\ \``;
    const launched = runScript(launchScript({ dir: attempt, cwd: dir, command, env, wrapper: WRAPPER, files: { 'helper.py': shipped } }), dir);
    assert.equal(launched.code, 0, launched.stderr);
    assert.equal(readFileSync(join(attempt, 'helper.py'), 'utf8'), shipped, 'a shipped file arrives byte for byte');
    const pid = Number(launched.stdout.toString().trim());
    assert.ok(pid > 0);
    const poll = () => parsePoll(runScript(pollScript([{ key: '7', dir: attempt, logOffset: 0, metricsOffset: 0, cellsOffset: 0 }]), dir).stdout).get('7')!;
    await waitFor('the attempt to end', () => !poll().alive);
    const first = poll();
    assert.equal(first.exitStatus, 4);
    assert.equal(first.pid, pid);
    assert.equal(first.log.toString(), `${env.EVIL}\n`);
    assert.equal(first.metrics.toString(), '{"step": 1, "loss": 2}\n');
    assert.ok(!existsSync(marker), 'nothing in the environment was executed');
    // From an offset, only what is new.
    const rest = parsePoll(runScript(pollScript([{ key: '7', dir: attempt, logOffset: 10, metricsOffset: first.metrics.length, cellsOffset: 0 }]), dir).stdout).get('7')!;
    assert.equal(rest.log.toString(), `${env.EVIL}\n`.slice(10));
    assert.equal(rest.metrics.length, 0);
  });

  it('frames binary output exactly and reads a long log in bounded pieces', () => {
    const attempt = join(dir, 'a');
    mkdirSync(attempt);
    const log = Buffer.alloc(REMOTE_READ_LIMIT + 1000);
    for (let i = 0; i < log.length; i++) log[i] = (i * 7) % 256;
    writeFileSync(join(attempt, 'output.log'), log);
    const polled = [{ key: 'x', dir: attempt, logOffset: 0, metricsOffset: 0, cellsOffset: 0 }, { key: 'missing', dir: join(dir, 'nothing'), logOffset: 0, metricsOffset: 0, cellsOffset: 0 }];
    const answers = parsePoll(runScript(pollScript(polled), dir).stdout);
    assert.equal(answers.get('x')!.log.length, REMOTE_READ_LIMIT);
    assert.ok(answers.get('x')!.log.equals(log.subarray(0, REMOTE_READ_LIMIT)));
    assert.equal(answers.get('x')!.exitStatus, null);
    assert.deepEqual(answers.get('missing'), { pid: null, alive: false, exitStatus: null, log: Buffer.alloc(0), metrics: Buffer.alloc(0), cells: Buffer.alloc(0) });
    const next = parsePoll(runScript(pollScript([{ ...polled[0]!, logOffset: REMOTE_READ_LIMIT }]), dir).stdout).get('x')!;
    assert.ok(next.log.equals(log.subarray(REMOTE_READ_LIMIT)));
  });

  it('signals the whole process group of an attempt from a poll', async () => {
    const attempt = join(dir, 'long');
    const launched = runScript(launchScript({ dir: attempt, cwd: dir, command: 'sleep 30 & sleep 30; wait', env: {}, wrapper: WRAPPER }), dir);
    const pid = Number(launched.stdout.toString().trim());
    await waitFor('its pid file', () => existsSync(join(attempt, 'pid')));
    const before = parsePoll(runScript(pollScript([{ key: 'l', dir: attempt, logOffset: 0, metricsOffset: 0, cellsOffset: 0 }]), dir).stdout).get('l')!;
    assert.equal(before.alive, true);
    runScript(pollScript([{ key: 'l', dir: attempt, logOffset: 0, metricsOffset: 0, cellsOffset: 0, signal: 'KILL' }]), dir);
    await waitFor('its process group to end', () => groupMembers(pid).length === 0);
  });

  it('runs a setup once per version, and reports the end of its output when it fails', () => {
    const version = join(dir, 'v1');
    mkdirSync(version);
    const setup = 'echo run >> count.txt';
    assert.equal(runScript(setupScript(version, setup, '.drover-setup-a'), dir).code, 0);
    assert.equal(runScript(setupScript(version, setup, '.drover-setup-a'), dir).code, 0);
    assert.equal(readFileSync(join(version, 'count.txt'), 'utf8'), 'run\n');
    const failed = runScript(setupScript(version, 'echo cannot install torch; exit 3', '.drover-setup-b'), dir);
    assert.equal(failed.code, 3);
    assert.match(failed.stdout.toString(), /cannot install torch/);
    assert.ok(!existsSync(join(version, '.drover-setup-b')), 'a failed setup runs again next time');
  });
});
