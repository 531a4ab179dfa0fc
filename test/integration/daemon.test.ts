import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { createMessageConnection, SocketMessageReader, SocketMessageWriter } from 'vscode-jsonrpc/node';
import { PROTOCOL_VERSION, type JobDetail, type JobView } from '../../common/protocol';
import { readDashboardMetrics } from '../../extension/src/dashboard/dashboard-data';
import { DaemonClient, untilReady } from '../../common/node/daemon-client';
import { daemonPaths } from '../../common/node/daemon-paths';
import { groupMembers, processRunning } from '../../runner/src/local/detached-process';
import { DaemonHarness, ROOT, waitFor } from '../support/daemon-harness';

/** Submits a spec text and returns its runs. */
async function submit(harness: DaemonHarness, specText: string, cwd = ROOT): Promise<JobView[]> {
  const client = await harness.client();
  try {
    return (await client.request('drover/submit', { specText, cwd })).jobs;
  } finally {
    client.close();
  }
}

async function job(harness: DaemonHarness, id: number): Promise<JobDetail> {
  const client = await harness.client();
  try {
    return await client.request('drover/job', { id });
  } finally {
    client.close();
  }
}

function untilState(harness: DaemonHarness, id: number, states: JobView['state'][], timeoutMs?: number): Promise<JobDetail> {
  return waitFor(`run ${id} to be ${states.join(' or ')}`, async () => {
    const detail = await job(harness, id);
    return states.includes(detail.state) ? detail : undefined;
  }, timeoutMs);
}

const alive = processRunning;

/** The TCP ports a process listens on, from its open sockets and the kernel's socket tables. */
function listeningTcpPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // Closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // st 0A is LISTEN; the local address ends in the port, in hex.
      if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

describe('runner daemon', function () {
  this.timeout(60_000);
  let harness: DaemonHarness;

  afterEach(async () => harness?.dispose());

  describe('running', () => {
    it('runs a command, streams its output and exits with its exit code', async () => {
      harness = new DaemonHarness();
      const ok = await harness.cli(['run', '--wait', '--', 'sh', '-c', 'echo hello from drover; echo to stderr >&2']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /hello from drover\nto stderr\n/);
      assert.match(ok.stderr, /succeeded/);
      const failed = await harness.cli(['run', '--wait', '--', 'sh', '-c', 'echo failing; exit 3']);
      assert.equal(failed.code, 3);
      assert.match(failed.stderr, /failed: exited with code 3/);
    });

    it('runs the example sweep end to end and records metrics and what reproduces each run', async () => {
      harness = new DaemonHarness();
      const result = await harness.cli(['submit', '--wait', '-p', 'seed=0', 'examples/train.drover.yaml']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /submitted lr-sweep: 3 runs/);
      assert.match(result.stderr, /^3 runs: 3 succeeded$/m);
      const runs = JSON.parse((await harness.cli(['runs', '--json'])).stdout) as JobView[];
      assert.deepEqual(runs.map((run) => run.state), ['succeeded', 'succeeded', 'succeeded']);
      const id = runs.find((run) => run.params['lr'] === 0.3)!.id;
      const metrics = JSON.parse((await harness.cli(['metrics', '--json', String(id)])).stdout) as { name: string; points: { step: number; value: number }[] }[];
      const accuracy = metrics.find((series) => series.name === 'val_acc')!;
      assert.equal(accuracy.points.length, 20, 'one validation point per epoch, counted once');
      assert.ok(accuracy.points.at(-1)!.value > 0.85);
      const detail = await job(harness, id);
      assert.equal(detail.command, 'python3 train.py --lr 0.3 --seed 0 --out outputs/lr0.3-s0');
      assert.equal(detail.record.workdir, join(ROOT, 'examples'));
      assert.equal(detail.record.specPath, join(ROOT, 'examples/train.drover.yaml'));
      assert.deepEqual(detail.record.overrides, { seed: 0 });
      assert.match(detail.record.git?.commit ?? 'no git', /^[0-9a-f]{40}$|no git/);
      rmSync(join(ROOT, 'examples/outputs'), { recursive: true, force: true });
    });

    it('records metrics from ::metric lines and from $DROVER_METRICS, and resumes logs at an offset', async () => {
      harness = new DaemonHarness();
      const script = `echo '::metric step=1 loss=0.5'; echo '::metric step=2 loss=0.25'; printf '{"step": 3, "acc": 0.9}\\n' >> "$DROVER_METRICS"; echo done`;
      const [run] = await submit(harness, `name: metrics\nrun: ${JSON.stringify(script)}\n`);
      await untilState(harness, run!.id, ['succeeded']);
      const client = await harness.client();
      const series = await client.request('drover/metrics', { id: run!.id });
      assert.deepEqual(
        series.map(({ name, points }) => [name, points.map((point) => [point.step, point.value])]),
        [['loss', [[1, 0.5], [2, 0.25]]], ['acc', [[3, 0.9]]]],
      );
      const cut = await client.request('drover/metrics', { id: run!.id, names: ['loss'], range: { axis: 'step', min: 2, max: 10 }, maxPoints: 4 });
      assert.deepEqual(cut.map(({ name, points, total }) => [name, total, points.map((point) => point.step)]), [['loss', 1, [2]]]);
      await assert.rejects(client.request('drover/metrics', { id: run!.id, maxPoints: 1 }), /maxPoints must be at least 4/);
      // Several runs at once, as a dashboard asks: each as drover/metrics answers it; a run without points has none.
      const runs = await client.request('drover/runMetrics', { ids: [run!.id, run!.id + 1000], names: ['loss'], maxPoints: 4 });
      assert.deepEqual(runs, [{ jobId: run!.id, series: series.filter((entry) => entry.name === 'loss') }, { jobId: run!.id + 1000, series: [] }]);
      await assert.rejects(client.request('drover/runMetrics', { ids: [run!.id], maxPoints: 2 }), /maxPoints must be at least 4/);
      await assert.rejects(client.request('drover/runMetrics', { ids: 'all' as unknown as number[] }), /ids must be a list of run ids/);
      // What a dashboard's snapshot holds: the charted run's series, every run's summaries.
      const dashboard = await readDashboardMetrics(client, [run!.id, run!.id + 1000], [run!.id]);
      assert.deepEqual(dashboard.series.map((entry) => [entry.jobId, entry.name, entry.value, entry.total]), [[run!.id, 'loss', [0.5, 0.25], 2], [run!.id, 'acc', [0.9], 1]]);
      assert.deepEqual(dashboard.summaries.map((summary) => [summary.jobId, summary.name, summary.count]), [[run!.id, 'loss', 2], [run!.id, 'acc', 1]]);
      // In brief, for the runs table: no points read.
      assert.deepEqual(await client.request('drover/metricSummaries', { ids: [run!.id + 1000, run!.id] }), [
        { jobId: run!.id, name: 'loss', count: 2, last: 0.25, min: 0.25, max: 0.5 },
        { jobId: run!.id, name: 'acc', count: 1, last: 0.9, min: 0.9, max: 0.9 },
      ]);
      const whole = await client.request('drover/logs', { id: run!.id });
      assert.equal(whole.data, '::metric step=1 loss=0.5\n::metric step=2 loss=0.25\ndone\n');
      assert.equal(whole.complete, true);
      const rest = await client.request('drover/logs', { id: run!.id, offset: 25 });
      assert.equal(rest.data, '::metric step=2 loss=0.25\ndone\n');
      assert.equal(rest.offset, 25);
      client.close();
    });

    it('follows a running job\'s log to its end, and shows what reproduces it', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, 'name: chatty\nrun: "for i in 1 2 3; do echo line $i; echo \'::metric step=\'$i\' loss=0.\'$i; sleep 0.3; done; exit 5"\nresources: { cpus: 0.1 }\n');
      await untilState(harness, run!.id, ['running']);
      const followed = await harness.cli(['logs', '-f', String(run!.id)]);
      assert.equal(followed.code, 5, 'logs -f exits with the run\'s exit code');
      assert.equal(followed.stdout, 'line 1\n::metric step=1 loss=0.1\nline 2\n::metric step=2 loss=0.2\nline 3\n::metric step=3 loss=0.3\n');
      const metrics = await harness.cli(['metrics', String(run!.id)]);
      assert.match(metrics.stdout, /^METRIC\s+POINTS\s+LAST\s+MIN\s+MAX\nloss\s+3\s+0\.3 @ step 3\s+0\.1\s+0\.3$/m);
      const show = await harness.cli(['show', String(run!.id)]);
      assert.match(show.stdout, /^state\s+failed \(exited with code 5\)$/m);
      assert.match(show.stdout, /^attempt 1\s+failed, exit 5, \d+s on local; log .*output\.log$/m);
      assert.match(show.stdout, /^submitted at\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
      assert.match(show.stdout, /^ended\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(ran \ds\)$/m);
      assert.match(show.stdout, /^env\s+\d+ variables as submitted; drover show --json lists them$/m);
      const ps = await harness.cli(['ps']);
      assert.equal(ps.stdout.trim(), 'nothing queued or running');
      const queue = await harness.cli(['queue']);
      assert.deepEqual([queue.code, queue.stdout], [ps.code, ps.stdout], '`drover queue` is `drover ps`');
    });

    it('records the environment a run was submitted with, secret-looking values redacted', async () => {
      harness = new DaemonHarness();
      const ran = await harness.cli(['run', '--wait', '--', 'true'], ROOT, { HF_TOKEN: 'hf_do_not_keep', DROVER_TEST_NOTE: 'kept' });
      assert.equal(ran.code, 0, ran.stderr);
      const shown = await harness.cli(['show', '1']);
      assert.match(shown.stdout, /^env\s+\d+ variables as submitted, \d+ redacted \(names that look secret\); drover show --json lists them$/m);
      const record = (JSON.parse((await harness.cli(['show', '--json', '1'])).stdout) as JobDetail).record;
      assert.deepEqual([record.env['HF_TOKEN'], record.env['DROVER_TEST_NOTE']], ['***redacted***', 'kept']);
      assert.ok(!JSON.stringify(record).includes('hf_do_not_keep'), 'the secret is nowhere in the record');
    });

    it('records a metric on a last line written without a line end', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, `name: tail\nrun: "printf '::metric step=7 acc=0.5'"\n`);
      await untilState(harness, run!.id, ['succeeded']);
      const client = await harness.client();
      const series = await client.request('drover/metrics', { id: run!.id });
      client.close();
      assert.deepEqual(series.map(({ name, points }) => [name, points.map((point) => [point.step, point.value])]), [['acc', [[7, 0.5]]]]);
    });

    it('keeps a sweep within max_parallel', async () => {
      harness = new DaemonHarness();
      const spec = 'name: par\nrun: "sleep 0.4 # ${{ params.i }}"\nresources: { cpus: 0.1 }\nsweep: { max_parallel: 2, parameters: { i: { range: [0, 5] } } }\n';
      const runs = await submit(harness, spec);
      const details = await Promise.all(runs.map((run) => untilState(harness, run.id, ['succeeded'])));
      const spans = details.map((detail) => [detail.attemptList[0]!.startedAt, detail.attemptList[0]!.endedAt!] as const);
      const most = Math.max(...spans.map(([start]) => spans.filter(([other, end]) => other <= start && start < end).length));
      assert.equal(most, 2);
    });

    it('starts a workflow step when what it needs succeeded, and skips what follows a failure', async () => {
      harness = new DaemonHarness();
      const spec = [
        'name: wf',
        'jobs:',
        '  prepare: { run: "echo prepared", resources: { cpus: 0.1 } }',
        '  train: { needs: [prepare], run: "exit 4", resources: { cpus: 0.1 } }',
        '  report: { needs: [train], run: "echo never", resources: { cpus: 0.1 } }',
        '  lint: { needs: [prepare], run: "echo fine", resources: { cpus: 0.1 } }',
        '',
      ].join('\n');
      const dir = mkdtempSync(join(tmpdir(), 'drover-wf-'));
      writeFileSync(join(dir, 'wf.drover.yaml'), spec);
      const result = await harness.cli(['submit', '--wait', 'wf.drover.yaml'], dir);
      rmSync(dir, { recursive: true, force: true });
      assert.equal(result.code, 1);
      const runs = JSON.parse((await harness.cli(['runs', '--json'])).stdout) as JobView[];
      const byKey = Object.fromEntries(runs.map((run) => [run.key, run]));
      assert.equal(byKey['prepare']!.state, 'succeeded');
      assert.equal(byKey['train']!.state, 'failed');
      assert.equal(byKey['lint']!.state, 'succeeded');
      assert.equal(byKey['report']!.state, 'skipped');
      assert.equal(byKey['report']!.reason, 'it needs wf/train, which failed');
      assert.ok(byKey['train']!.startedAt! >= byKey['prepare']!.endedAt!);
      // The last line says how they all ended, naming the runs that did not succeed.
      assert.equal(result.stderr.trimEnd().split('\n').at(-1), `4 runs: 2 succeeded, 1 failed (train #${byKey['train']!.id}), 1 skipped (report #${byKey['report']!.id})`);
    });

    it('refuses a broken spec with file:line:col messages', async () => {
      harness = new DaemonHarness();
      const dir = mkdtempSync(join(tmpdir(), 'drover-bad-'));
      writeFileSync(join(dir, 'bad.drover.yaml'), 'name: bad\nrun: echo\nresurces: { gpus: 1 }\n');
      const result = await harness.cli(['submit', 'bad.drover.yaml'], dir);
      rmSync(dir, { recursive: true, force: true });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /bad\.drover\.yaml:3:1: unknown key 'resurces' in the spec; did you mean 'resources'\?/);
    });
  });

  describe('stopping', () => {
    it('cancels a running job: its whole process group ends', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, 'name: long\nrun: "sleep 30 & sleep 30; wait"\nresources: { cpus: 0.1 }\n');
      const running = await untilState(harness, run!.id, ['running']);
      const pid = await waitFor('the pid', async () => (await job(harness, run!.id)).attemptList[0]?.pid ?? running.attemptList[0]?.pid);
      const cancel = await harness.cli(['cancel', String(run!.id)]);
      assert.equal(cancel.stdout, `cancelling 1 run (id ${run!.id})\n`);
      const ended = await untilState(harness, run!.id, ['cancelled']);
      assert.equal(ended.attemptList[0]!.outcome, 'cancelled');
      assert.ok(!alive(pid), 'the wrapper is gone');
      await waitFor('no process of the group to be left', () => groupMembers(pid).length === 0);
    });

    it('kills a job that ignores SIGTERM after the grace period', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, `name: stubborn\nrun: "trap '' TERM; echo trapped; sleep 30"\nresources: { cpus: 0.1 }\n`);
      // Running is not enough: a SIGTERM before the shell set its trap would end it at once.
      await waitFor('the job to ignore SIGTERM', async () => {
        const client = await harness.client();
        try {
          return (await client.request('drover/logs', { id: run!.id })).data.includes('trapped');
        } finally {
          client.close();
        }
      });
      const cancel = await harness.cli(['cancel', '--json', String(run!.id)]);
      assert.deepEqual(JSON.parse(cancel.stdout), { cancelled: [run!.id], alreadyEnded: [] });
      const ended = await untilState(harness, run!.id, ['cancelled']);
      assert.equal(ended.attemptList[0]!.signal, 'SIGKILL');
      const again = await harness.cli(['cancel', '--json', String(run!.id)]);
      assert.deepEqual(JSON.parse(again.stdout), { cancelled: [], alreadyEnded: [run!.id] });
    });

    it('stops an attempt at its timeout and retries it, with backoff, as many times as asked', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, 'name: slow\nrun: sleep 30\ntimeout: 1s\nretries: 1\nresources: { cpus: 0.1 }\n');
      const ended = await untilState(harness, run!.id, ['failed'], 20_000);
      assert.deepEqual(ended.attemptList.map((attempt) => attempt.outcome), ['timed-out', 'timed-out']);
      assert.equal(ended.reason, 'timed out after 1 s');
      const gap = ended.attemptList[1]!.startedAt - ended.attemptList[0]!.endedAt!;
      assert.ok(gap >= 100, `the retry waited its backoff (${gap} ms)`);
    });

    it('retries a failed attempt and succeeds', async () => {
      harness = new DaemonHarness();
      const dir = mkdtempSync(join(tmpdir(), 'drover-flaky-'));
      const [run] = await submit(harness, 'name: flaky\nrun: "if [ -e marker ]; then echo second time lucky; else touch marker; echo first try; exit 1; fi"\nretries: 2\nresources: { cpus: 0.1 }\n', dir);
      const ended = await untilState(harness, run!.id, ['succeeded']);
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(ended.attemptList.map((attempt) => [attempt.outcome, attempt.exitCode]), [['failed', 1], ['succeeded', 0]]);
      // Each attempt's own log; one that does not exist, or a word, is refused.
      assert.equal((await harness.cli(['logs', String(run!.id)])).stdout, 'second time lucky\n');
      assert.equal((await harness.cli(['logs', '--attempt', '1', String(run!.id)])).stdout, 'first try\n');
      const third = await harness.cli(['logs', '--attempt', '3', String(run!.id)]);
      assert.deepEqual([third.code, third.stderr.trim()], [1, `drover logs: run ${run!.id} has 2 attempts: there is no attempt 3`]);
      const word = await harness.cli(['logs', '--attempt', 'x', String(run!.id)]);
      assert.deepEqual([word.code, word.stderr.trim()], [2, "drover logs: --attempt takes an attempt number (1, 2, …), not 'x'"]);
    });
  });

  describe('GPUs', () => {
    it('assigns free GPUs, skips ones held by foreign processes, and says why others wait', async () => {
      harness = new DaemonHarness({ gpus: 'two-a100.json' });
      const [first] = await submit(harness, 'name: gpu-a\nrun: "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; sleep 30"\nresources: { gpus: 1, cpus: 0.1 }\n');
      const running = await untilState(harness, first!.id, ['running']);
      assert.deepEqual(running.gpus, [1], 'GPU 0 is held by another user');
      const [second] = await submit(harness, 'name: gpu-b\nrun: "true"\nresources: { gpus: 1, cpus: 0.1 }\n');
      const [huge] = await submit(harness, 'name: gpu-c\nrun: "true"\nresources: { gpus: "A100:4", cpus: 0.1 }\n');
      const waiting = await waitFor('reasons', async () => {
        const [b, c] = await Promise.all([job(harness, second!.id), job(harness, huge!.id)]);
        return b.reason && c.reason ? [b, c] : undefined;
      });
      assert.equal(waiting[0].reason, 'waiting for 1 GPU; 0 free on local');
      assert.equal(waiting[1].reason, 'local has 2 GPUs of type A100, the job needs 4');
      const ps = await harness.cli(['ps']);
      assert.match(ps.stdout, /waiting for 1 GPU; 0 free on local/);
      const hosts = await harness.cli(['hosts']);
      assert.match(hosts.stdout, /GPU 0\s+busy: pid 4242 \(not Drover's\)\s+NVIDIA A100-SXM4-40GB\s+17\.0 \/ 40 GiB, 37%$/m);
      assert.match(hosts.stdout, new RegExp(`GPU 1\\s+run ${first!.id}\\s+NVIDIA A100-SXM4-40GB\\s+0 / 40 GiB, 0%$`, 'm'));
      const log = await harness.cli(['logs', String(first!.id)]);
      assert.equal(log.stdout, 'CUDA_VISIBLE_DEVICES=1\n');
      await harness.cli(['cancel', String(first!.id), String(second!.id), String(huge!.id)]);
    });

    it('marks a host with a broken driver degraded and still runs CPU work', async () => {
      harness = new DaemonHarness({ gpus: 'broken-driver.json' });
      const hosts = JSON.parse((await harness.cli(['hosts', '--json'])).stdout) as { state: string; message: string; gpus: unknown[] }[];
      assert.equal(hosts[0]!.state, 'degraded');
      assert.match(hosts[0]!.message, /NVIDIA-SMI has failed/);
      const result = await harness.cli(['run', '--wait', '--', 'echo', 'cpu work']);
      assert.equal(result.code, 0);
    });
  });

  describe('durability', () => {
    it('leaves running jobs alone when stopped, and the next daemon watches them to their end', async () => {
      harness = new DaemonHarness();
      const [run] = await submit(harness, 'name: outlives\nrun: "echo begun; sleep 2; echo done"\nresources: { cpus: 0.1 }\n');
      const running = await untilState(harness, run!.id, ['running']);
      const pid = await waitFor('the pid', async () => (await job(harness, run!.id)).attemptList[0]?.pid ?? running.attemptList[0]?.pid);
      const stopped = await harness.cli(['daemon', 'stop']);
      assert.equal(stopped.code, 0, stopped.stderr);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(alive(pid), 'the run goes on without the daemon');
      // Reading starts the daemon again, on demand: it finds the run still going.
      const ps = await harness.cli(['ps']);
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, new RegExp(`^${run!.id}\\s+outlives\\s+running\\s`, 'm'));
      const ended = await untilState(harness, run!.id, ['succeeded', 'failed']);
      assert.equal(ended.state, 'succeeded', ended.reason);
      assert.equal((await harness.cli(['logs', String(run!.id)])).stdout, 'begun\ndone\n');
    });

    it('survives kill -9: running jobs are re-adopted with their exit codes, queued ones start, nothing runs twice', async () => {
      harness = new DaemonHarness();
      const dir = mkdtempSync(join(tmpdir(), 'drover-survive-'));
      const running = await submit(harness, 'name: survivor\nrun: "sleep 1.5; echo $DROVER_RUN_ID >> ran.txt; exit 7 # ${{ params.i }}"\nresources: { cpus: 1 }\nsweep: { parameters: { i: [1, 2] } }\n', dir);
      const [queued] = await submit(harness, 'name: later\nrun: "echo $DROVER_RUN_ID >> ran.txt"\nresources: { cpus: 2 }\n', dir);
      await Promise.all(running.map((run) => untilState(harness, run.id, ['running'])));
      const client = await harness.client();
      const daemonPid = client.daemon.pid;
      client.close();
      process.kill(daemonPid, 'SIGKILL');
      await waitFor('the daemon to die', () => !alive(daemonPid));
      // The jobs go on without the daemon and end while it is down.
      await waitFor('both runs to finish without the daemon', () => {
        try {
          return readFileSync(join(dir, 'ran.txt'), 'utf8').trim().split('\n').length === 2;
        } catch {
          return false;
        }
      });
      const again = await harness.cli(['daemon', 'start']);
      assert.match(again.stdout, /started/);
      for (const run of running) {
        const ended = await untilState(harness, run.id, ['failed']);
        assert.equal(ended.attempts, 1, 'not run again');
        assert.equal(ended.exitCode, 7, 'exit code recovered from the wrapper');
      }
      await untilState(harness, queued!.id, ['succeeded']);
      const ran = readFileSync(join(dir, 'ran.txt'), 'utf8').trim().split('\n').map(Number).sort();
      assert.deepEqual(ran, [...running.map((run) => run.id), queued!.id].sort());
      rmSync(dir, { recursive: true, force: true });
    });

    it('refuses work with a clear error while the disk is full, loses nothing, and goes on once there is room', async function () {
      const mountPoint = mkdtempSync(join(tmpdir(), 'drover-full-'));
      // A small disk of its own to fill: needs root to mount, as CI has.
      if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]).status !== 0) {
        rmSync(mountPoint, { recursive: true, force: true });
        this.skip();
      }
      try {
        // Host probes every 100 ms: each is a write the full disk refuses while the daemon runs on.
        harness = new DaemonHarness({ env: { DROVER_HOME: join(mountPoint, 'home'), DROVER_HOST_PROBE_MS: '100' } });
        const before = await harness.cli(['run', '--wait', '--', 'echo', 'before']);
        assert.equal(before.code, 0, before.stderr);
        const daemonPid = async () => (JSON.parse((await harness.cli(['daemon', 'status', '--json'])).stdout) as { pid?: number }).pid;
        const pid = await daemonPid();
        try {
          writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(8 * 2 ** 20));
        } catch (error) {
          assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
        }
        const refused = await harness.cli(['run', '--wait', '--', 'echo', 'while-full']);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /the disk holding .*drover\.db is full: this change was not recorded \(what was recorded before is intact\); free some space and try again/);
        const during = JSON.parse((await harness.cli(['runs', '--json'])).stdout) as JobView[];
        assert.deepEqual(during.map((run) => [run.id, run.command, run.state]), [[1, 'echo before', 'succeeded']]);
        await sleep(500);
        assert.equal(await daemonPid(), pid, 'the daemon went on through the probes it could not record');
        // A daemon started while the disk is full serves what it has.
        assert.equal((await harness.cli(['daemon', 'stop'])).code, 0);
        const restarted = await harness.cli(['daemon', 'start']);
        assert.equal(restarted.code, 0, restarted.stderr);
        const afterRestart = JSON.parse((await harness.cli(['runs', '--json'])).stdout) as JobView[];
        assert.deepEqual(afterRestart.map((run) => [run.id, run.state]), [[1, 'succeeded']]);

        rmSync(join(mountPoint, 'filler'));
        const after = await harness.cli(['run', '--wait', '--', 'echo', 'after']);
        assert.equal(after.code, 0, after.stderr);
        assert.equal(after.stdout, 'after\n');
        const runs = JSON.parse((await harness.cli(['runs', '--json'])).stdout) as JobView[];
        assert.deepEqual(runs.map((run) => [run.id, run.command, run.state]), [[2, 'echo after', 'succeeded'], [1, 'echo before', 'succeeded']]);
      } finally {
        await harness.cli(['daemon', 'stop']);
        // The daemon's launcher ends just after it: until then the disk is busy.
        await waitFor('the test disk to unmount', () => spawnSync('umount', [mountPoint]).status === 0, 10_000).catch(() => spawnSync('umount', ['-l', mountPoint]));
        rmSync(mountPoint, { recursive: true, force: true });
      }
    });

    it('refuses a damaged state file with a clear error and leaves it as it was', async () => {
      harness = new DaemonHarness();
      const paths = daemonPaths(harness.home);
      const garbage = Buffer.from('this is not a database, but it is someone\'s file\n'.repeat(100));
      writeFileSync(paths.database, garbage);
      const result = await harness.cli(['daemon', 'start']);
      assert.equal(result.code, 4);
      assert.match(result.stderr, /the state file .*drover\.db is damaged .*left as it is/);
      assert.deepEqual(readFileSync(paths.database), garbage);
    });

    it('refuses a state folder it cannot write, saying which', async function () {
      if (process.getuid?.() !== 0) this.skip();
      // As root every folder is writable, so the daemon runs as an unprivileged user here.
      harness = new DaemonHarness();
      const home = join(harness.home, 'locked');
      mkdirSync(home, { mode: 0o755 });
      chmodSync(harness.home, 0o755);
      // That user may not be able to read the checkout (a clone in a 0700 folder): give it its own copy of the daemon.
      const copy = join(harness.home, 'daemon');
      for (const file of ['bin/drover-daemon.js', 'dist/daemon.js', 'dist/node-sqlite3-wasm.wasm']) {
        mkdirSync(dirname(join(copy, file)), { recursive: true, mode: 0o755 });
        copyFileSync(join(ROOT, file), join(copy, file));
      }
      const child = spawn(process.execPath, [join(copy, 'bin/drover-daemon.js')], { cwd: copy, env: { ...harness.env, DROVER_HOME: home }, uid: 65534, gid: 65534 });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const code = await new Promise((resolve) => child.once('close', resolve));
      assert.equal(code, 78);
      assert.match(stdout, /cannot use the state folder .*locked \(EPERM\)|cannot use the state folder .*locked \(EACCES\)/);
    });
  });

  describe('deleting', () => {
    it('deletes a finished run with its files, and refuses one still running', async () => {
      harness = new DaemonHarness();
      const [done] = await submit(harness, 'name: done\nrun: "echo kept until deleted"\nresources: { cpus: 0.1 }\n');
      const ended = await untilState(harness, done!.id, ['succeeded']);
      const folder = dirname(ended.attemptList[0]!.logPath);
      // One folder per attempt, directly under runs/.
      assert.equal(dirname(folder), daemonPaths(harness.home).runs);
      assert.equal(readFileSync(ended.attemptList[0]!.logPath, 'utf8'), 'kept until deleted\n');
      const [long] = await submit(harness, 'name: long\nrun: "sleep 30"\nresources: { cpus: 0.1 }\n');
      await untilState(harness, long!.id, ['running']);
      const client = await harness.client();
      try {
        await assert.rejects(client.request('drover/delete', { ids: [long!.id] }), /only finished runs can be deleted/);
        assert.deepEqual(await client.request('drover/delete', { ids: [done!.id] }), { deleted: [done!.id] });
        await client.request('drover/cancel', { ids: [long!.id] });
      } finally {
        client.close();
      }
      assert.throws(() => statSync(folder), /ENOENT/, 'its folder is gone');
      await untilState(harness, long!.id, ['cancelled']);
    });
  });

  describe('protocol', () => {
    it('answers bad requests with errors and stays up', async () => {
      harness = new DaemonHarness();
      const client = await harness.client();
      await assert.rejects(client.request('drover/job', { id: 'seven' as unknown as number }), /id must be a whole number, not "seven"/);
      await assert.rejects(client.request('drover/job', { id: 999 }), /no run 999/);
      await assert.rejects(client.request('drover/submit', { specText: 42 as unknown as string, cwd: ROOT }), /submit needs specText and cwd/);
      await assert.rejects(client.request('drover/submit', { specText: 'name: x\nrun: "true"\n', cwd: ROOT, user: 7 as unknown as string }), /user, when given, is a user name/);
      client.close();

      const socketPath = daemonPaths(harness.home).socket;
      const raw = connect(socketPath);
      await new Promise((resolve) => raw.once('connect', resolve));
      const connection = createMessageConnection(new SocketMessageReader(raw), new SocketMessageWriter(raw));
      connection.listen();
      await assert.rejects(connection.sendRequest('drover/jobs', {}), /send drover\/handshake first/);
      await assert.rejects(connection.sendRequest('drover/handshake', { protocolVersion: PROTOCOL_VERSION + 1, client: 'future' }), new RegExp(`client speaks version ${PROTOCOL_VERSION + 1}, this daemon .* speaks version ${PROTOCOL_VERSION}`));
      await connection.sendRequest('drover/handshake', { protocolVersion: PROTOCOL_VERSION, client: 'test' });
      await assert.rejects(connection.sendRequest('drover/frobnicate', {}), /Unhandled method drover\/frobnicate/);
      connection.dispose();
      raw.destroy();

      const garbage = connect(socketPath);
      await new Promise((resolve) => garbage.once('connect', resolve));
      // The daemon may drop the connection at the first bad message, before the second write
      // (EPIPE): what matters is that it stays up for the next client.
      garbage.on('error', () => undefined);
      garbage.write('Content-Length: 5\r\n\r\n{{{{{');
      garbage.write('not even a header\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      garbage.destroy();

      const after = await harness.client();
      assert.deepEqual(await after.request('drover/jobs', {}), []);
      after.close();
    });

    it('listens on no network port unless asked, and on TCP only for clients with the token', async () => {
      harness = new DaemonHarness();
      const local = await harness.client();
      assert.deepEqual(listeningTcpPorts(local.daemon.pid), [], 'the default daemon has no TCP listener');
      local.close();
      await harness.cli(['daemon', 'stop']);

      const env = { ...harness.env, DROVER_LISTEN_TCP: '127.0.0.1:0' };
      const child = spawn(process.execPath, [join(ROOT, 'bin/drover-daemon.js')], { env, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      const started = await untilReady(child, 15_000);
      assert.ok(started.ready, JSON.stringify(started));
      child.unref();
      const port = Number(/ tcp=127\.0\.0\.1:(\d+)$/.exec(started.line)![1]);
      assert.deepEqual(listeningTcpPorts(child.pid!), [port]);
      const tokenFile = daemonPaths(harness.home).token;
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.match(token, /^[0-9a-f]{64}$/);

      for (const presented of [undefined, 'not-the-token', token.replace(/.$/, (last) => (last === '0' ? '1' : '0'))]) {
        const remote = { ...harness.env, DROVER_DAEMON: `tcp://127.0.0.1:${port}`, ...(presented !== undefined && { DROVER_TOKEN: presented }) };
        await assert.rejects(DaemonClient.connect({ client: 'test', env: remote }), /only with its token/);
      }
      const client = await DaemonClient.connect({ client: 'test', env: { ...harness.env, DROVER_DAEMON: `tcp://127.0.0.1:${port}`, DROVER_TOKEN: token } });
      assert.deepEqual(await client.request('drover/jobs', {}), []);
      client.close();
      const ps = await harness.cli(['ps'], ROOT, { DROVER_DAEMON: `tcp://127.0.0.1:${port}`, DROVER_TOKEN: token });
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /nothing queued or running/);
    });

    it('takes over a lock whose pid now belongs to another process (as after a reboot)', async () => {
      harness = new DaemonHarness();
      // This test's own process: alive, but not the process the lock's start time names.
      writeFileSync(daemonPaths(harness.home).lock, `${process.pid}\n1\n`);
      const started = await harness.cli(['daemon', 'start']);
      assert.equal(started.code, 0, started.stderr);
      // Its own lock names it the same way: its pid, then its start time.
      const pid = Number(/^started: pid (\d+)/.exec(started.stdout)![1]);
      assert.match(readFileSync(daemonPaths(harness.home).lock, 'utf8'), new RegExp(`^${pid}\\n\\d+\\n$`));
    });

    it('says what to do about a lock from an earlier Drover (a pid alone) that names a live process', async () => {
      harness = new DaemonHarness();
      const paths = daemonPaths(harness.home);
      writeFileSync(paths.lock, `${process.pid}\n`);
      const refused = await harness.cli(['ps']);
      assert.equal(refused.code, 4);
      assert.equal(refused.stderr.trim(), `drover ps: a Drover daemon is already running (pid ${process.pid}), says its lock ${paths.lock}, but nothing answers on ${paths.socket}: if that process is not a Drover daemon (its pid used again after a restart), delete the lock and try again`);
      rmSync(paths.lock);
      assert.equal((await harness.cli(['ps'])).code, 0);
    });

    it('starts one daemon per home: a second start finds the first', async () => {
      harness = new DaemonHarness();
      const first = await harness.cli(['daemon', 'start']);
      const second = await harness.cli(['daemon', 'start']);
      assert.match(first.stdout, /started: pid (\d+)/);
      assert.match(second.stdout, /already running: pid (\d+)/);
      assert.equal(/pid (\d+)/.exec(first.stdout)![1], /pid (\d+)/.exec(second.stdout)![1]);
      const status = await harness.cli(['daemon', 'status']);
      assert.match(status.stdout, /running: pid \d+/);
      const pid = Number(/pid (\d+)/.exec(first.stdout)![1]);
      const statusJson = JSON.parse((await harness.cli(['daemon', 'status', '--json'])).stdout) as Record<string, unknown>;
      assert.deepEqual({ ...statusJson, version: typeof statusJson['version'] }, { running: true, pid, version: 'string', home: harness.home, runningJobs: 0, queuedJobs: 0 });
      const stop = await harness.cli(['daemon', 'stop', '--json']);
      assert.deepEqual(JSON.parse(stop.stdout), { stopped: true, pid });
      const after = await harness.cli(['daemon', 'status']);
      assert.equal(after.code, 4);
      assert.match(after.stdout, /not running/);
      const afterJson = await harness.cli(['daemon', 'status', '--json']);
      assert.equal(afterJson.code, 4);
      assert.deepEqual(JSON.parse(afterJson.stdout), { running: false, home: harness.home });
    });
  });
});
